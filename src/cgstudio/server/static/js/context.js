/* Context files: other files the model sees before the current one (sent as input_extra). */
import { $, h } from './dom.js';
import { save, saveSoon, state } from './state.js';

export function renderContextFiles() {
  $('#ctx-count').textContent = String(state.contextFiles.length);
  $('#ctx-list').replaceChildren(...state.contextFiles.map((f, i) => {
    const text = h('textarea', { class: 'input', rows: 5, spellcheck: 'false', placeholder: 'File contents…', 'aria-label': `Context file ${i + 1} text`,
      oninput: (e) => { f.text = e.target.value; saveSoon(); } });
    text.value = f.text;
    return h('div', { class: 'ctx-file' },
      h('div', { class: 'ctx-file-head' },
        h('input', { type: 'text', value: f.filename, spellcheck: 'false', placeholder: 'path/to/file.py', 'aria-label': `Context file ${i + 1} path`,
          oninput: (e) => { f.filename = e.target.value; saveSoon(); } }),
        h('button', { type: 'button', class: 'btn small', text: 'Remove', 'aria-label': `Remove context file ${i + 1}`,
          onclick: () => { state.contextFiles.splice(i, 1); save(); renderContextFiles(); } })),
      text);
  }));
}

export function bindContextFiles() {
  $('#ctx-add').addEventListener('click', () => {
    state.contextFiles.push({ filename: '', text: '' }); save(); renderContextFiles();
    $('#ctx-list .ctx-file:last-child input').focus();
  });
}
