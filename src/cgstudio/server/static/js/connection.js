/* Is `cgstudio serve` there? GET /health every 2 s (no key needed). A failed probe says so at once
   ("cgstudio serve is not reachable at …; is it running?"), retries after 1, 2, 4, 4… s and, when
   the server answers again, tells the page to read its models again. A lost server is therefore
   shown within 2 s + the 1.5 s probe timeout. */
import { $, h } from './dom.js';

const EVERY_MS = 2000, TIMEOUT_MS = 1500, BACKOFF_MS = [1000, 2000, 4000];
const conn = { up: null, failures: 0, timer: null, countdown: null, retryAt: 0, onUp: [], onHealth: [] };

export const unreachableMessage = () => `cgstudio serve is not reachable at ${location.origin}; is it running?`;
/** fetch() rejects with a TypeError when nothing answers (refused, reset, DNS); HTTP errors resolve. */
export const isUnreachable = (e) => e instanceof TypeError;
export const serverUp = () => conn.up !== false;
/** ``fn()`` runs when the server answers again after it was lost. */
export function onServerBack(fn) { conn.onUp.push(fn); }
/** ``fn(health)`` gets every /health answer: { models: [{ name, loaded, loading }], queue_depth }. */
export function onHealth(fn) { conn.onHealth.push(fn); }

async function probe() {
  const ctrl = new AbortController(), t = setTimeout(() => ctrl.abort(), TIMEOUT_MS);
  try {
    const res = await fetch('/health', { signal: ctrl.signal, cache: 'no-store' });
    if (!res.ok) throw new Error(`/health answered HTTP ${res.status}`);
    return await res.json();
  } finally { clearTimeout(t); }
}
function schedule(ms) { clearTimeout(conn.timer); conn.retryAt = performance.now() + ms; conn.timer = setTimeout(check, ms); }

function showDown(detail) {
  const banner = $('#server-banner'), secs = Math.max(0, Math.ceil((conn.retryAt - performance.now()) / 1000));
  banner.hidden = false;
  banner.replaceChildren(h('strong', { text: unreachableMessage() }),
    h('span', { class: 'muted', text: ` ${detail ? detail + '. ' : ''}Retrying in ${secs} s…` }),
    h('button', { type: 'button', class: 'btn small', id: 'btn-retry', text: 'Retry now', onclick: () => checkServerNow() }));
  $('#server-dot').className = 'dot';
  $('#server-status').textContent = 'Not connected';
  document.querySelectorAll('#model-list .dot').forEach((d) => { d.className = 'dot'; d.title = 'state unknown: no server'; });
}
export async function check() {
  let health = null, detail = '';
  try { health = await probe(); } catch (e) { detail = e.name === 'AbortError' ? `/health took over ${TIMEOUT_MS / 1000} s` : (isUnreachable(e) ? '' : e.message); }
  if (health) {
    const wasDown = conn.up === false;
    conn.up = true; conn.failures = 0;
    clearInterval(conn.countdown); conn.countdown = null;
    $('#server-banner').hidden = true;
    document.body.dataset.server = 'up';
    conn.onHealth.forEach((fn) => fn(health));
    if (wasDown) conn.onUp.forEach((fn) => fn());
    schedule(EVERY_MS);
    return;
  }
  conn.up = false; conn.failures++;
  document.body.dataset.server = 'down';
  schedule(BACKOFF_MS[Math.min(conn.failures, BACKOFF_MS.length) - 1]);
  showDown(detail);
  clearInterval(conn.countdown);
  conn.countdown = setInterval(() => showDown(detail), 500);
}
/** Probe now (a request just failed), instead of at the next tick. */
export function checkServerNow() { clearTimeout(conn.timer); check(); }
export function startMonitor() { schedule(EVERY_MS); }
