/* Reply statistics, guard warnings, error boxes and the live tokens/s chart in the top bar. */
import { $, fmt, h } from './dom.js';
import { WARNING_INFO } from './defs.js';

function rate(value, count) { return value == null || (count != null && count < 2) ? '—' : `${fmt(value, 1)} tok/s`; }
export function renderStats(el, s) {
  const item = (cls, label, value) => h('span', { class: cls }, `${label} `, h('b', { text: value }));
  const tokens = `${s.promptTokens ?? '?'} → ${s.genTokens ?? '?'}` + (s.cached ? ` (${s.cached} cached)` : '');
  el.replaceChildren(...[
    item('s-ttft', 'Thought for', s.ttft == null ? '—' : `${fmt(s.ttft, 2)} s`),
    item('s-ptps', 'Prompt', rate(s.ptps, s.promptEvaluated)),
    item('s-gtps', 'Generation', rate(s.gtps, s.genTokens)),
    item('s-tokens', 'Tokens', tokens),
    item('s-stop', 'Stop', s.stop || '—'),
    s.loadS > 0.05 ? item('s-load', 'Load', `${fmt(s.loadS, 2)} s`) : null,
  ].filter(Boolean));
}
export function renderWarnings(el, warnings) {
  el.replaceChildren(...(warnings || []).map((w) => {
    const info = WARNING_INFO[w.code] || { label: String(w.code).replace(/_/g, ' '), fix: '' };
    return h('div', { class: 'warning', role: 'status', 'data-code': w.code },
      h('span', { class: 'badge', text: info.label }), h('span', { text: w.message }),
      info.fix ? h('span', { class: 'fix', text: 'Fix: ' + info.fix }) : null);
  }));
}
export function errorBox(message) { return h('div', { class: 'banner error', role: 'alert', style: 'margin:8px 0 0', text: message }); }

/** Tokens per second over the reply, from streamed pieces (one piece is about one token). */
export const chart = {
  samples: [], times: [], t0: 0, timer: null, final: null, live: 0,
  start() {
    this.stop(null, true);
    Object.assign(this, { samples: [{ x: 0, y: 0 }], times: [], final: null, live: 0, t0: performance.now() });
    this.timer = setInterval(() => this.sample(), 150);
    this.draw();
  },
  tick() { this.times.push(performance.now()); },
  /** A failed request: no rate at all, and none left over from the previous reply. */
  reset() {
    this.stop(null, true);
    Object.assign(this, { samples: [], times: [], final: null, live: 0 });
    this.draw();
  },
  sample() {
    const now = performance.now(), first = this.times[0];
    let y = 0;
    if (first != null && now - first > 120) {
      const win = Math.min(1000, now - first);
      y = this.times.filter((t) => t > now - win).length / (win / 1000);
    }
    this.samples.push({ x: (now - this.t0) / 1000, y }); this.live = y; this.draw();
  },
  stop(finalRate, silent = false) {
    if (this.timer) { clearInterval(this.timer); this.timer = null; if (!silent) this.sample(); }
    if (!silent) this.final = finalRate ?? null;
    this.draw();
  },
  draw() {
    const c = $('#tps-chart'), dpr = window.devicePixelRatio || 1, w = c.clientWidth, hgt = c.clientHeight;
    if (!w || !hgt) return;
    if (c.width !== Math.round(w * dpr)) { c.width = Math.round(w * dpr); c.height = Math.round(hgt * dpr); }
    const ctx = c.getContext('2d');
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0); ctx.clearRect(0, 0, w, hgt);
    const pts = this.samples;
    const shown = this.timer ? this.live : (this.final ?? (this.times.length ? this.live : null));
    $('#tps-value').textContent = `${fmt(pts.length > 1 ? shown : null, 1)} tok/s`;
    c.setAttribute('aria-label', pts.length > 1 ? `Tokens per second over the last reply: ${fmt(shown, 1)}` : 'Tokens per second: no reply yet');
    if (pts.length < 2) return;
    const maxY = Math.max(5, this.final || 0, ...pts.map((p) => p.y)) * 1.2, maxX = Math.max(1, pts[pts.length - 1].x);
    const X = (x) => 2 + (x / maxX) * (w - 4), Y = (y) => hgt - 3 - (y / maxY) * (hgt - 6);
    ctx.beginPath(); ctx.moveTo(X(0), Y(0));
    for (const p of pts) ctx.lineTo(X(p.x), Y(p.y));
    const css = getComputedStyle(c);
    ctx.strokeStyle = css.getPropertyValue('--accent').trim() || '#7aa7ff'; ctx.lineWidth = 1.5; ctx.stroke();
    ctx.lineTo(X(pts[pts.length - 1].x), hgt); ctx.lineTo(X(0), hgt); ctx.closePath();
    ctx.globalAlpha = 0.15; ctx.fillStyle = ctx.strokeStyle; ctx.fill(); ctx.globalAlpha = 1;
    if (this.final != null) {
      ctx.setLineDash([3, 3]); ctx.strokeStyle = css.getPropertyValue('--ok').trim() || '#47c38b'; ctx.lineWidth = 1;
      ctx.beginPath(); ctx.moveTo(0, Y(this.final)); ctx.lineTo(w, Y(this.final)); ctx.stroke(); ctx.setLineDash([]);
    }
  },
};
