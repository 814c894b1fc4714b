// The demo page: one queue's messages, live, and a form to post one.
import { connect, newClientId, sameOriginWebSocketURL } from './herald.js';

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const QUEUE_NAME = /^[A-Za-z0-9_.-]{1,64}$/;

// A query parameter wins; else what this browser kept; else a new value, kept.
function setting(param, key, make) {
  const given = params.get(param);
  if (given) return given;
  let v = null;
  try {
    v = localStorage.getItem(key);
    if (!v) localStorage.setItem(key, (v = make()));
  } catch {
    v = v || make(); // storage disabled: this page only
  }
  return v;
}

const project = setting('project', 'herald.project', () => `demo-${newClientId().slice(0, 8)}`);
const clientId = setting('client_id', 'herald.clientId', newClientId);
const encoding = params.get('encoding') === 'msgpack' ? 'msgpack' : 'json';

// ?ws= may name another port of this host (Herald's own WebSocket listener),
// not another host: a link must not send what is typed here elsewhere.
function webSocketURL() {
  const given = params.get('ws');
  if (!given) return sameOriginWebSocketURL('/ws');
  try {
    const u = new URL(given, location.href);
    if ((u.protocol === 'ws:' || u.protocol === 'wss:') && u.hostname === location.hostname) return u.href;
  } catch {
    // not a URL
  }
  notice(`Ignored ws=${given}: not a ws:// or wss:// URL of ${location.hostname}.`, true);
  return sameOriginWebSocketURL('/ws');
}

$('project').textContent = project;
$('client-id').textContent = clientId;
$('encoding').textContent = encoding === 'msgpack' ? 'MessagePack' : 'JSON';

const list = $('messages');
const shown = new Map(); // message id → its <li>
let duplicates = 0;
let client = null;
let sub = null;
let opening = 0; // which openQueue call is current

function showTransport(transport, reason) {
  const t = $('transport');
  t.textContent = transport;
  t.dataset.transport = transport;
  $('reason').textContent = reason ? `— ${reason}` : '';
}

function notice(text, isError = false) {
  const n = $('notice');
  n.textContent = text;
  n.classList.toggle('error', isError);
}

function showMessage(m) {
  if (shown.has(m.id)) {
    // Herald promises no duplicates; make one visible to a test.
    list.dataset.duplicates = String(++duplicates);
    console.warn('duplicate message', m.id);
    return;
  }
  const log = $('log');
  const atBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 40;
  const li = document.createElement('li');
  li.dataset.id = m.id;
  const id = document.createElement('code');
  id.className = 'id';
  id.textContent = m.id;
  const meta = document.createElement('span');
  meta.className = 'meta';
  meta.textContent = `ttl ${m.ttl} s · age ${m.age} s`;
  const body = document.createElement('pre');
  body.className = 'body';
  body.textContent = typeof m.body === 'string' ? m.body : JSON.stringify(m.body);
  li.append(id, meta, body);
  list.append(li);
  shown.set(m.id, li);
  $('empty').hidden = true;
  $('count').textContent = `(${shown.size})`;
  if (atBottom) log.scrollTop = log.scrollHeight;
}

async function openQueue(queue) {
  const mine = ++opening;
  if (sub) {
    const old = sub;
    sub = null;
    old.unsubscribe().catch((err) => console.warn('unsubscribe', err));
  }
  list.replaceChildren();
  list.dataset.state = 'loading';
  delete list.dataset.duplicates;
  shown.clear();
  duplicates = 0;
  $('empty').hidden = false;
  $('count').textContent = '';
  $('queue-name').textContent = queue;
  $('queue').value = queue;
  const url = new URL(location.href);
  url.searchParams.set('queue', queue);
  history.replaceState(null, '', url);
  document.title = `${queue} — Herald`;
  try {
    // What the queue holds now, then everything after the last of it: the
    // stream (or the poller) starts where the listing ends, so nothing
    // falls between them.
    const existing = await client.list(queue);
    if (mine !== opening) return;
    existing.forEach(showMessage);
    sub = client.subscribe(queue, {
      after: existing.at(-1)?.id,
      onMessage: showMessage,
      onError: (err) => notice(`${queue}: ${err.message}`, true),
    });
    list.dataset.state = 'live';
  } catch (err) {
    list.dataset.state = 'error';
    notice(`Could not open ${queue}: ${err.message}`, true);
  }
}

async function post() {
  const text = $('body').value.trim();
  if (!text || !sub) return;
  let body;
  try {
    body = JSON.parse(text);
  } catch {
    body = text;
  }
  const ttl = Number($('ttl').value) || undefined;
  $('post').disabled = true;
  try {
    const [id] = await client.post(sub.queue, [{ body, ttl }]);
    notice(`Posted ${id}.`);
    $('body').value = '';
  } catch (err) {
    notice(`Not posted: ${err.message}`, true);
  } finally {
    $('post').disabled = false;
    $('body').focus();
  }
}

$('queue-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const q = $('queue').value.trim();
  if (QUEUE_NAME.test(q)) openQueue(q);
});
$('post-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  post();
});
$('body').addEventListener('keydown', (ev) => {
  if (ev.key === 'Enter' && (ev.ctrlKey || ev.metaKey)) {
    ev.preventDefault();
    post();
  }
});

client = await connect({
  url: webSocketURL(),
  project,
  clientId,
  encoding,
  onTransport: showTransport,
});
const initial = params.get('queue');
if (initial && QUEUE_NAME.test(initial)) {
  openQueue(initial);
} else {
  notice(initial ? `"${initial}" is not a valid queue name.` : 'Pick a queue to watch.');
  $('queue').focus();
}
