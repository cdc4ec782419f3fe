/* Chat messages on screen: one node per stored message, with its actions, the model, parameters
   and stats it was made with, its warnings and its error. The flows (send, regenerate, edit,
   continue) are in chat.js; it passes them in as ``actions``. */
import { $, copyText, h } from './dom.js';
import { paramsLine } from './conversations.js';
import { renderMarkdown } from './markdown.js';
import { errorBox, renderStats, renderWarnings } from './stats.js';

export const messagesEl = () => $('#messages');
export function nearBottom() { const m = messagesEl(); return m.scrollHeight - m.scrollTop - m.clientHeight < 80; }
export function scrollDown() { const m = messagesEl(); m.scrollTop = m.scrollHeight; }

/** Build (or rebuild) the node of ``msg`` and put it at the end of the list. */
export function addMessageNode(msg, actions) {
  $('#chat-empty').hidden = true;
  const isUser = msg.role === 'user';
  const body = h('div', { class: 'msg-body' + (isUser ? '' : ' md') });
  const btn = (label, cls, onclick, aria) => h('button', { type: 'button', class: `btn small quiet ${cls}`, text: label, 'aria-label': aria || label, onclick });
  const tools = h('span', { class: 'actions' },
    btn('Copy', 'act-copy', (e) => copyText(msg.content, e.currentTarget), 'Copy message'),
    isUser ? btn('Edit', 'act-edit', () => actions.edit(msg), 'Edit and resend') : null);
  msg.node = h('article', { class: `msg ${msg.role}`, 'data-id': msg.id, 'aria-label': isUser ? 'Your message' : 'Reply' },
    h('div', { class: 'msg-head' }, h('span', { class: 'who', text: isUser ? 'You' : '' }), tools),
    h('p', { class: 'msg-note', hidden: true }),
    body,
    h('div', { class: 'msg-progress', role: 'status', hidden: true }),
    h('div', { class: 'msg-foot', hidden: true }),
    h('div', { class: 'stats' }), h('p', { class: 'msg-params' }), h('div', { class: 'warnings' }), h('div', { class: 'msg-error' }));
  if (isUser) body.textContent = msg.content;
  messagesEl().append(msg.node);
  paintAssistant(msg, false, actions);
  return msg.node;
}

/** Paint a reply: its text, and when it is done its stats, parameters, warnings and error. */
export function paintAssistant(msg, streaming, actions) {
  if (!msg.node || msg.role !== 'assistant') return;
  const n = msg.node, stick = nearBottom();
  $('.msg-body', n).innerHTML = msg.content ? renderMarkdown(msg.content) : '';
  $('.msg-body', n).classList.toggle('typing', streaming);
  n.dataset.pieces = msg.pieces || 0;
  $('.who', n).textContent = msg.model || 'assistant';
  n.setAttribute('aria-label', `Reply from ${msg.model || 'the model'}`);
  n.classList.toggle('error', !!msg.error && !msg.content);
  const note = $('.msg-note', n);
  note.hidden = !msg.note; note.textContent = msg.note || '';
  if (!streaming) {
    // A failed request shows no stats at all: neither its own (it has none) nor an older reply's.
    if (msg.stats && !msg.error) renderStats($('.stats', n), msg.stats); else $('.stats', n).replaceChildren();
    $('.msg-params', n).textContent = msg.params ? paramsLine(msg.params) : '';
    renderWarnings($('.warnings', n), msg.warnings);
    $('.msg-error', n).replaceChildren(...(msg.error ? [errorBox(msg.error)] : []));
    const foot = $('.msg-foot', n);
    const canContinue = msg.finish === 'length' && !msg.error && actions;
    foot.hidden = !canContinue;
    foot.replaceChildren(...(canContinue ? [h('span', { class: 'hint', text: 'The reply stopped at max tokens.' }),
      h('button', { type: 'button', class: 'btn small act-continue', text: 'Continue', onclick: () => actions.continueReply(msg) })] : []));
  } else {
    $('.stats', n).replaceChildren(); $('.msg-params', n).textContent = ''; $('.msg-error', n).replaceChildren();
    $('.warnings', n).replaceChildren(); $('.msg-foot', n).hidden = true;
  }
  if (stick) scrollDown();
}

/** The progress line of a reply that has no text yet ("Loading qwen… 3.2 s"); null hides it. */
export function paintProgress(msg, text) {
  if (!msg.node) return;
  const el = $('.msg-progress', msg.node);
  el.hidden = !text;
  el.replaceChildren(...(text ? [h('span', { class: 'spinner', 'aria-hidden': 'true' }), h('span', { text })] : []));
}

/** The inline editor of a user message: Save & send replaces it and drops what came after. */
export function openEditor(msg, onSave) {
  const body = $('.msg-body', msg.node);
  const area = h('textarea', { class: 'input edit-input', rows: Math.min(12, msg.content.split('\n').length + 1), 'aria-label': 'Edit message' });
  area.value = msg.content;
  const close = () => { body.textContent = msg.content; };
  const save = () => { const text = area.value.trim(); if (text) onSave(text); else close(); };
  area.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) { e.preventDefault(); save(); }
    if (e.key === 'Escape') { e.preventDefault(); close(); }
  });
  body.replaceChildren(area, h('div', { class: 'edit-actions' },
    h('button', { type: 'button', class: 'btn small primary act-save', text: 'Save & send', onclick: save }),
    h('button', { type: 'button', class: 'btn small act-cancel', text: 'Cancel', onclick: close })));
  area.focus();
}
