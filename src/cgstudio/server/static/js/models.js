/* The served models: the sidebar list with state dots and chips, the top picker, the Load tab's
   picker (it mirrors the top one), the variant warnings and the demo-models banner. */
import { $, h } from './dom.js';
import { api } from './api.js';
import { refreshPrompt } from './prompt.js';
import { currentModel, save, state } from './state.js';

const DEMO_DISMISSED = 'cgstudio.demoBannerDismissed';
export const CODEGEMMA_COMMAND = 'cgstudio serve --model codegemma-2b-Q4_K_M.gguf --model codegemma-7b-it-Q4_K_M.gguf';
const pickHooks = [], listHooks = [];
/** ``fn()`` runs whenever the picked model changes (the Load tab rebuilds for it). */
export function onModelPicked(fn) { pickHooks.push(fn); }
/** ``fn()`` runs after each fresh model list: a send made before the first one goes out then. */
export function onModelsListed(fn) { listHooks.push(fn); }
export const modelById = (id) => state.models.find((m) => m.id === id) || null;

/** File size as people read it: 491400064 -> "469 MiB". */
export function fileSize(bytes) {
  if (!bytes) return null;
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = bytes, i = 0;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return `${v >= 100 || i === 0 ? Math.round(v) : v.toFixed(1)} ${units[i]}`;
}
function modelChips(m) {
  const variantClass = m.variant === 'pretrained' ? 'pt' : m.variant === 'instruction-tuned' ? 'it' : '';
  return [h('span', { class: 'chip', text: m.family }), h('span', { class: 'chip ' + variantClass, text: m.variant }),
    m.fim ? h('span', { class: 'chip fim', text: 'FIM' }) : null,
    m.demo ? h('span', { class: 'chip demo', text: 'demo', title: 'A small demo model, not CodeGemma' }) : null,
    m.size ? h('span', { class: 'chip params-chip', text: m.size + (m.quant ? ' · ' + m.quant : ''), title: 'Parameters (from the GGUF) · quantization' }) : null,
    m.bytes ? h('span', { class: 'chip file-chip', text: fileSize(m.bytes), title: `File size: ${m.bytes.toLocaleString('en-US')} bytes` }) : null];
}
export async function refreshModels() {
  const j = await (await api('/v1/models')).json();
  let tags = {};
  try { tags = Object.fromEntries((await (await api('/api/tags')).json()).models.map((t) => [t.name, t])); } catch { /* optional */ }
  state.models = j.data.map((m) => ({ id: m.id, family: m.family || 'unknown', variant: m.variant || 'unknown', fim: !!m.fim,
    loaded: !!m.loaded, loading: false, demo: !!m.demo, size: tags[m.id]?.details?.parameter_size,
    quant: tags[m.id]?.details?.quantization_level, bytes: tags[m.id]?.size }));
  const ids = state.models.map((m) => m.id), pick = (...tests) => (tests.map((t) => state.models.find(t)).find(Boolean) || state.models[0])?.id ?? null;
  if (!ids.includes(state.selected.chat)) state.selected.chat = pick((m) => m.variant === 'instruction-tuned');
  if (!ids.includes(state.selected.completion)) state.selected.completion = pick((m) => m.fim && m.variant === 'pretrained', (m) => m.fim);
  renderModels();
  $('#server-dot').className = 'dot on';
  $('#server-status').textContent = `Connected · ${state.models.length} model${state.models.length === 1 ? '' : 's'}`;
  listHooks.forEach((fn) => fn());
}

function dotState(m) { return m.loading ? 'loading' : m.busy ? 'on busy' : m.loaded ? 'on' : ''; }
const DOT_TITLE = { loading: 'loading into memory', 'on busy': 'in memory, answering', on: 'in memory', '': 'not loaded' };
function paintDot(m) {
  const dot = document.querySelector(`#model-list [data-model="${CSS.escape(m.id)}"] .dot`);
  if (!dot) return;
  dot.className = 'dot ' + dotState(m); dot.title = DOT_TITLE[dotState(m)];
}
/** What this page knows now: 'loading', 'busy' (answering), 'loaded' or 'idle' (as it was, not busy). */
export function setModelDot(id, what) {
  const m = modelById(id);
  if (!m) return;
  m.loading = what === 'loading'; m.busy = what === 'busy';
  if (what === 'busy' || what === 'loaded') m.loaded = true;
  paintDot(m);
}
/** Every /health answer: the server's truth about what is loaded or loading. */
export function applyHealth(health) {
  for (const s of health.models || []) {
    const m = modelById(s.name);
    if (!m) continue;
    m.loaded = !!s.loaded; m.loading = !!s.loading; if (!m.loaded) m.busy = false;
    paintDot(m);
  }
  $('#server-dot').className = 'dot on';
  if (state.models.length) $('#server-status').textContent = `Connected · ${state.models.length} model${state.models.length === 1 ? '' : 's'}`;
}

export function renderModels() {
  const sel = state.selected[state.view];
  $('#model-list').replaceChildren(...state.models.map((m) => h('li', { 'data-model': m.id },
    h('button', { type: 'button', 'aria-pressed': String(m.id === sel), title: `Use ${m.id} for ${state.view}`, onclick: () => selectModel(m.id) },
      h('span', { class: 'model-name' }, h('span', { class: 'dot ' + dotState(m), title: DOT_TITLE[dotState(m)] }), m.id),
      h('span', { class: 'chips' }, modelChips(m))))));
  const label = (m) => `${m.id} — ${m.family} · ${m.variant}${m.fim ? ' · FIM' : ''}`;
  $('#model-select').replaceChildren(...state.models.map((m) => h('option', { value: m.id, text: label(m) })));
  $('#model-select').value = sel || '';
  $('#load-model').replaceChildren(...state.models.map((m) => h('option', { value: m.id, text: m.id })));
  $('#load-model').value = sel || '';
  renderVariantWarnings();
  renderDemoBanner();
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
function renderDemoBanner() {
  const onlyDemo = state.models.length > 0 && state.models.every((m) => m.demo);
  $('#demo-banner').hidden = !onlyDemo || localStorage.getItem(DEMO_DISMISSED) === '1';
  $('#demo-command').textContent = CODEGEMMA_COMMAND;
}
export function dismissDemoBanner() { localStorage.setItem(DEMO_DISMISSED, '1'); $('#demo-banner').hidden = true; }

/** Pick ``id`` for the current view: the top picker, the sidebar and the Load tab all follow. */
export function selectModel(id) {
  state.selected[state.view] = id; save(); renderModels();
  pickHooks.forEach((fn) => fn());
  if (state.view === 'completion' && state.showPrompt) refreshPrompt();
}
