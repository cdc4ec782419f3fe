/* Parameters panel: the Sampling and Guards tabs. */
import { $, $$ } from './dom.js';
import { GUARD_FIELDS, SAMPLING_DEFAULTS, SAMPLING_FIELDS } from './defs.js';
import { field } from './fields.js';
import { save, saveSoon, state } from './state.js';

export function buildSampling() {
  $('#sampling-fields').replaceChildren(...SAMPLING_FIELDS.map((d) => field(d, 'sampling', state.sampling[d.key], (v) => { state.sampling[d.key] = v; save(); })));
  $('#system-prompt').value = state.systemPrompt;
}
export function buildGuards() {
  $('#guards-on').checked = state.guardsOn;
  $('#guard-fields').replaceChildren(...GUARD_FIELDS.map((d) => field(d, 'guards', state.guards[d.key], (v) => { state.guards[d.key] = v; save(); })));
  syncGuardsEnabled();
}
export function syncGuardsEnabled() {
  $$('#guard-fields .field').forEach((f) => {
    f.classList.toggle('disabled', !state.guardsOn);
    $$('input, select', f).forEach((c) => { c.disabled = !state.guardsOn; });
  });
}
export async function checkGuardSupport() {
  try {
    const schemas = (await (await fetch('/openapi.json')).json()).components?.schemas || {};
    const supported = Object.entries(schemas).some(([name, s]) => /ChatRequest$|InfillRequest$/.test(name) && s.properties && s.properties.guards);
    const note = $('#guards-note');
    note.classList.toggle('warn', !supported);
    note.textContent = supported ? 'Sent with each request as "guards".'
      : 'This server takes no per-request guard settings (its request schemas have no "guards" field), so it applies the guard profile it was started with. These values are still sent as "guards".';
  } catch { /* the note keeps its default text */ }
}

export function bindParams() {
  $('#system-prompt').addEventListener('input', (e) => { state.systemPrompt = e.target.value; saveSoon(); });
  $('#btn-sampling-reset').addEventListener('click', () => { state.sampling = { ...SAMPLING_DEFAULTS }; save(); buildSampling(); });
  $('#guards-on').addEventListener('change', (e) => { state.guardsOn = e.target.checked; save(); syncGuardsEnabled(); });
}
