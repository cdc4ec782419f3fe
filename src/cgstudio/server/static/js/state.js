/* The page's state, kept in localStorage, and the models it points at. */
import { debounce } from './dom.js';
import { GUARD_DEFAULTS, SAMPLING_DEFAULTS } from './defs.js';

const STORE_KEY = 'cgstudio.playground.v1';
export const API_KEY = 'cgstudio.apiKey';
export const ADMIN_KEY = 'cgstudio.adminKey';
const SAMPLE_CODE = `"""Small statistics helpers."""

from collections.abc import Sequence


def mean(values: Sequence[float]) -> float:
    """Return the arithmetic mean of values (0.0 for an empty sequence)."""
    


def median(values: Sequence[float]) -> float:
    """Return the middle value (the mean of the two middle ones for even lengths)."""
    ordered = sorted(values)
    n = len(ordered)
    if n == 0:
        return 0.0
    mid = n // 2
    return ordered[mid] if n % 2 else (ordered[mid - 1] + ordered[mid]) / 2


if __name__ == "__main__":
    print(mean([1.0, 2.0, 3.0]), median([3.0, 1.0, 2.0]))
`;
const stored = (() => { try { return JSON.parse(localStorage.getItem(STORE_KEY)) || {}; } catch { return {}; } })();
export const state = {
  view: stored.view === 'completion' ? 'completion' : 'chat',
  paramsTab: ['sampling', 'guards', 'load'].includes(stored.paramsTab) ? stored.paramsTab : 'sampling',
  selected: { chat: null, completion: null, ...stored.selected },
  sampling: { ...SAMPLING_DEFAULTS, ...stored.sampling },
  guardsOn: stored.guardsOn ?? true,
  guards: { ...GUARD_DEFAULTS, ...stored.guards },
  load: stored.load || {},          // alias -> load values edited here (applied or not)
  systemPrompt: stored.systemPrompt || '',
  code: stored.code ?? SAMPLE_CODE,
  filePath: stored.filePath || 'stats.py',
  contextFiles: stored.contextFiles || [],
  showPrompt: !!stored.showPrompt,
  models: [],                       // from /v1/models + /api/tags
  serverLoad: {},                   // alias -> {load, loaded, n_ctx} from /admin/models
};
export function save() {
  const { view, paramsTab, selected, sampling, guardsOn, guards, load, systemPrompt, code, filePath, contextFiles, showPrompt } = state;
  localStorage.setItem(STORE_KEY, JSON.stringify({ view, paramsTab, selected, sampling, guardsOn, guards, load, systemPrompt, code, filePath, contextFiles, showPrompt }));
}
export const saveSoon = debounce(save, 300);

/** The model picked for a view (chat or completion), or null. */
export const currentModel = (view = state.view) => state.models.find((m) => m.id === state.selected[view]) || null;
/** The model the Load tab describes: always the one picked for the current view (the top picker). */
export const loadTarget = () => state.selected[state.view] || null;
