/* Chat view: the shown conversation, streamed replies, regenerate, edit-and-resend and Continue.

Switching models mid-chat: a request carries only the replies that the answering model wrote
itself. Replies from other models are left out, and the user's turns around them are joined
into one, so a new model starts from the user's messages and never sees another model's text
(which, from a small or pretrained model, is often garbage). The reply says so in a note. */
import { $, $$, copyText } from './dom.js';
import { api, guardsBody, samplingBody, sseDocs } from './api.js';
import { isUnreachable, unreachableMessage, checkServerNow } from './connection.js';
import { activeConversation, ensureConversation, onConversationChange, saveConversations, saveConversationsSoon,
  touchConversation } from './conversations.js';
import { addMessageNode, messagesEl, openEditor, paintAssistant, paintProgress, scrollDown } from './messages.js';
import { modelById, onModelsListed, setModelDot } from './models.js';
import { watchProgress } from './progress.js';
import { currentModel, state } from './state.js';
import { chart } from './stats.js';

export const CONTINUE_PROMPT = 'Continue exactly where your last reply stopped. Do not repeat what you already wrote.';
const chat = { controller: null, waiting: false };
const actions = { edit: editMessage, continueReply };
const newId = () => Date.now().toString(36) + Math.random().toString(36).slice(2, 8);

/** The messages a request sends for ``msgs`` when ``modelId`` answers (see the note at the top). */
export function requestMessages(msgs, modelId) {
  const out = [], dropped = new Set();
  for (const m of msgs) {
    if (m.role === 'assistant') {
      if (!m.content) continue;  // a failed reply
      if (m.model !== modelId) { dropped.add(m.model); continue; }
    }
    const last = out[out.length - 1];
    if (last && last.role === m.role) last.content += '\n\n' + m.content;
    else out.push({ role: m.role, content: m.content });
  }
  return { messages: out, dropped: [...dropped] };
}

export function renderChat() {
  const conv = activeConversation();
  $$('.msg', messagesEl()).forEach((n) => n.remove());
  for (const m of conv ? conv.messages : []) addMessageNode(m, actions);
  $('#chat-empty').hidden = !!(conv && conv.messages.length);
  $('#conv-title').value = conv ? conv.title : '';
  syncChatButtons();
  scrollDown();
}
export function syncChatButtons() {
  const conv = activeConversation(), busy = !!chat.controller;
  $('#btn-stop').hidden = !busy; $('#btn-send').hidden = busy;
  $('#btn-regen').disabled = busy || !(conv && conv.messages.some((m) => m.role === 'user'));
  $('#btn-clear').disabled = busy || !(conv && conv.messages.length);
  $('#chat-input').setAttribute('aria-busy', String(busy));
  $$('.act-edit, .act-continue').forEach((b) => { b.disabled = busy; });
  for (const id of ['#conv-title', '#conv-rename', '#conv-export-md', '#conv-export-json', '#conv-delete']) $(id).disabled = !conv;
}
function paramsSnapshot() {
  const s = state.sampling;
  return { temperature: s.temperature, top_k: s.top_k, top_p: s.top_p, min_p: s.min_p, repeat_penalty: s.repeat_penalty,
    max_tokens: s.max_tokens, seed: s.seed ?? null, stop: [...(s.stop || [])], guards: state.guardsOn,
    system: state.systemPrompt.trim() || undefined };
}

/** Stream one reply into ``msg``; ``continuation`` appends to a reply that stopped at max tokens. */
async function runAssistant(conv, msg, continuation = false) {
  const modelId = continuation ? msg.model : (currentModel('chat') || {}).id;
  if (!modelId) return;
  const before = conv.messages.slice(0, conv.messages.indexOf(msg) + (continuation ? 1 : 0));
  const { messages, dropped } = requestMessages(before, modelId);
  if (continuation) messages.push({ role: 'user', content: CONTINUE_PROMPT });
  const system = state.systemPrompt.trim() ? [{ role: 'system', content: state.systemPrompt }] : [];
  Object.assign(msg, { model: modelId, params: paramsSnapshot(), stats: null, warnings: null, error: null, finish: null });
  if (!continuation) Object.assign(msg, { content: '', pieces: 0 });
  msg.note = dropped.length ? `Sent without the replies of ${dropped.join(', ')}: ${modelId} answers from your messages only.` : null;
  if (msg.node && msg.node.isConnected) paintAssistant(msg, true, actions); else if (conv === activeConversation()) addMessageNode(msg, actions);
  const ctrl = new AbortController(); chat.controller = ctrl; syncChatButtons(); chart.start();
  const model = modelById(modelId), phases = [];
  setModelDot(modelId, model && model.loaded ? 'busy' : 'loading');
  const stopProgress = watchProgress(modelId, !!(model && model.loaded), (text, phase) => {
    if (phase && phases[phases.length - 1] !== phase) phases.push(phase);
    if (msg.node) { msg.node.dataset.phases = phases.join(' '); paintProgress(msg, text); }
  });
  const body = { model: modelId, messages: [...system, ...messages], stream: true, stream_options: { include_usage: true },
    max_tokens: state.sampling.max_tokens, ...samplingBody(), ...guardsBody() };
  const t0 = performance.now(), fin = {};
  let frame = 0, pieces = 0;
  try {
    const res = await api('/v1/chat/completions', { method: 'POST', body, signal: ctrl.signal });
    for await (const doc of sseDocs(res)) {
      const choice = doc.choices && doc.choices[0], piece = choice && choice.delta && choice.delta.content;
      if (piece) {
        if (fin.firstAt == null) { fin.firstAt = performance.now(); stopProgress(); setModelDot(modelId, 'busy'); }
        msg.content += piece; msg.pieces = (msg.pieces || 0) + 1; pieces++; chart.tick();
        saveConversationsSoon();
        if (!frame) frame = requestAnimationFrame(() => { frame = 0; paintAssistant(msg, true, actions); });
      }
      if (choice && choice.finish_reason) fin.finish = choice.finish_reason;
      if (doc.timings) fin.timings = doc.timings;
      if (doc.warnings) fin.warnings = doc.warnings;
      if (doc.usage) fin.usage = doc.usage;
    }
  } catch (e) {
    if (e.name === 'AbortError') fin.stopped = true;
    else fin.error = isUnreachable(e) ? unreachableMessage() : e.message;
  }
  stopProgress(); cancelAnimationFrame(frame);
  if (chat.controller === ctrl) chat.controller = null;
  const t = fin.timings || {}, u = fin.usage || {};
  const stop = fin.stopped ? 'stopped' : (fin.warnings || []).some((w) => w.code === 'repetition') ? 'repetition' : fin.finish;
  msg.finish = fin.stopped ? 'stopped' : fin.finish || null;
  msg.warnings = fin.warnings || null;
  msg.error = fin.error || null;
  msg.stats = fin.error ? null : fin.timings ? {
    ttft: t.thought_for_s ?? t.time_to_first_token_s, ptps: t.prompt_tokens_per_s, gtps: t.generation_tokens_per_s,
    promptTokens: u.prompt_tokens, promptEvaluated: t.prompt_tokens_evaluated, cached: t.prompt_tokens_reused,
    genTokens: u.completion_tokens, stop, loadS: t.load_s,
  } : { ttft: fin.firstAt ? (fin.firstAt - t0) / 1000 : null, genTokens: pieces, stop };
  if (fin.error) { chart.reset(); checkServerNow(); } else chart.stop(t.generation_tokens_per_s);
  touchConversation(conv);
  syncChatButtons();
  paintAssistant(msg, false, actions);
  setModelDot(modelId, fin.error ? 'idle' : 'loaded');
}

/** A send before the page knows the server's models (Enter right after the page opens) waits for
    the list instead of vanishing: the text stays in the box and goes out once a model is known. */
function holdSend(waiting) {
  chat.waiting = waiting;
  $('#btn-send').textContent = waiting ? 'Waiting for models…' : 'Send';
  $('#btn-send').title = waiting ? 'The message goes out once the server lists its models' : '';
}
function sendChat() {
  const input = $('#chat-input'), text = input.value.trim();
  if (!text || chat.controller) { if (chat.waiting) holdSend(false); return; }  // emptied while waiting
  if (!currentModel('chat')) { holdSend(!state.models.length); return; }
  holdSend(false);
  input.value = '';
  const conv = ensureConversation();
  const user = { id: newId(), role: 'user', content: text }, reply = { id: newId(), role: 'assistant', content: '' };
  conv.messages.push(user, reply);
  touchConversation(conv);
  addMessageNode(user, actions); addMessageNode(reply, actions);
  runAssistant(conv, reply);
}
function regenerate() {
  const conv = activeConversation();
  if (chat.controller || !conv) return;
  while (conv.messages.length && conv.messages[conv.messages.length - 1].role === 'assistant') {
    const gone = conv.messages.pop(); if (gone.node) gone.node.remove();
  }
  if (!conv.messages.length) return;
  const reply = { id: newId(), role: 'assistant', content: '' };
  conv.messages.push(reply); addMessageNode(reply, actions);
  runAssistant(conv, reply);
}
function editMessage(msg) {
  const conv = activeConversation();
  if (chat.controller || !conv || !conv.messages.includes(msg)) return;
  openEditor(msg, (text) => {
    const at = conv.messages.indexOf(msg);
    msg.content = text;
    conv.messages.splice(at + 1).forEach((m) => m.node && m.node.remove());
    $('.msg-body', msg.node).textContent = text;
    const reply = { id: newId(), role: 'assistant', content: '' };
    conv.messages.push(reply); addMessageNode(reply, actions);
    runAssistant(conv, reply);
  });
}
function continueReply(msg) {
  const conv = activeConversation();
  if (chat.controller || !conv || conv.messages[conv.messages.length - 1] !== msg) return;
  runAssistant(conv, msg, true);
}
function clearChat() {
  const conv = activeConversation();
  if (chat.controller) chat.controller.abort();
  if (conv) { conv.messages = []; saveConversations(); }
  renderChat();
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
  onConversationChange(renderChat);
  onModelsListed(() => { if (chat.waiting) sendChat(); });
}
