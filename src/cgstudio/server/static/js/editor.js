/* Completion view: the highlighted editor, FIM requests to /infill, the grey suggestion (ghost text). */
import { $, $$, esc, h } from './dom.js';
import { api, guardsBody, samplingBody, sseDocs } from './api.js';
import { langOfPath, renderTokens, tokenize } from './highlight.js';
import { onModelsListed, refreshModels } from './models.js';
import { codeEl, infillBody, refreshPrompt } from './prompt.js';
import { currentModel, save, saveSoon, state } from './state.js';
import { chart, errorBox, renderStats, renderWarnings } from './stats.js';

const editor = { ghost: null, controller: null, escArmed: false, waiting: false };
export function renderEditor() {
  const text = codeEl().value, g = editor.ghost, tokens = tokenize(text, langOfPath(state.filePath));
  const ghostHtml = g && g.text ? `<span class="ghost" id="ghost-text">${esc(g.text)}</span>` : '';
  // The trailing space keeps a final empty line as tall as the textarea's.
  $('#overlay').innerHTML = renderTokens(tokens, ghostHtml ? g.pos : -1, ghostHtml) + ' ';
  const lines = (text.match(/\n/g) || []).length + (g ? (g.text.match(/\n/g) || []).length : 0) + 1;
  $('#gutter').textContent = Array.from({ length: lines }, (_, i) => i + 1).join('\n');
  const has = !!(g && g.text);
  $('#btn-accept').disabled = !has;
  $('#btn-dismiss').disabled = !(g || editor.controller);
}
function setCompletionState(text, busy = false) {
  const el = $('#completion-state');
  el.replaceChildren(...(busy ? [h('span', { class: 'spinner', 'aria-hidden': 'true' }), ' '] : []), text);
}
export function dismissGhost() {
  if (editor.controller) { editor.controller.abort(); editor.controller = null; }
  if (editor.ghost) { editor.ghost = null; setCompletionState(''); }
  renderEditor();
}
export async function requestCompletion() {
  const ta = codeEl(), model = currentModel('completion');
  editor.waiting = !model && !state.models.length;  // asked before the model list came: it runs then
  if (!model) { if (editor.waiting) setCompletionState('Waiting for the server\'s models…', true); return; }
  dismissGhost();
  const pos = ta.selectionEnd;
  ta.focus(); ta.setSelectionRange(pos, pos);
  const base = infillBody(pos);
  if (state.showPrompt) refreshPrompt(base);
  const ctrl = new AbortController();
  editor.controller = ctrl; editor.ghost = { pos, text: '' };
  setCompletionState('Completing…', true); renderEditor(); chart.start();
  let final = null, error = null;
  try {
    const body = { ...base, n_predict: state.sampling.max_tokens, ...samplingBody(), ...guardsBody(), stream: true };
    const res = await api('/infill', { method: 'POST', body, signal: ctrl.signal });
    for await (const doc of sseDocs(res)) {
      if (doc.stop) { final = doc; continue; }
      if (doc.content && editor.controller === ctrl && editor.ghost) { editor.ghost.text += doc.content; chart.tick(); renderEditor(); }
    }
  } catch (e) { if (e.name !== 'AbortError') error = e.message; }
  const current = editor.controller === ctrl;
  if (current) editor.controller = null;
  chart.stop(final && final.cgstudio_timings ? final.cgstudio_timings.generation_tokens_per_s : null);
  if (!current && !final) return;   // superseded or dismissed
  const g = editor.ghost;
  if (current) setCompletionState(error ? '' : g && g.text ? 'Suggestion ready' : 'No suggestion');
  if (g && !g.text && current) { editor.ghost = null; }
  renderEditor();
  const stats = $('#completion-stats'), warns = $('#completion-warnings');
  $$('.banner', $('#completion-result')).forEach((n) => n.remove());
  if (final) {
    const t = final.cgstudio_timings || {};
    renderStats(stats, { ttft: t.thought_for_s, ptps: t.prompt_tokens_per_s, gtps: t.generation_tokens_per_s,
      promptTokens: final.tokens_evaluated, promptEvaluated: t.prompt_tokens_evaluated, cached: final.tokens_cached,
      genTokens: final.tokens_predicted, stop: final.stop_type, loadS: t.load_s });
    renderWarnings(warns, final.warnings);
  }
  if (error) $('#completion-result').append(errorBox(error));
  refreshModels().catch(() => {});
}
export function acceptGhost() {
  const g = editor.ghost;
  if (!g || !g.text) return;
  if (editor.controller) { editor.controller.abort(); editor.controller = null; }
  editor.ghost = null;
  const ta = codeEl();
  ta.focus(); ta.setSelectionRange(g.pos, g.pos);
  // execCommand keeps the browser's undo history; setRangeText is the fallback.
  if (!document.execCommand('insertText', false, g.text)) { ta.setRangeText(g.text, g.pos, g.pos, 'end'); onCodeInput(); }
  setCompletionState('Accepted');
  renderEditor();
}
export function onCodeInput() {
  if (editor.ghost || editor.controller) dismissGhost();
  state.code = codeEl().value; saveSoon(); renderEditor();
}
export function onCodeKey(e) {
  if (e.ctrlKey && (e.code === 'Space' || e.key === ' ' || e.key === 'Enter')) { e.preventDefault(); requestCompletion(); return; }
  if (e.key === 'Tab' && !e.shiftKey && !e.ctrlKey && !e.altKey && !e.metaKey) {
    if (editor.ghost && editor.ghost.text) { e.preventDefault(); acceptGhost(); return; }
    if (editor.escArmed) { editor.escArmed = false; return; }   // Esc then Tab: leave the editor
    e.preventDefault(); document.execCommand('insertText', false, '    '); return;
  }
  if (e.key === 'Escape') {
    if (editor.ghost || editor.controller) { e.preventDefault(); dismissGhost(); setCompletionState('Dismissed'); }
    else editor.escArmed = true;
    return;
  }
  editor.escArmed = false;
}
export function onCaretMove() { if (editor.ghost && codeEl().selectionEnd !== editor.ghost.pos) dismissGhost(); }

export function bindEditor() {
  const ta = codeEl();
  ta.value = state.code;
  ta.addEventListener('input', onCodeInput);
  ta.addEventListener('keydown', onCodeKey);
  ['click', 'keyup', 'select'].forEach((ev) => ta.addEventListener(ev, onCaretMove));
  $('#file-path').value = state.filePath;
  $('#file-path').addEventListener('input', (e) => { state.filePath = e.target.value.trim(); saveSoon(); renderEditor(); });
  $('#btn-complete').addEventListener('click', requestCompletion);
  $('#btn-accept').addEventListener('click', acceptGhost);
  $('#btn-dismiss').addEventListener('click', () => { dismissGhost(); codeEl().focus(); });
  $('#show-prompt').checked = state.showPrompt;
  $('#show-prompt').addEventListener('change', (e) => {
    state.showPrompt = e.target.checked; save();
    $('#prompt-panel').hidden = !state.showPrompt;
    if (state.showPrompt) refreshPrompt();
  });
  $('#btn-prompt-refresh').addEventListener('click', () => refreshPrompt());
  onModelsListed(() => { if (editor.waiting) requestCompletion(); });
}
