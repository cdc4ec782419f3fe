/* Models: the sidebar list, the picker, the Load tab's model list, variant warnings. */
import { $, h } from './dom.js';
import { api } from './api.js';
import { refreshPrompt } from './prompt.js';
import { currentModel, loadTarget, save, state } from './state.js';

function modelChips(m) {
  const variantClass = m.variant === 'pretrained' ? 'pt' : m.variant === 'instruction-tuned' ? 'it' : '';
  return [h('span', { class: 'chip', text: m.family }), h('span', { class: 'chip ' + variantClass, text: m.variant }),
    m.fim ? h('span', { class: 'chip fim', text: 'FIM' }) : null,
    m.size ? h('span', { class: 'chip', text: m.size + (m.quant ? ' · ' + m.quant : '') }) : null];
}
export async function refreshModels() {
  const j = await (await api('/v1/models')).json();
  let tags = {};
  try { tags = Object.fromEntries((await (await api('/api/tags')).json()).models.map((t) => [t.name, t.details || {}])); } catch { /* optional */ }
  state.models = j.data.map((m) => ({ id: m.id, family: m.family || 'unknown', variant: m.variant || 'unknown', fim: !!m.fim,
    loaded: !!m.loaded, size: tags[m.id]?.parameter_size, quant: tags[m.id]?.quantization_level }));
  const ids = state.models.map((m) => m.id), pick = (...tests) => (tests.map((t) => state.models.find(t)).find(Boolean) || state.models[0])?.id ?? null;
  if (!ids.includes(state.selected.chat)) state.selected.chat = pick((m) => m.variant === 'instruction-tuned');
  if (!ids.includes(state.selected.completion)) state.selected.completion = pick((m) => m.fim && m.variant === 'pretrained', (m) => m.fim);
  if (!ids.includes(state.loadModel)) state.loadModel = null;
  renderModels();
  $('#server-dot').className = 'dot on';
  $('#server-status').textContent = `Connected · ${state.models.length} model${state.models.length === 1 ? '' : 's'}`;
}
export function renderModels() {
  const sel = state.selected[state.view];
  $('#model-list').replaceChildren(...state.models.map((m) => h('li', {},
    h('button', { type: 'button', 'aria-pressed': String(m.id === sel), title: `Use ${m.id} for ${state.view}`, onclick: () => selectModel(m.id) },
      h('span', { class: 'model-name' }, h('span', { class: 'dot' + (m.loaded ? ' on' : ''), title: m.loaded ? 'in memory' : 'not loaded' }), m.id),
      h('span', { class: 'chips' }, modelChips(m))))));
  const label = (m) => `${m.id} — ${m.family} · ${m.variant}${m.fim ? ' · FIM' : ''}`;
  $('#model-select').replaceChildren(...state.models.map((m) => h('option', { value: m.id, text: label(m) })));
  $('#model-select').value = sel || '';
  const loadSel = $('#load-model'), loadValue = loadTarget();
  loadSel.replaceChildren(...state.models.map((m) => h('option', { value: m.id, text: m.id })));
  loadSel.value = loadValue || '';
  renderVariantWarnings();
}
function renderVariantWarnings() {
  const chatModel = currentModel('chat'), fimModel = currentModel('completion');
  const cw = $('#chat-variant-warning');
  cw.hidden = !(chatModel && chatModel.variant === 'pretrained');
  if (!cw.hidden) cw.textContent = `${chatModel.id} is a pretrained ${chatModel.family} model: it was not trained to follow chat turns, so replies will be plain continuations, often off-topic. Pick an instruction-tuned model for chat, or use this one in the Completion view.`;
  const fw = $('#fim-warning');
  fw.hidden = !(fimModel && !fimModel.fim);
  if (!fw.hidden) fw.textContent = `${fimModel.id} has no fill-in-the-middle tokens, so it cannot complete at the cursor. Pick a model marked FIM.`;
}
export function selectModel(id) {
  state.selected[state.view] = id; save(); renderModels();
  if (state.view === 'completion' && state.showPrompt) refreshPrompt();
}
