// herald.js — a small browser client for Herald (Zaqar v2 wire protocol).
//
//   import { connect } from '/ui/herald.js';
//   const c = await connect({ project: 'p', clientId: crypto.randomUUID() });
//   c.subscribe('q', { onMessage: (m) => console.log(m.id, m.body) });
//   await c.post('q', [{ body: { hello: 'world' } }]);
//
// It speaks the WebSocket protocol (one response per request, in order;
// text frames = JSON, binary frames = MessagePack) and Herald's resumable
// streams (`stream_subscribe`). When the WebSocket cannot be opened, or
// closes and cannot be reopened, it falls back to REST short polling of
// GET /v2/queues/{q}/messages; subscribers get the same {id, body, ttl, age}
// either way and `transport` says which is in use.
//
// No dependencies but the vendored @msgpack/msgpack, loaded only for
// encoding 'msgpack'.

export const WEBSOCKET = 'websocket';
export const REST_POLLING = 'rest polling';

const OPEN_TIMEOUT_MS = 5000;
const RECONNECT_DELAYS_MS = [250, 1000, 3000]; // then REST polling for good
const PAGE_LIMIT = 20; // max_messages_per_page
const SEEN_IDS = 1000; // ids a subscription remembers, to not repeat them when it resumes

/** An answer with status >= 400, over either transport. */
export class HeraldError extends Error {
  constructor(status, body, what) {
    super(`${what}: ${status} ${describe(body)}`);
    this.name = 'HeraldError';
    this.status = status;
    this.body = body;
  }
}

function describe(body) {
  if (body && typeof body === 'object') {
    const parts = [body.title, body.error, body.description, body.exception].filter((s) => typeof s === 'string');
    if (parts.length) return parts.join(': ');
  }
  return typeof body === 'string' ? body : JSON.stringify(body);
}

/** A random UUID; crypto.randomUUID needs a secure context, getRandomValues does not. */
export function newClientId() {
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = [...b].map((x) => x.toString(16).padStart(2, '0')).join('');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/** The WebSocket endpoint of the Herald that served this page. */
export function sameOriginWebSocketURL(path = '/ws') {
  const u = new URL(path, location.href);
  u.protocol = u.protocol === 'https:' ? 'wss:' : 'ws:';
  return u.href;
}

/**
 * Connects to Herald. Resolves once a transport is chosen: the WebSocket
 * when it opens, else REST polling (the promise does not reject for an
 * unreachable WebSocket).
 *
 * options: url (WebSocket URL; default the page's origin + /ws), restUrl
 * (REST base; default the page's origin), project, clientId (a UUID; one
 * is made up when absent), encoding ('json' | 'msgpack'), pollIntervalMs
 * (1000), onTransport(transport, reason), onNotification(frame) for
 * notifications of plain WebSocket subscriptions (subscription_create
 * without a subscriber).
 */
export async function connect(options) {
  const c = new Client(options);
  await c.start();
  return c;
}

class Client {
  #opts;
  #codec = null; // {encode, decode} for msgpack; null for JSON
  #ws = null;
  #pending = []; // {action, resolve, reject}, in the order requests were sent
  #subs = new Map(); // queue name → Subscription
  #closed = false;

  constructor({ url, restUrl, project, clientId, encoding = 'json', pollIntervalMs = 1000, onTransport, onNotification } = {}) {
    if (!project) throw new TypeError('connect: project is required');
    if (encoding !== 'json' && encoding !== 'msgpack') throw new TypeError(`connect: unknown encoding ${encoding}`);
    this.#opts = {
      url: url ?? sameOriginWebSocketURL(),
      restUrl: restUrl ?? location.origin,
      project,
      clientId: clientId ?? newClientId(),
      encoding,
      pollIntervalMs,
      onTransport: onTransport ?? (() => {}),
      onNotification: onNotification ?? (() => {}),
    };
    /** WEBSOCKET or REST_POLLING; null until connect resolves. */
    this.transport = null;
    /** Why the client is on its current transport (for a status line). */
    this.reason = '';
  }

  get project() { return this.#opts.project; }
  get clientId() { return this.#opts.clientId; }
  get encoding() { return this.#opts.encoding; }

  async start() {
    if (this.#opts.encoding === 'msgpack') {
      const { encode, decode } = await import(new URL('./vendor/msgpack/index.mjs', import.meta.url).href);
      this.#codec = { encode, decode };
    }
    try {
      this.#attach(await this.#open());
      this.#use(WEBSOCKET, `connected to ${this.#opts.url}`);
    } catch (err) {
      this.#fallBack(`WebSocket unavailable (${err.message})`);
    }
  }

  /** Opens a socket; resolves when it is open, rejects when it fails first. */
  #open() {
    return new Promise((resolve, reject) => {
      let ws;
      try {
        ws = new WebSocket(this.#opts.url);
      } catch (err) {
        reject(err);
        return;
      }
      ws.binaryType = 'arraybuffer';
      const timer = setTimeout(() => { ws.close(); reject(new Error('no answer in time')); }, OPEN_TIMEOUT_MS);
      ws.onopen = () => { clearTimeout(timer); resolve(ws); };
      ws.onclose = (ev) => { clearTimeout(timer); reject(new Error(`closed before opening, code ${ev.code}`)); };
    });
  }

  #attach(ws) {
    this.#ws = ws;
    ws.onmessage = (ev) => this.#receive(ev.data);
    ws.onclose = (ev) => this.#lost(ws, ev);
  }

  #use(transport, reason) {
    this.transport = transport;
    this.reason = reason;
    this.#opts.onTransport(transport, reason);
  }

  #receive(data) {
    let frame;
    try {
      frame = typeof data === 'string' ? JSON.parse(data) : this.#decode(data);
    } catch (err) {
      console.error('herald: undecodable frame', err);
      return;
    }
    if (frame && frame.Message_Type === 'Notification') {
      if (frame.message_id === undefined) {
        this.#opts.onNotification(frame);
      } else {
        // A stream's; one still in flight after unsubscribe has no taker.
        this.#subs.get(frame.queue_name)?._deliver({ id: frame.message_id, body: frame.body, ttl: frame.ttl, age: frame.age });
      }
      return;
    }
    const p = this.#pending.shift();
    if (!p) {
      console.error('herald: response without a request', frame);
      return;
    }
    const status = frame?.headers?.status;
    if (frame?.request?.action !== p.action) {
      p.reject(new Error(`${p.action}: the response echoes ${frame?.request?.action}`));
    } else if (typeof status !== 'number' || status >= 400) {
      p.reject(new HeraldError(status, frame.body, p.action));
    } else {
      p.resolve({ status, body: frame.body });
    }
  }

  #decode(buf) {
    if (!this.#codec) throw new Error('binary frame on a JSON connection');
    return this.#codec.decode(new Uint8Array(buf));
  }

  /** The socket closed: reopen it and resume the streams, or poll REST. */
  async #lost(ws, ev) {
    if (ws !== this.#ws) return;
    this.#ws = null;
    for (const p of this.#pending.splice(0)) p.reject(new Error(`${p.action}: connection closed`));
    if (this.#closed) return;
    let why = `closed, code ${ev.code}${ev.reason ? ` (${ev.reason})` : ''}`;
    for (const delay of RECONNECT_DELAYS_MS) {
      this.#use(WEBSOCKET, `${why}; reconnecting`);
      await new Promise((r) => setTimeout(r, delay));
      if (this.#closed) return;
      try {
        this.#attach(await this.#open());
      } catch (err) {
        why = `reconnect failed: ${err.message}`;
        continue;
      }
      this.#use(WEBSOCKET, 'reconnected');
      for (const sub of this.#subs.values()) sub._resume();
      return;
    }
    this.#fallBack(`WebSocket lost (${why})`);
  }

  #fallBack(reason) {
    this.#use(REST_POLLING, reason);
    for (const sub of this.#subs.values()) sub._resume();
  }

  #wsOpen() {
    return this.transport === WEBSOCKET && this.#ws?.readyState === WebSocket.OPEN;
  }

  #headers() {
    return { 'Client-ID': this.#opts.clientId, 'X-Project-ID': this.#opts.project };
  }

  /**
   * Sends one WebSocket request; resolves to {status, body}, rejects with a
   * HeraldError for a status >= 400. WebSocket transport only.
   */
  request(action, body = {}) {
    const ws = this.#ws;
    if (!this.#wsOpen()) {
      return Promise.reject(new Error(`${action}: needs an open WebSocket (transport: ${this.transport})`));
    }
    const frame = { action, headers: this.#headers(), body };
    return new Promise((resolve, reject) => {
      this.#pending.push({ action, resolve, reject });
      ws.send(this.#codec ? this.#codec.encode(frame) : JSON.stringify(frame));
    });
  }

  async #rest(method, path, body) {
    const init = { method, headers: this.#headers(), cache: 'no-store' };
    if (body !== undefined) {
      init.headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    const res = await fetch(new URL(path, this.#opts.restUrl), init);
    const text = await res.text();
    let parsed = text;
    try {
      parsed = text ? JSON.parse(text) : null;
    } catch {
      // not JSON (a proxy's error page, say): keep the text
    }
    if (!res.ok) throw new HeraldError(res.status, parsed, `${method} ${path}`);
    return parsed;
  }

  _messagesPath(queue) {
    return `/v2/queues/${encodeURIComponent(queue)}/messages`;
  }

  /** GETs one page of messages; resolves to {messages, next} (next: the href to poll). */
  async _page(href) {
    const page = await this.#rest('GET', href);
    const next = page?.links?.find((l) => l.rel === 'next')?.href ?? href;
    return { messages: (page?.messages ?? []).map(plain), next };
  }

  /**
   * Posts messages ([{body, ttl?}]) to a queue; resolves to their ids. It
   * goes by REST while the WebSocket is down (reconnecting or given up).
   */
  async post(queue, messages) {
    if (this.#wsOpen()) {
      const { body } = await this.request('message_post', { queue_name: queue, messages });
      return body.message_ids;
    }
    const res = await this.#rest('POST', this._messagesPath(queue), { messages });
    return res.resources.map((href) => href.slice(href.lastIndexOf('/') + 1));
  }

  /**
   * The queue's messages, oldest first, claimed ones and one's own included.
   * Over the WebSocket that is at most the first 20 (its message_list has no
   * paging; subscribe with `after` the last of them to get the rest); over
   * REST (as while the WebSocket is down), every page.
   */
  async list(queue) {
    if (this.#wsOpen()) {
      const { body } = await this.request('message_list', { queue_name: queue, echo: true, include_claimed: true, limit: PAGE_LIMIT });
      return body.messages.map(plain);
    }
    const all = [];
    let href = `${this._messagesPath(queue)}?limit=${PAGE_LIMIT}&echo=true&include_claimed=true`;
    for (;;) {
      const { messages, next } = await this._page(href);
      if (!messages.length) return all;
      all.push(...messages);
      href = next;
    }
  }

  /**
   * Calls onMessage({id, body, ttl, age}) for every message of the queue
   * after the message `after` (absent: only messages posted from now on),
   * in order, then for new ones as they come. Over the WebSocket this is a
   * Herald stream, resumed after the last delivered message when the socket
   * is reopened; over REST, a poll every pollIntervalMs. onError(err) hears
   * of failures (the subscription goes on where it can). One subscription
   * per queue. A subscription without `after` that has delivered nothing
   * yet can miss what is posted while the socket is down: there is no
   * message to resume after.
   */
  subscribe(queue, { after, onMessage, onError = (err) => console.error('herald:', err) }) {
    if (this.#subs.has(queue)) throw new Error(`already subscribed to ${queue}`);
    const sub = new Subscription(this, queue, after, onMessage, onError, () => this.#subs.delete(queue));
    this.#subs.set(queue, sub);
    if (this.transport) sub._resume();
    return sub;
  }

  get _pollIntervalMs() { return this.#opts.pollIntervalMs; }

  /** Closes the WebSocket and stops every subscription. */
  close() {
    this.#closed = true;
    for (const sub of this.#subs.values()) sub._stop();
    this.#subs.clear();
    this.#ws?.close(1000);
  }
}

function plain(m) {
  return { id: m.id, body: m.body, ttl: m.ttl, age: m.age };
}

class Subscription {
  #client;
  #after; // the last delivered message id (or the caller's `after`)
  #onMessage;
  #onError;
  #forget;
  #poll = null; // {stopped} of the running REST poller
  #seen = new Set(); // the last SEEN_IDS ids delivered, oldest first
  #stopped = false;

  constructor(client, queue, after, onMessage, onError, forget) {
    this.#client = client;
    this.queue = queue;
    this.#after = after;
    this.#onMessage = onMessage;
    this.#onError = onError;
    this.#forget = forget;
  }

  /** The id of the last message delivered (or the starting point). */
  get lastId() { return this.#after; }

  // Streams are delivered as the server sends them: Herald promises no
  // duplicates, and a caller may want to check that.
  _deliver(m) {
    if (this.#stopped) return;
    this.#after = m.id;
    this.#seen.add(m.id);
    if (this.#seen.size > SEEN_IDS) this.#seen.delete(this.#seen.values().next().value);
    this.#onMessage(m);
  }

  /** (Re)starts delivery on the client's current transport, after lastId. */
  _resume() {
    if (this.#stopped) return;
    if (this.#client.transport === WEBSOCKET) {
      const body = { queue_name: this.queue };
      if (this.#after !== undefined) body.after = this.#after;
      this.#client.request('stream_subscribe', body).catch((err) => this.#onError(err));
      return;
    }
    if (!this.#poll) this.#startPolling();
  }

  #startPolling() {
    const state = { stopped: false };
    this.#poll = state;
    const client = this.#client;
    const first = `${client._messagesPath(this.queue)}?limit=${PAGE_LIMIT}&echo=true&include_claimed=true`;
    // Pages from href until an empty page, and returns the href to poll next.
    const scan = async (href, each) => {
      for (;;) {
        const page = await client._page(href);
        if (state.stopped) return href;
        page.messages.forEach(each);
        href = page.next;
        if (!page.messages.length) return href;
      }
    };
    // Catching up reads the queue from its start: REST markers are not
    // message ids. When `after` is gone (expired, deleted), every message
    // not yet delivered is delivered.
    const catchUp = async (after) => {
      if (after === undefined) return scan(first, () => {});
      let found = false;
      const href = await scan(first, (m) => {
        if (found) this.#deliverOnce(m);
        else found = m.id === after;
      });
      return found ? href : scan(first, (m) => this.#deliverOnce(m));
    };
    (async () => {
      let href = null;
      while (!state.stopped) {
        try {
          href = href === null ? await catchUp(this.#after) : await scan(href, (m) => this.#deliverOnce(m));
        } catch (err) {
          this.#onError(err);
        }
        await sleep(client._pollIntervalMs);
      }
    })();
  }

  #deliverOnce(m) {
    if (!this.#seen.has(m.id)) this._deliver(m);
  }

  _stop() {
    this.#stopped = true;
    if (this.#poll) this.#poll.stopped = true;
  }

  /** Stops delivery and tells the server (stream_unsubscribe) when on the WebSocket. */
  async unsubscribe() {
    this._stop();
    this.#forget();
    if (this.#client.transport === WEBSOCKET) {
      await this.#client.request('stream_unsubscribe', { queue_name: this.queue });
    }
  }
}

function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}
