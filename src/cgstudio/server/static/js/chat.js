/* Chat view: streamed replies rendered as markdown, with stats and warnings under each. */
import { $, $$, copyText, h } from './dom.js';
import { api, guardsBody, samplingBody, sseDocs } from './api.js';
import { renderMarkdown } from './markdown.js';
import { refreshModels } from './models.js';
import { currentModel, state } from './state.js';
import { chart, errorBox, renderStats, renderWarnings } from './stats.js';

const chat = { messages: [], controller: null };
const messagesEl = () => $('#messages');
function nearBottom() { const m = messagesEl(); return m.scrollHeight - m.scrollTop - m.clientHeight < 80; }
function scrollDown() { const m = messagesEl(); m.scrollTop = m.scrollHeight; }
function addMessageNode(msg) {
  $('#chat-empty').hidden = true;
  const body = h('div', { class: 'msg-body' + (msg.role === 'assistant' ? ' md' : '') });
  if (msg.role === 'user') body.textContent = msg.content;
  const copy = h('button', { type: 'button', class: 'btn small quiet', 'aria-label': 'Copy message', text: 'Copy',
    onclick: (e) => copyText(msg.content, e.currentTarget) });
  msg.node = h('article', { class: `msg ${msg.role}`, 'aria-label': msg.role === 'user' ? 'Your message' : `Reply from ${msg.model}` },
    h('div', { class: 'msg-head' }, h('span', { class: 'who', text: msg.role === 'user' ? 'You' : msg.model }), h('span', { class: 'actions' }, copy)),
    body, h('div', { class: 'stats' }), h('div', { class: 'warnings' }));
  messagesEl().append(msg.node);
  scrollDown();
  return msg.node;
}
function paintAssistant(msg, streaming) {
  const body = $('.msg-body', msg.node), stick = nearBottom();
  body.innerHTML = msg.content ? renderMarkdown(msg.content) : '';
  body.classList.toggle('typing', streaming);
  if (stick) scrollDown();
}
function setChatBusy(busy) {
  $('#btn-stop').hidden = !busy; $('#btn-send').hidden = busy;
  $('#btn-regen').disabled = busy; $('#chat-input').setAttribute('aria-busy', String(busy));
}
async function runAssistant() {
  const model = currentModel('chat');
  if (!model) return;
  const history = chat.messages.filter((m) => !m.failed).map(({ role, content }) => ({ role, content }));
  const system = state.systemPrompt.trim() ? [{ role: 'system', content: state.systemPrompt }] : [];
  const msg = { role: 'assistant', content: '', model: model.id, pieces: 0 };
  chat.messages.push(msg); addMessageNode(msg); paintAssistant(msg, true);
  const ctrl = new AbortController(); chat.controller = ctrl; setChatBusy(true); chart.start();
  const body = { model: model.id, messages: [...system, ...history], stream: true, stream_options: { include_usage: true },
    max_tokens: state.sampling.max_tokens, ...samplingBody(), ...guardsBody() };
  const t0 = performance.now(), fin = {};
  let frame = 0;
  try {
    const res = await api('/v1/chat/completions', { method: 'POST', body, signal: ctrl.signal });
    for await (const doc of sseDocs(res)) {
      const choice = doc.choices && doc.choices[0], piece = choice && choice.delta && choice.delta.content;
      if (piece) {
        fin.firstAt ??= performance.now();
        msg.content += piece; msg.pieces++; chart.tick();
        msg.node.dataset.pieces = msg.pieces;
        if (!frame) frame = requestAnimationFrame(() => { frame = 0; paintAssistant(msg, true); });
      }
      if (choice && choice.finish_reason) fin.finish = choice.finish_reason;
      if (doc.timings) fin.timings = doc.timings;
      if (doc.warnings) fin.warnings = doc.warnings;
      if (doc.usage) fin.usage = doc.usage;
    }
  } catch (e) {
    if (e.name === 'AbortError') fin.stopped = true; else fin.error = e.message;
  }
  cancelAnimationFrame(frame);
  if (chat.controller === ctrl) chat.controller = null;
  setChatBusy(false);
  paintAssistant(msg, false);
  const t = fin.timings || {}, u = fin.usage || {};
  const stop = fin.stopped ? 'stopped' : (fin.warnings || []).some((w) => w.code === 'repetition') ? 'repetition' : fin.finish;
  renderStats($('.stats', msg.node), fin.timings ? {
    ttft: t.thought_for_s ?? t.time_to_first_token_s, ptps: t.prompt_tokens_per_s, gtps: t.generation_tokens_per_s,
    promptTokens: u.prompt_tokens, promptEvaluated: t.prompt_tokens_evaluated, cached: t.prompt_tokens_reused,
    genTokens: u.completion_tokens, stop, loadS: t.load_s,
  } : { ttft: fin.firstAt ? (fin.firstAt - t0) / 1000 : null, genTokens: msg.pieces, stop });
  renderWarnings($('.warnings', msg.node), fin.warnings);
  if (fin.error) {
    msg.node.append(errorBox(fin.error));
    if (!msg.content) { msg.failed = true; msg.node.classList.add('error'); }
  }
  chart.stop(t.generation_tokens_per_s);
  refreshModels().catch(() => {});
}
function sendChat() {
  const input = $('#chat-input'), text = input.value.trim();
  if (!text || chat.controller) return;
  input.value = '';
  const msg = { role: 'user', content: text };
  chat.messages.push(msg); addMessageNode(msg);
  runAssistant();
}
function regenerate() {
  if (chat.controller) return;
  while (chat.messages.length && chat.messages[chat.messages.length - 1].role === 'assistant') chat.messages.pop().node.remove();
  if (chat.messages.length) runAssistant();
}
function clearChat() {
  if (chat.controller) chat.controller.abort();
  chat.messages = [];
  $$('.msg', messagesEl()).forEach((n) => n.remove());
  $('#chat-empty').hidden = false;
}

export function bindChat() {
  $('#composer').addEventListener('submit', (e) => { e.preventDefault(); sendChat(); });
  $('#chat-input').addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) { e.preventDefault(); sendChat(); }
  });
  $('#btn-stop').addEventListener('click', () => chat.controller && chat.controller.abort());
  $('#btn-regen').addEventListener('click', regenerate);
  $('#btn-clear').addEventListener('click', clearChat);
  messagesEl().addEventListener('click', (e) => {
    const btn = e.target.closest('.copy-code');
    if (btn) copyText($('code', btn.closest('.codeblock')).textContent, btn);
  });
}
