/* Parameters panel: the Load tab (GET /admin/models, POST /admin/reload). */
import { $, fmt } from './dom.js';
import { api } from './api.js';
import { LOAD_FIELDS } from './defs.js';
import { field } from './fields.js';
import { onModelPicked, refreshModels, selectModel } from './models.js';
import { loadTarget, save, state } from './state.js';

const pickLoad = (load) => Object.fromEntries(LOAD_FIELDS.map((d) => [d.key, load ? load[d.key] : null]));
function loadValues(alias) { return { ...pickLoad(state.serverLoad[alias] && state.serverLoad[alias].load), ...(state.load[alias] || {}) }; }
export async function refreshAdmin() {
  try {
    const j = await (await api('/admin/models')).json();
    state.serverLoad = Object.fromEntries(j.models.map((m) => [m.name, m]));
    $('#btn-apply').disabled = false;
    buildLoad();
  } catch (e) {
    $('#load-note').textContent = `Load parameters need the admin API: ${e.message}`;
    $('#btn-apply').disabled = true;
  }
}
export function buildLoad() {
  const alias = loadTarget(), server = state.serverLoad[alias];
  $('#panel-load').dataset.model = alias || '';
  if (!alias || !server) {
    $('#load-fields').replaceChildren();
    $('#load-note').textContent = alias ? `Reading the load parameters of ${alias}…` : 'No model is picked.';
    return;
  }
  const values = loadValues(alias);
  $('#load-note').textContent = server.loaded
    ? `${alias} is loaded with a ${server.n_ctx}-token context. Changed values (•) take effect on Apply.`
    : `${alias} is not loaded yet; it loads with these values on first use or on Apply.`;
  $('#load-fields').replaceChildren(...LOAD_FIELDS.map((d) => {
    const el = field(d, 'load', values[d.key], (v) => {
      state.load[alias] = { ...(state.load[alias] || {}), [d.key]: v }; save();
      el.classList.toggle('dirty', v !== server.load[d.key]);
    });
    el.classList.toggle('dirty', values[d.key] !== server.load[d.key]);
    return el;
  }));
}
export async function applyLoad() {
  const alias = loadTarget();
  if (!alias) return;
  const values = loadValues(alias), status = $('#load-status'), btn = $('#btn-apply'), t0 = performance.now();
  btn.disabled = true; $('#load-progress').hidden = false; status.className = '';
  const tick = () => { status.textContent = `Reloading ${alias}… ${fmt((performance.now() - t0) / 1000, 1)} s`; };
  tick();
  const timer = setInterval(tick, 100);
  try {
    const j = await (await api('/admin/reload', { method: 'POST', body: { model: alias, load: values } })).json();
    delete state.load[alias]; save();
    status.className = 'ok';
    status.textContent = `Loaded ${j.model} in ${fmt(j.load_duration_s, 2)} s · context ${j.n_ctx} tokens`;
  } catch (e) {
    status.className = 'error'; status.textContent = `Reload failed: ${e.message}`;
  } finally {
    clearInterval(timer); btn.disabled = false; $('#load-progress').hidden = true;
  }
  await refreshAdmin();
  refreshModels().catch(() => {});
}

export function bindLoad() {
  // The Load tab's picker is the top picker: choosing here picks the model for the current view.
  $('#load-model').addEventListener('change', (e) => selectModel(e.target.value));
  onModelPicked(buildLoad);
  $('#btn-apply').addEventListener('click', applyLoad);
  $('#btn-load-reset').addEventListener('click', () => { delete state.load[loadTarget()]; save(); buildLoad(); });
}
