/* The FIM request a completion sends, and "Show prompt": the exact prompt it renders (POST /cgstudio/prompt). */
import { $, esc } from './dom.js';
import { api, guardsBody } from './api.js';
import { currentModel, state } from './state.js';
import { renderWarnings } from './stats.js';

export const codeEl = () => $('#code');
let promptSeq = 0;   // answers to older previews are dropped

/** The /infill body for the cursor at ``pos``: the code around it, the context files, the path. */
export function infillBody(pos) {
  const text = codeEl().value, model = currentModel('completion');
  return { model: model ? model.id : undefined, input_prefix: text.slice(0, pos), input_suffix: text.slice(pos), prompt: '',
    input_extra: state.contextFiles.filter((f) => f.text.trim()).map((f) => ({ filename: f.filename || 'context', text: f.text })),
    filepath: state.filePath || undefined };
}

function highlightSpecial(text) {
  const re = /<\|[^|<>\n]{1,40}\|>|<(?:fim_prefix|fim_suffix|fim_middle|file_separator|start_of_turn|end_of_turn|bos|eos|pad|PRE|SUF|MID)>|<｜[^｜\n]{1,40}｜>/g;
  let out = '', last = 0, m;
  while ((m = re.exec(text))) { out += esc(text.slice(last, m.index)) + `<span class="special">${esc(m[0])}</span>`; last = re.lastIndex; }
  return out + esc(text.slice(last));
}
export async function refreshPrompt(base) {
  if (!currentModel('completion')) return;
  base = base || infillBody(codeEl().selectionEnd);
  const seq = ++promptSeq, panel = $('#prompt-panel');
  $('#prompt-meta').textContent = 'Rendering…';
  try {
    const body = { ...base, max_tokens: state.sampling.max_tokens, ...guardsBody() };
    if (state.sampling.stop.length) body.stop = state.sampling.stop;
    const j = await (await api('/cgstudio/prompt', { method: 'POST', body })).json();
    if (seq !== promptSeq) return;
    $('#prompt-meta').textContent = `${j.model} · mode ${j.mode} · ${j.n_prompt_tokens} prompt tokens · max_tokens ${j.max_tokens} · n_ctx ${j.n_ctx}` +
      (j.stop && j.stop.tokens && j.stop.tokens.length ? ` · stops at ${j.stop.tokens.join(' ')}` : '') +
      // Repository context (serve --workspace) and the client's files: path, tokens, reason.
      (j.context && j.context.length ? ` · context: ${j.context.map((c) => `${c.path} (${c.tokens}, ${c.reason})`).join(', ')}` : '');
    $('#prompt-text').innerHTML = highlightSpecial(j.prompt_text);
    $('#prompt-ids-label').textContent = `Token ids (${j.prompt_tokens.length})`;
    $('#prompt-ids').textContent = j.prompt_tokens.join(', ');
    renderWarnings($('#prompt-warnings'), j.warnings);
  } catch (e) {
    if (seq !== promptSeq) return;
    $('#prompt-meta').textContent = ''; $('#prompt-text').textContent = e.message; $('#prompt-ids').textContent = '';
  }
  panel.hidden = !state.showPrompt;
}
