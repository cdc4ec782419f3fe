/* CodeGemma Studio: the entry module. It lays out the views, tabs and the narrow-window drawer,
   wires the controls of every part and starts the page. No build step: the browser loads these
   ES modules from /static/js/ as they are. */
import { $, $$, debounce } from './dom.js';
import { askKey } from './api.js';
import { bindChat, renderChat } from './chat.js';
import { check, onHealth, onServerBack, startMonitor } from './connection.js';
import { activeConversation, deleteConversation, download, newConversation, onConversationChange,
  renameConversation, renderConversationList } from './conversations.js';
import { bindContextFiles, renderContextFiles } from './context.js';
import { bindEditor, renderEditor } from './editor.js';
import { bindLoad, buildLoad, refreshAdmin } from './load.js';
import { applyHealth, dismissDemoBanner, refreshModels, renderModels, selectModel } from './models.js';
import { bindParams, buildGuards, buildSampling, checkGuardSupport } from './params.js';
import { refreshPrompt } from './prompt.js';
import { save, state } from './state.js';
import { chart } from './stats.js';

const VIEW_TITLE = { chat: 'Chat', completion: 'Completion' };
function setView(view) {
  state.view = view; save();
  $$('.nav [data-view]').forEach((b) => b.setAttribute('aria-current', b.dataset.view === view ? 'page' : 'false'));
  $('#view-chat').hidden = view !== 'chat';
  $('#view-completion').hidden = view !== 'completion';
  $('#view-title').textContent = VIEW_TITLE[view];
  renderModels();
  buildLoad();
  if (view === 'completion') renderEditor();
}
function setTab(tab, focus = false) {
  state.paramsTab = tab; save();
  $$('.tabs [role=tab]').forEach((b) => {
    const on = b.dataset.tab === tab;
    b.setAttribute('aria-selected', String(on)); b.tabIndex = on ? 0 : -1;
    $('#' + b.getAttribute('aria-controls')).hidden = !on;
    if (on && focus) b.focus();
  });
}
function setParamsOpen(open) {
  $('#params').classList.toggle('open', open);
  $('#btn-params').setAttribute('aria-expanded', String(open));
  if (open) $('.tabs [aria-selected=true]').focus(); else $('#btn-params').focus();
}
/** The chat list as a drawer (narrow windows, where the sidebar is a top bar). ``focus``: move focus
 * into the drawer when it opens and back to its button when it closes. */
function setChatsOpen(open, focus = true) {
  $('#chats').classList.toggle('open', open);
  $('#btn-chats').setAttribute('aria-expanded', String(open));
  if (!focus) return;
  if (open) ($('#conv-list [aria-current=true]') || $('#conv-new')).focus(); else $('#btn-chats').focus();
}

function bindUI() {
  $$('.nav [data-view]').forEach((b) => b.addEventListener('click', () => setView(b.dataset.view)));
  $('#model-select').addEventListener('change', (e) => selectModel(e.target.value));
  $('#btn-key').addEventListener('click', async () => {
    if (await askKey('Set the key the server was started with (--api-key or CGSTUDIO_API_KEY).')) boot();
  });
  bindChat();
  bindConversations();
  $('#demo-dismiss').addEventListener('click', dismissDemoBanner);
  onHealth(applyHealth);
  onServerBack(() => boot());
  bindEditor();
  bindContextFiles();
  // Parameters
  $$('.tabs [role=tab]').forEach((b) => b.addEventListener('click', () => setTab(b.dataset.tab)));
  $('.tabs').addEventListener('keydown', (e) => {
    const tabs = $$('.tabs [role=tab]'), i = tabs.findIndex((t) => t.dataset.tab === state.paramsTab);
    const step = { ArrowRight: 1, ArrowLeft: -1 }[e.key];
    if (step) { e.preventDefault(); setTab(tabs[(i + step + tabs.length) % tabs.length].dataset.tab, true); }
  });
  bindParams();
  bindLoad();
  $('#btn-params').addEventListener('click', () => setParamsOpen(!$('#params').classList.contains('open')));
  $('#btn-params-close').addEventListener('click', () => setParamsOpen(false));
  $('#params').addEventListener('keydown', (e) => { if (e.key === 'Escape' && $('#params').classList.contains('open')) setParamsOpen(false); });
  window.addEventListener('resize', debounce(() => chart.draw(), 100));
}

function bindConversations() {
  const chatsOpen = () => $('#chats').classList.contains('open');
  $('#btn-chats').addEventListener('click', () => setChatsOpen(!chatsOpen()));
  $('#btn-chats-close').addEventListener('click', () => setChatsOpen(false));
  $('#chats').addEventListener('keydown', (e) => { if (e.key === 'Escape' && chatsOpen()) { e.preventDefault(); setChatsOpen(false); } });
  // Picking a chat, or a new one, closes the drawer: the chat it shows is what the user asked for.
  onConversationChange(() => { if (chatsOpen()) { setChatsOpen(false, false); $('#chat-input').focus(); } });
  $('#conv-new').addEventListener('click', () => { newConversation(); $('#chat-input').focus(); });
  $('#conv-title').addEventListener('change', (e) => { const c = activeConversation(); if (c) renameConversation(c, e.target.value); });
  $('#conv-title').addEventListener('keydown', (e) => { if (e.key === 'Enter') { e.preventDefault(); e.target.blur(); } });
  $('#conv-rename').addEventListener('click', () => { const t = $('#conv-title'); t.focus(); t.select(); });
  $('#conv-delete').addEventListener('click', () => {
    const c = activeConversation();
    if (c && confirm(`Delete the chat "${c.title}"? This cannot be undone.`)) deleteConversation(c);
  });
  $('#conv-export-md').addEventListener('click', () => { const c = activeConversation(); if (c) download(c, 'md'); });
  $('#conv-export-json').addEventListener('click', () => { const c = activeConversation(); if (c) download(c, 'json'); });
}

async function boot() {
  try {
    await refreshModels();
  } catch (e) {
    $('#server-dot').className = 'dot';
    $('#server-status').textContent = e.status === 401 ? 'API key needed' : 'Not connected';
    if (e instanceof TypeError || e.status >= 500) check();  // the monitor says what is wrong and retries
    return;
  }
  await refreshAdmin();
  if (state.view === 'completion' && state.showPrompt) refreshPrompt();
}

buildSampling(); buildGuards(); renderContextFiles(); bindUI();
setTab(state.paramsTab); setView(state.view);
$('#prompt-panel').hidden = !state.showPrompt;
renderConversationList(); renderChat();
chart.draw();
checkGuardSupport();
boot();
startMonitor();
