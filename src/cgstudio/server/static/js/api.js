/* API client: auth (401 -> ask for the key), errors, server-sent events, the shared request fields. */
import { $ } from './dom.js';
import { GUARDS_OFF } from './defs.js';
import { ADMIN_KEY, API_KEY, state } from './state.js';

const CLIENT_ID = 'studio-' + Math.random().toString(36).slice(2, 10);
export class ApiError extends Error {
  constructor(status, message, code) { super(message); this.status = status; this.code = code; }
}
async function errorMessage(res) {
  try {
    const j = await res.json(); const e = j.error ?? j.detail ?? j;
    return typeof e === 'string' ? e : (e.message || JSON.stringify(e));
  } catch { return `HTTP ${res.status} ${res.statusText}`; }
}
function keyFor(path) {
  const api = localStorage.getItem(API_KEY);
  return path.startsWith('/admin/') ? (localStorage.getItem(ADMIN_KEY) || api) : api;
}
/** fetch() with the stored key; a 401 asks for the key and retries. Resolves to an ok Response. */
export async function api(path, { method = 'GET', body, signal } = {}) {
  for (let attempt = 0; ; attempt++) {
    const headers = { 'X-Client-Id': CLIENT_ID };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    const key = keyFor(path);
    if (key) headers.Authorization = 'Bearer ' + key;
    const res = await fetch(path, { method, headers, signal, body: body === undefined ? undefined : JSON.stringify(body) });
    if (res.ok) return res;
    const message = await errorMessage(res);
    if (res.status === 401 && attempt < 5 && await askKey(message, path.startsWith('/admin/'))) continue;
    throw new ApiError(res.status, message);
  }
}
let keyPrompt = null;
export function askKey(reason, admin = false) {
  if (keyPrompt) return keyPrompt;
  const dlg = $('#key-dialog');
  $('#key-title').textContent = admin ? 'Admin key required' : 'API key required';
  $('#key-reason').textContent = reason;
  $('#key-input').value = '';
  keyPrompt = new Promise((resolve) => {
    const done = (ok) => { if (dlg.open) dlg.close(); keyPrompt = null; resolve(ok); };
    $('#key-form').onsubmit = (e) => {
      e.preventDefault();
      const value = $('#key-input').value.trim();
      if (value) localStorage.setItem(admin ? ADMIN_KEY : API_KEY, value);
      else localStorage.removeItem(admin ? ADMIN_KEY : API_KEY);
      done(!!value);
    };
    $('#key-cancel').onclick = () => done(false);
    dlg.oncancel = (e) => { e.preventDefault(); done(false); };
    dlg.showModal();
    $('#key-input').focus();
  });
  return keyPrompt;
}
/** The JSON documents of an SSE response, until [DONE]; a mid-stream {"error"} is thrown. */
export async function* sseDocs(res) {
  const reader = res.body.getReader(); const dec = new TextDecoder(); let buf = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buf += dec.decode(value, { stream: true });
    let cut;
    while ((cut = buf.indexOf('\n\n')) >= 0) {
      const block = buf.slice(0, cut); buf = buf.slice(cut + 2);
      const data = block.split('\n').filter((l) => l.startsWith('data:')).map((l) => l.slice(5).trimStart()).join('\n');
      if (!data) continue;
      if (data === '[DONE]') return;
      const doc = JSON.parse(data);
      if (doc.error) throw new ApiError(500, doc.error.message || String(doc.error), doc.error.code);
      yield doc;
    }
  }
}
export function samplingBody() {
  const s = state.sampling;
  const body = { temperature: s.temperature, top_k: s.top_k, top_p: s.top_p, min_p: s.min_p, repeat_penalty: s.repeat_penalty };
  if (s.stop && s.stop.length) body.stop = s.stop;
  if (s.seed != null) body.seed = s.seed;
  return body;
}
export const guardsBody = () => ({ guards: state.guardsOn ? { ...state.guards } : { ...GUARDS_OFF } });
