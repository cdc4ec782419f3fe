/* One labelled parameter control (number + slider, switch, select or lines) with its help text. */
import { h } from './dom.js';

function parseNum(raw, def) {
  if (String(raw).trim() === '') return def.optional ? null : undefined;
  const n = Number(raw);
  if (!Number.isFinite(n) || (def.type === 'int' && !Number.isInteger(n)) || n < def.min || n > def.max) return undefined;
  return n;
}
const unescapeStop = (s) => s.replace(/\\n/g, '\n').replace(/\\t/g, '\t');
const escapeStop = (s) => s.replace(/\n/g, '\\n').replace(/\t/g, '\\t');
/** One labelled control with help text; ``onChange(value)`` gets valid values only. */
export function field(def, scope, value, onChange) {
  const id = `p-${scope}-${def.key}`, helpId = id + '-help';
  const range = def.min != null && def.type !== 'bool' ? ` Range ${def.min}–${def.max}${def.optional ? ', or empty' : ''}.` : '';
  const flag = def.flag ? h('code', { class: 'flag', text: def.flag }) : null;
  const wrap = h('div', { class: 'field', 'data-key': def.key });
  const help = h('p', { class: 'help', id: helpId }, def.help + range, flag ? ' ' : null, flag);
  const common = { id, 'aria-describedby': helpId };
  let control, slider = null;
  if (def.type === 'bool') {
    control = h('input', { ...common, type: 'checkbox', class: 'switch', role: 'switch' });
    control.checked = !!value;
    control.addEventListener('change', () => onChange(control.checked));
  } else if (def.type === 'select') {
    control = h('select', common, def.options.map((o) => h('option', { value: o, text: o })));
    control.value = value;
    control.addEventListener('change', () => onChange(control.value));
  } else if (def.type === 'lines') {
    control = h('textarea', { ...common, class: 'input', rows: 2, spellcheck: 'false', placeholder: 'none' });
    control.value = (value || []).map(escapeStop).join('\n');
    control.addEventListener('input', () => onChange(control.value.split('\n').filter((s) => s !== '').map(unescapeStop)));
    wrap.append(h('label', { for: id, text: def.label }), control, help);
    return wrap;
  } else {
    control = h('input', { ...common, type: 'number', min: def.min, max: def.max, step: def.step ?? (def.type === 'int' ? 1 : 'any'),
      placeholder: def.placeholder, inputmode: def.type === 'int' ? 'numeric' : 'decimal' });
    control.value = value ?? '';
    const commit = (raw, from) => {
      const v = parseNum(raw, def);
      control.setAttribute('aria-invalid', String(v === undefined));
      if (v === undefined) return;
      if (from === slider) control.value = raw;
      else if (slider && v != null) slider.value = v;
      onChange(v);
    };
    control.addEventListener('input', () => commit(control.value, control));
    if (def.slider) {
      slider = h('input', { type: 'range', min: def.slider[0], max: def.slider[1], step: def.step ?? 1, 'aria-label': def.label, 'aria-describedby': helpId });
      slider.value = value ?? def.slider[0];
      slider.addEventListener('input', () => commit(slider.value, slider));
    }
  }
  wrap.append(...[h('div', { class: 'field-row' }, h('label', { for: id, text: def.label }), control), slider, help].filter(Boolean));
  return wrap;
}
