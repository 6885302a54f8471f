// SPDX-License-Identifier: Apache-2.0
// wsrelay chat page.
//
// Room URL scheme: the room lives in the fragment, `/#/<room>` (e.g. `/#/lobby`), default
// `lobby`. The fragment never reaches the server, so `/` always serves this page, and changing
// rooms is a `hashchange` without a reload; the WebSocket itself connects to `/<room>`.
// Room names are 1–64 characters of [A-Za-z0-9._~-], except "." and ".." (URL parsers would
// fold those path segments away and we would land in another room).
//
// Private rooms (`auth = "token"` on the server) need a signed token. A backend that issued one
// links to the page as `/?token=<token>#/<room>`; the page passes it on as the WebSocket URL's
// `?token=` (a browser cannot set an Authorization header on a WebSocket). Without one the page
// connects as before, which is all an open room needs.
//
// Wire format of our own messages (one JSON text message each; the server relays it unchanged):
//   {"v":1,"type":"chat","nick":"...","text":"...","ts":<ms since epoch>,"id":"<random hex>"}
// Anything else is shown as raw text from "(unknown)"; binary messages as their size.
//
// The server echoes every message to its sender too. A sent message is shown at once as
// "sending…" and, when its echo arrives, moved to the end of the list: the list is always in
// the server's order, and each message appears once.
//
// Safety: received data only ever reaches the DOM through textContent; never innerHTML.
'use strict';

const DEFAULT_ROOM = 'lobby';
const ROOM_RE = /^[A-Za-z0-9._~-]{1,64}$/;
const NICK_MAX = 32;
const NICK_KEY = 'wsrelay.nick';
const MAX_MESSAGES = 500;        // DOM entries kept; older ones are dropped so long sessions stay light
const MAX_SHOWN_CHARS = 10000;   // other clients may send far more than our 4000-char box allows
const RETRY_MIN_MS = 500;
const RETRY_MAX_MS = 10000;
const STABLE_MS = 5000;          // a connection must last this long before the backoff resets
const CONNECT_TIMEOUT_MS = 10000;
const STATES = ['connecting', 'open', 'closing', 'closed']; // indexed by WebSocket.readyState

const STRINGS = {
  en: {
    title: 'wsrelay chat', room: 'Room', join: 'Join', nick: 'Nickname', message: 'Message',
    messages: 'Messages', placeholder: 'Write a message…', send: 'Send',
    connecting: 'connecting…', open: 'open', closing: 'closing…', closed: 'closed',
    retry: '— reconnecting in {s} s',
    joined: 'Joined room “{room}”.', lost: 'Connection lost. Messages sent meanwhile are not shown.',
    badRoom: 'Use 1–64 letters, digits or . _ ~ - (not "." or "..").',
    unknown: '(unknown)', binary: '[binary message, {n} bytes]', truncated: '… [{n} more characters]',
    sending: 'sending…', failed: 'not delivered', resend: 'Resend',
  },
  zh: {
    title: 'wsrelay 聊天室', room: '房间', join: '加入', nick: '昵称', message: '消息',
    messages: '消息列表', placeholder: '输入消息…', send: '发送',
    connecting: '连接中…', open: '已连接', closing: '正在关闭…', closed: '已断开',
    retry: '— {s} 秒后重新连接',
    joined: '已加入房间“{room}”。', lost: '连接已断开，期间的消息不会显示。',
    badRoom: '请使用 1–64 个字母、数字或 . _ ~ -（不能是 "." 或 ".."）。',
    unknown: '（未知）', binary: '[二进制消息，{n} 字节]', truncated: '…［还有 {n} 个字符］',
    sending: '发送中…', failed: '未送达', resend: '重新发送',
  },
};
const lang = /^zh\b/i.test(navigator.language || '') ? 'zh' : 'en';

function t(key, params = {}) {
  return STRINGS[lang][key].replace(/\{(\w+)\}/g, (_, name) => String(params[name]));
}

const $ = (id) => document.getElementById(id);
const stateEl = $('state');
const stateText = $('state-text');
const retryText = $('retry');
const roomForm = $('room-form');
const roomInput = $('room');
const roomError = $('room-error');
const nickInput = $('nick');
const list = $('messages');
const compose = $('compose');
const textInput = $('text');
const sendButton = $('send');

// --- language ---------------------------------------------------------------------------

function applyLanguage() {
  document.documentElement.lang = lang === 'zh' ? 'zh-Hans' : 'en';
  document.title = t('title');
  for (const el of document.querySelectorAll('[data-i18n]')) el.textContent = t(el.dataset.i18n);
  for (const el of document.querySelectorAll('[data-i18n-placeholder]')) el.placeholder = t(el.dataset.i18nPlaceholder);
  for (const el of document.querySelectorAll('[data-i18n-label]')) el.setAttribute('aria-label', t(el.dataset.i18nLabel));
}

// --- small helpers ----------------------------------------------------------------------

// crypto.randomUUID() exists only in secure contexts; getRandomValues() works on plain http too.
function randomHex(bytes) {
  return Array.from(crypto.getRandomValues(new Uint8Array(bytes)), (b) => b.toString(16).padStart(2, '0')).join('');
}

function guestNick() {
  return `guest-${String(crypto.getRandomValues(new Uint16Array(1))[0] % 10000).padStart(4, '0')}`;
}

// The `?token=...` to append to the WebSocket URL, or '' when the page's URL carries none.
// Read once: the token stays the same for the page's lifetime, whatever room it joins.
function tokenQuery() {
  const token = new URLSearchParams(location.search).get('token');
  return token ? `?token=${encodeURIComponent(token)}` : '';
}

function isValidRoom(room) {
  return ROOM_RE.test(room) && room !== '.' && room !== '..';
}

function clip(s, max) {
  return s.length <= max ? s : s.slice(0, max) + t('truncated', { n: s.length - max });
}

function hhmm(date) {
  return `${String(date.getHours()).padStart(2, '0')}:${String(date.getMinutes()).padStart(2, '0')}`;
}

// localStorage can throw (disabled storage, private modes); the nickname then lasts one visit.
function loadNick() {
  try { return localStorage.getItem(NICK_KEY); } catch { return null; }
}
function saveNick(nick) {
  try { localStorage.setItem(NICK_KEY, nick); } catch { /* keep it for this visit only */ }
}

// --- message list -----------------------------------------------------------------------

// Whether the reader is following the conversation at the bottom of the list. New messages
// and resizes (a phone keyboard opening) keep a follower at the bottom, but never yank away
// someone who scrolled up to read. Updated on scroll, so it survives the resize itself.
let following = true;
list.addEventListener('scroll', () => {
  following = list.scrollHeight - list.scrollTop - list.clientHeight < 48;
});
new ResizeObserver(() => {
  if (following) list.scrollTop = list.scrollHeight;
}).observe(list);

function appendToList(li, forceScroll = false) {
  list.append(li);
  while (list.childElementCount > MAX_MESSAGES) list.firstElementChild.remove();
  if (following || forceScroll) list.scrollTop = list.scrollHeight;
}

function addNote(text) {
  const li = document.createElement('li');
  li.className = 'note';
  li.textContent = text;
  appendToList(li);
}

// Builds one message entry. Every received string goes through textContent only.
function messageElement({ nick, text, ts, kind = 'chat' }) {
  const li = document.createElement('li');
  li.className = 'msg';
  li.dataset.kind = kind;

  const meta = document.createElement('div');
  meta.className = 'meta';
  const who = document.createElement('span');
  who.className = 'nick';
  who.textContent = clip(nick, NICK_MAX * 2);
  const when = document.createElement('time');
  const date = new Date(ts);
  when.dateTime = date.toISOString();
  when.title = date.toLocaleString();
  when.textContent = hhmm(date);
  const status = document.createElement('span');
  status.className = 'status';
  meta.append(who, when, status);

  const body = document.createElement('p');
  body.className = 'text';
  body.textContent = clip(text, MAX_SHOWN_CHARS);

  li.append(meta, body);
  return li;
}

// --- connection -------------------------------------------------------------------------

const tokenSuffix = tokenQuery();   // "?token=..." or ""
let room = DEFAULT_ROOM;
let nick = (loadNick() || '').trim().slice(0, NICK_MAX) || guestNick();
let ws = null;              // the current socket; events from any older one are ignored
let openedAt = 0;           // when `ws` opened, 0 if it never did
let attempt = 0;            // consecutive failed or short-lived connections, drives the backoff
let retryAt = 0;            // when the pending reconnect fires, 0 if none is scheduled
let retryTimer = 0;
let countdownTimer = 0;
let connectTimer = 0;
const pending = new Map();  // id -> <li> of our messages whose echo has not arrived yet

function render() {
  const state = ws ? STATES[ws.readyState] : 'closed';
  stateEl.dataset.state = state;
  stateText.textContent = t(state);
  retryText.textContent = state === 'closed' && retryAt
    ? t('retry', { s: Math.max(1, Math.ceil((retryAt - Date.now()) / 1000)) })
    : '';
  // The button is the form's default button, so disabling it also stops Enter from submitting;
  // the typed text stays in the box until the socket is open again.
  const open = state === 'open';
  sendButton.disabled = !open;
  for (const button of list.querySelectorAll('button.resend')) button.disabled = !open;
}

function cancelRetry() {
  clearTimeout(retryTimer);
  clearInterval(countdownTimer);
  retryAt = 0;
}

function connect() {
  cancelRetry();
  const sock = new WebSocket(`${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/${room}${tokenSuffix}`);
  sock.binaryType = 'arraybuffer';   // only the size is shown; no need for a Blob
  ws = sock;
  openedAt = 0;

  // A handshake that hangs (dropped SYNs, a stalled proxy) would otherwise sit in
  // "connecting" for minutes before the browser gives up.
  clearTimeout(connectTimer);
  connectTimer = setTimeout(() => {
    if (sock === ws && sock.readyState === WebSocket.CONNECTING) { sock.close(); render(); }
  }, CONNECT_TIMEOUT_MS);

  sock.addEventListener('open', () => {
    if (sock !== ws) return;
    clearTimeout(connectTimer);
    openedAt = Date.now();
    addNote(t('joined', { room }));
    render();
  });
  sock.addEventListener('message', (event) => {
    if (sock === ws) receive(event.data);
  });
  sock.addEventListener('close', () => {
    if (sock !== ws) return;
    clearTimeout(connectTimer);
    if (openedAt) {
      addNote(t('lost'));
      // Only a connection that lasted resets the backoff: a server that accepts and then
      // closes at once (a limit, a policy) must not be hammered every half second.
      if (Date.now() - openedAt >= STABLE_MS) attempt = 0;
    }
    failPending();
    scheduleReconnect();
  });
  render();
}

// Exponential backoff, 0.5 s doubling up to 10 s, with "equal jitter" (half fixed, half random)
// so that a room full of pages does not reconnect in lockstep after a server restart.
function scheduleReconnect() {
  const base = Math.min(RETRY_MAX_MS, RETRY_MIN_MS * 2 ** attempt);
  attempt += 1;
  const delay = base / 2 + Math.random() * (base / 2);
  retryAt = Date.now() + delay;
  retryTimer = setTimeout(connect, delay);
  countdownTimer = setInterval(render, 250);
  render();
}

// Leave the current room (if any) and connect to `next`, starting with a fresh list.
function joinRoom(next) {
  room = next;
  roomInput.value = next;
  if (ws) {
    const old = ws;
    ws = null;          // before close(): its close event must not schedule a reconnect
    old.close(1000);
  }
  attempt = 0;
  pending.clear();
  list.replaceChildren();
  connect();
}

// Whatever is still unconfirmed when the socket closes may never have reached the server.
// Say so, and offer to send it again rather than resending silently (others may have got it).
function failPending() {
  for (const [id, li] of pending) {
    li.dataset.status = 'failed';
    li.querySelector('.status').textContent = t('failed');
    const button = document.createElement('button');
    button.type = 'button';
    button.className = 'resend';
    button.textContent = t('resend');
    button.addEventListener('click', () => {
      if (send(li.querySelector('.text').textContent)) li.remove();
    });
    li.append(button);
    pending.delete(id);
  }
}

// --- sending and receiving --------------------------------------------------------------

function send(text) {
  if (!ws || ws.readyState !== WebSocket.OPEN) return false;
  const envelope = { v: 1, type: 'chat', nick, text, ts: Date.now(), id: randomHex(12) };
  ws.send(JSON.stringify(envelope));
  const li = messageElement(envelope);
  li.dataset.own = 'true';
  li.dataset.status = 'pending';
  li.querySelector('.status').textContent = t('sending');
  pending.set(envelope.id, li);
  appendToList(li, true);
  return true;
}

// Returns the message if it is one of our envelopes, otherwise null. Checks every field, since
// anyone can put anything in a room.
function parseEnvelope(data) {
  let m;
  try { m = JSON.parse(data); } catch { return null; }
  const ok = m !== null && typeof m === 'object' && m.v === 1 && m.type === 'chat'
    && typeof m.nick === 'string' && typeof m.text === 'string' && typeof m.id === 'string'
    && Number.isFinite(m.ts) && !Number.isNaN(new Date(m.ts).getTime());
  return ok ? m : null;
}

function receive(data) {
  if (typeof data !== 'string') {
    appendToList(messageElement({ nick: t('unknown'), text: t('binary', { n: data.byteLength }), ts: Date.now(), kind: 'binary' }));
    return;
  }
  const envelope = parseEnvelope(data);
  if (!envelope) {
    appendToList(messageElement({ nick: t('unknown'), text: data, ts: Date.now(), kind: 'raw' }));
    return;
  }
  const mine = pending.get(envelope.id);
  if (mine) {
    // Our echo: the server has placed the message here in the room's order. Moving it only
    // when others came in between keeps a screen reader from announcing it twice.
    pending.delete(envelope.id);
    mine.dataset.status = 'sent';
    mine.querySelector('.status').textContent = '';
    if (list.lastElementChild !== mine) appendToList(mine);
    return;
  }
  appendToList(messageElement(envelope));
}

// --- wiring -----------------------------------------------------------------------------

function roomFromUrl() {
  const fromHash = location.hash.replace(/^#\/?/, '');   // valid names need no percent-decoding
  return isValidRoom(fromHash) ? fromHash : null;
}

compose.addEventListener('submit', (event) => {
  event.preventDefault();
  const text = textInput.value;
  if (text.trim() === '') return;
  if (send(text)) textInput.value = '';
  textInput.focus();
});

roomForm.addEventListener('submit', (event) => {
  event.preventDefault();
  const next = roomInput.value.trim();
  if (!isValidRoom(next)) {
    roomError.textContent = t('badRoom');
    roomError.hidden = false;
    roomInput.setAttribute('aria-invalid', 'true');
    roomInput.focus();
    return;
  }
  if (next === room) {
    // Joining the room we are in doubles as "reconnect now" while waiting out the backoff.
    if (retryAt) { attempt = 0; connect(); }
  } else {
    location.hash = `#/${next}`;   // hashchange does the join, so links and history agree
  }
  textInput.focus();
});

roomInput.addEventListener('input', () => {
  roomError.hidden = true;
  roomInput.removeAttribute('aria-invalid');
});

// Saved on every keystroke, so a nickname typed just before sending is already in use; an
// emptied box keeps the last good name and shows it again when the field is left.
nickInput.addEventListener('input', () => {
  const value = nickInput.value.trim().slice(0, NICK_MAX);
  if (value) { nick = value; saveNick(nick); }
});
nickInput.addEventListener('change', () => { nickInput.value = nick; });

window.addEventListener('hashchange', () => {
  const next = roomFromUrl();
  if (next === null) {
    history.replaceState(null, '', `#/${room}`);   // not a room name: stay where we are
  } else if (next !== room) {
    joinRoom(next);
  }
});

// Back online after a network outage: no reason to wait out the rest of the backoff.
window.addEventListener('online', () => {
  if (retryAt) { attempt = 0; connect(); }
});

applyLanguage();
nickInput.value = nick;
saveNick(nick);
const initialRoom = roomFromUrl() || DEFAULT_ROOM;
history.replaceState(null, '', `#/${initialRoom}`);   // so the address bar is always a shareable link
joinRoom(initialRoom);
