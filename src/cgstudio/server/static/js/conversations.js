/* Conversations kept in this browser (localStorage): the sidebar list, new, rename, delete, export.

A conversation is { id, title, created, updated, messages }. A message is
{ id, role, content, model?, params?, stats?, warnings?, finish?, error?, note? }: each reply keeps
the model, the sampling parameters and the stats it was made with. DOM nodes are never stored. */
import { $, h } from './dom.js';

const CONV_KEY = 'cgstudio.conversations.v1';
const ACTIVE_KEY = 'cgstudio.activeConversation';
const newId = () => Date.now().toString(36) + Math.random().toString(36).slice(2, 8);
const listeners = [];

function loadAll() {
  try {
    const list = JSON.parse(localStorage.getItem(CONV_KEY));
    return Array.isArray(list) ? list.filter((c) => c && c.id && Array.isArray(c.messages)) : [];
  } catch { return []; }
}
export const store = { list: loadAll(), activeId: localStorage.getItem(ACTIVE_KEY) };

function serialise() {
  return JSON.stringify(store.list.map((c) => ({ ...c, messages: c.messages.map(({ node, ...m }) => m) })));
}
/** Write every conversation now. A full store (quota) is reported on the status line, not thrown. */
export function saveConversations() {
  try {
    localStorage.setItem(CONV_KEY, serialise());
    localStorage.setItem(ACTIVE_KEY, store.activeId || '');
  } catch (e) {
    $('#server-status').textContent = `Could not save the conversations: ${e.message}`;
  }
}
let saveTimer = null;
/** Write soon (at most every 400 ms): used while a reply streams in. */
export function saveConversationsSoon() {
  if (!saveTimer) saveTimer = setTimeout(() => { saveTimer = null; saveConversations(); }, 400);
}

export const activeConversation = () => store.list.find((c) => c.id === store.activeId) || null;
/** The shown conversation; one is created when there is none. */
export function ensureConversation() {
  return activeConversation() || newConversation();
}
export function newConversation() {
  const now = Date.now();
  const conv = { id: newId(), title: 'New chat', created: now, updated: now, messages: [] };
  store.list.unshift(conv);
  store.activeId = conv.id;
  saveConversations(); changed();
  return conv;
}
export function openConversation(id) {
  if (!store.list.some((c) => c.id === id)) return;
  store.activeId = id;
  saveConversations(); changed();
}
export function renameConversation(conv, title) {
  conv.title = title.trim() || 'Untitled chat';
  conv.titled = true;
  saveConversations(); renderConversationList();
}
export function deleteConversation(conv) {
  store.list = store.list.filter((c) => c !== conv);
  if (store.activeId === conv.id) store.activeId = store.list[0] ? store.list[0].id : null;
  saveConversations(); changed();
}
/** After a message is added: the first user message names an untitled chat; the chat moves to the top. */
export function touchConversation(conv) {
  conv.updated = Date.now();
  if (!conv.titled) {
    const first = conv.messages.find((m) => m.role === 'user');
    if (first) conv.title = first.content.replace(/\s+/g, ' ').trim().slice(0, 60) || 'New chat';
  }
  store.list = [conv, ...store.list.filter((c) => c !== conv)];
  const title = $('#conv-title');
  if (conv.id === store.activeId && document.activeElement !== title) title.value = conv.title;
  saveConversations(); renderConversationList();
}
/** ``fn()`` runs whenever another conversation is shown (new, open, delete). */
export function onConversationChange(fn) { listeners.push(fn); }
function changed() { renderConversationList(); listeners.forEach((fn) => fn()); }

export function renderConversationList() {
  $('#conv-list').replaceChildren(...store.list.map((c) => h('li', {},
    h('button', { type: 'button', class: 'conv-item', 'data-id': c.id, 'aria-current': c.id === store.activeId ? 'true' : 'false',
      title: c.title, onclick: () => openConversation(c.id) },
    h('span', { class: 'conv-title', text: c.title }),
    h('span', { class: 'conv-meta', text: `${c.messages.length} message${c.messages.length === 1 ? '' : 's'}` })))));
}

// ---------- Export ----------
const slug = (s) => s.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '').slice(0, 40) || 'chat';
function fence(text) {
  const longest = Math.max(2, ...(text.match(/`+/g) || []).map((r) => r.length));
  return '`'.repeat(longest + 1);
}
export function paramsLine(p) {
  if (!p) return '';
  const parts = [`temperature ${p.temperature}`, `top-k ${p.top_k}`, `top-p ${p.top_p}`, `min-p ${p.min_p}`,
    `repeat penalty ${p.repeat_penalty}`, `max tokens ${p.max_tokens}`, `seed ${p.seed ?? 'random'}`];
  if (p.stop && p.stop.length) parts.push(`stop ${JSON.stringify(p.stop)}`);
  if (p.system) parts.push('system prompt');
  return parts.join(' · ');
}
export function statsLine(s) {
  if (!s) return '';
  const f = (v, d, unit) => (v == null ? '—' : `${Number(v).toFixed(d)}${unit}`);
  return [`thought for ${f(s.ttft, 2, ' s')}`, `generation ${f(s.gtps, 1, ' tok/s')}`,
    `tokens ${s.promptTokens ?? '?'} → ${s.genTokens ?? '?'}`, `stop ${s.stop || '—'}`].join(' · ');
}
export function conversationMarkdown(conv) {
  const out = [`# ${conv.title}`, '', `Exported from CodeGemma Studio on ${new Date().toISOString()}.`, ''];
  for (const m of conv.messages) {
    if (m.role === 'user') { out.push('## You', '', m.content, ''); continue; }
    out.push(`## ${m.model || 'assistant'}`, '');
    if (m.content) out.push(m.content, '');
    if (m.error) out.push(`> Error: ${m.error}`, '');
    const meta = [paramsLine(m.params), statsLine(m.stats)].filter(Boolean);
    if (meta.length) out.push(fence(meta.join('\n')) + 'text', ...meta, fence(meta.join('\n')), '');
  }
  return out.join('\n');
}
export function conversationJSON(conv) {
  const { messages, ...rest } = conv;
  return JSON.stringify({ format: 'cgstudio.conversation.v1', ...rest, messages: messages.map(({ node, ...m }) => m) }, null, 2);
}
export function download(conv, kind) {
  const md = kind === 'md';
  const blob = new Blob([md ? conversationMarkdown(conv) : conversationJSON(conv)], { type: md ? 'text/markdown' : 'application/json' });
  const a = h('a', { href: URL.createObjectURL(blob), download: `${slug(conv.title)}.${md ? 'md' : 'json'}` });
  document.body.append(a); a.click(); a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 1000);
}
