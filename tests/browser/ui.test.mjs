// Drives Debian's Chromium (headless, through playwright-core) against
// Herald's demo page /ui/ and its browser client /ui/herald.js.
//
//   node ui.test.mjs <herald REST URL> [screenshot dir]
//
// Prints one line per check and "N passed, M failed"; exits non-zero when a
// check fails. Sections:
//   websocket   the page on the WebSocket (JSON frames): a message posted
//               through its form and one posted by REST from here appear,
//               in the queue's order, once each; history longer than one
//               WebSocket listing appears whole.
//   msgpack     the same with ?encoding=msgpack, every frame binary.
//   ws-listener the page on Herald's separate WebSocket listener
//               (?ws=$HERALD_WS_URL, another origin); only when that is set.
//   resume      the WebSocket is cut and a message posted while it is
//               down: the client reconnects and its stream resumes after
//               the last message it had, without gap or duplicate.
//   fallback    the WebSocket is blocked: the page says "rest polling" and
//               still shows messages posted from outside, and posts.
//   no-websocket  the same in a browser without WebSocket.
//
// HERALD_UI_SECTIONS=fallback,no-websocket runs only those sections.
//
// How the WebSocket is blocked: the page is loaded through a reverse proxy
// started here that forwards plain HTTP to Herald but answers every
// WebSocket upgrade with 403, as a proxy without WebSocket support does.
// Chromium's own WebSocket then fails its real handshake (error, close
// 1006) — the path a user behind such a proxy takes; nothing in the page
// is replaced. In no-websocket an init script deletes window.WebSocket,
// the path of a browser (or an enterprise policy) without it.

import { chromium } from 'playwright-core';
import { randomUUID } from 'node:crypto';
import http from 'node:http';
import net from 'node:net';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const herald = process.argv[2];
if (!herald) {
  console.error('usage: node ui.test.mjs <herald REST URL> [screenshot dir]');
  process.exit(2);
}
const shots = process.argv[3] ?? mkdtempSync(join(tmpdir(), 'herald-ui-'));
const WAIT = 15_000;
const project = `ui-test-${randomUUID().slice(0, 8)}`;
const outsider = randomUUID(); // the Client-ID of posts made from here

let passed = 0;
let failed = 0;

const only = process.env.HERALD_UI_SECTIONS?.split(',');

// Runs a section's checks in order; the first failure ends the section.
async function section(name, fn) {
  if (only && !only.includes(name)) return;
  const counted = new WeakSet();
  const check = async (what, body) => {
    try {
      const detail = await body();
      passed++;
      console.log(`ok   ${name}: ${what}${detail ? ` (${detail})` : ''}`);
    } catch (err) {
      failed++;
      console.log(`FAIL ${name}: ${what}: ${err.message.split('\n')[0]}`);
      counted.add(err);
      throw err;
    }
  };
  try {
    await fn(check);
  } catch (err) {
    if (!counted.has(err)) {
      failed++;
      console.log(`FAIL ${name}: ${err.message.split('\n')[0]}`);
    }
    if (process.env.HERALD_UI_TEST_VERBOSE) console.log(err.stack);
  }
}

function fail(msg) {
  throw new Error(msg);
}

// --- Herald over REST, from outside the page -------------------------------

function rest(method, path, body, clientId = outsider) {
  const headers = { 'Client-ID': clientId, 'X-Project-ID': project };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  return fetch(new URL(path, herald), { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
}

async function postREST(queue, bodies) {
  const res = await rest('POST', `/v2/queues/${queue}/messages`, { messages: bodies.map((body) => ({ body, ttl: 600 })) });
  if (res.status !== 201) fail(`POST ${queue}: ${res.status} ${await res.text()}`);
  return (await res.json()).resources.map((h) => h.slice(h.lastIndexOf('/') + 1));
}

// Every message id of the queue, in the queue's order.
async function queueIds(queue) {
  const ids = [];
  let href = `/v2/queues/${queue}/messages?limit=20&echo=true&include_claimed=true`;
  for (;;) {
    const res = await rest('GET', href);
    if (res.status !== 200) fail(`GET ${href}: ${res.status}`);
    const page = await res.json();
    if (!page.messages.length) return ids;
    ids.push(...page.messages.map((m) => m.id));
    href = page.links[0].href;
  }
}

// --- a reverse proxy in front of Herald ------------------------------------

// Forwards HTTP to Herald; WebSocket upgrades are tunnelled while
// `upgrades` is true and answered 403 while it is false. cut() ends every
// tunnelled connection, as a dropped network would.
async function startProxy({ upgrades }) {
  const target = new URL(herald);
  const tunnels = new Set();
  const server = http.createServer((req, res) => {
    const up = http.request({ host: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.headers }, (r) => {
      res.writeHead(r.statusCode, r.headers);
      r.pipe(res);
    });
    up.on('error', (err) => {
      res.writeHead(502, { 'Content-Type': 'text/plain' });
      res.end(String(err));
    });
    req.pipe(up);
  });
  const proxy = {
    upgrades,
    refused: 0,
    cut() {
      for (const s of tunnels) s.destroy();
      tunnels.clear();
    },
    close() {
      proxy.cut();
      server.closeAllConnections();
      return new Promise((r) => server.close(r));
    },
  };
  server.on('upgrade', (req, sock, head) => {
    if (!proxy.upgrades) {
      proxy.refused++;
      sock.end('HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nContent-Length: 27\r\nConnection: close\r\n\r\nWebSockets are not allowed\n');
      return;
    }
    const up = net.connect(Number(target.port), target.hostname, () => {
      let head0 = `${req.method} ${req.url} HTTP/1.1\r\n`;
      for (let i = 0; i < req.rawHeaders.length; i += 2) head0 += `${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}\r\n`;
      up.write(`${head0}\r\n`);
      up.write(head);
      sock.pipe(up).pipe(sock);
    });
    for (const s of [sock, up]) {
      tunnels.add(s);
      s.on('error', () => {});
      s.on('close', () => { tunnels.delete(s); sock.destroy(); up.destroy(); });
    }
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  proxy.url = `http://127.0.0.1:${server.address().port}`;
  return proxy;
}

// --- the page ----------------------------------------------------------------

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
  headless: true,
  // launch() runs Chromium with a new empty profile of its own and
  // --no-sandbox; these keep it off the (closed) network.
  args: ['--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync'],
});

// Opens the demo page; collects its uncaught errors and its WebSocket frames.
async function openPage(origin, query, { init } = {}) {
  const context = await browser.newContext({ viewport: { width: 1000, height: 760 } });
  if (init) await context.addInitScript(init);
  const page = await context.newPage();
  page.errors = [];
  page.frames_ = { text: 0, binary: 0 };
  page.on('pageerror', (err) => page.errors.push(err.message));
  page.on('websocket', (ws) => {
    const count = (f) => { page.frames_[typeof f.payload === 'string' ? 'text' : 'binary']++; };
    ws.on('framesent', count);
    ws.on('framereceived', count);
  });
  const url = `${origin}/ui/?${new URLSearchParams({ project, ...query })}`;
  const res = await page.goto(url);
  if (res.status() !== 200) fail(`GET ${url}: ${res.status()}`);
  return page;
}

async function transportIs(page, want) {
  await page.waitForFunction((w) => document.getElementById('transport').dataset.transport === w, want, { timeout: WAIT })
    .catch(async () => fail(`status says "${await page.textContent('#status')}", want ${want}`));
  return (await page.textContent('#reason')).replace(/^— /, '');
}

async function live(page) {
  await page.waitForSelector('#messages[data-state="live"]', { state: 'attached', timeout: WAIT })
    .catch(async () => fail(`not live: ${await page.textContent('#notice')}`));
}

const pageIds = (page) => page.$$eval('#messages li', (lis) => lis.map((li) => li.dataset.id));

// Waits until the page shows exactly the queue's messages, in its order, once each.
async function showsQueue(page, queue) {
  const deadline = Date.now() + WAIT;
  let want;
  let got;
  for (;;) {
    want = await queueIds(queue);
    got = await pageIds(page);
    if (JSON.stringify(want) === JSON.stringify(got)) break;
    if (Date.now() > deadline) fail(`page shows ${got.length} [${got.join(' ')}], queue holds ${want.length} [${want.join(' ')}]`);
    await page.waitForTimeout(100);
  }
  const dup = await page.getAttribute('#messages', 'data-duplicates');
  if (dup) fail(`${dup} duplicate deliveries`);
  return `${got.length} messages`;
}

async function showsBody(page, text) {
  await page.waitForFunction((t) => [...document.querySelectorAll('#messages .body')].some((b) => b.textContent.includes(t)), text, { timeout: WAIT })
    .catch(() => fail(`no message with ${text} on the page`));
}

async function postThroughForm(page, text) {
  await page.fill('#body', text);
  await page.click('#post');
  await page.waitForFunction(() => /^Posted /.test(document.getElementById('notice').textContent), null, { timeout: WAIT })
    .catch(async () => fail(`notice says "${await page.textContent('#notice')}"`));
}

// The checks of every section: a message posted by REST from outside the
// page appears on it, and so does one posted through its form (a string
// body here, a JSON object there).
async function postsAppear(check, page, queue) {
  await check('a message posted by REST from outside appears', async () => {
    const mark = `outside-${randomUUID()}`;
    await postREST(queue, [{ from: mark, text: 'ünïcødé ✓', list: [1, 2.5, null] }]);
    await showsBody(page, mark);
    return showsQueue(page, queue);
  });
  await check('a message posted through the page appears', async () => {
    const mark = `page-${randomUUID()}`;
    await postThroughForm(page, `{"from": "${mark}"}`);
    await showsBody(page, mark);
    await postThroughForm(page, `plain text ${mark}`);
    await showsBody(page, `plain text ${mark}`);
    return showsQueue(page, queue);
  });
}

function noErrors(page) {
  if (page.errors.length) fail(page.errors.join('; '));
}

async function screenshot(page, name) {
  const path = join(shots, `${name}.png`);
  await page.screenshot({ path, fullPage: true });
  return path;
}

// --- the sections ----------------------------------------------------------

const q = (name) => `${name}-${randomUUID().slice(0, 6)}`;

await section('websocket', async (check) => {
  const queue = q('live');
  const page = await openPage(herald, { queue });
  await check('status says websocket', () => transportIs(page, 'websocket'));
  await check('subscribed', () => live(page));
  await postsAppear(check, page, queue);
  await check('a burst of 30 REST posts appears in order, once each', async () => {
    await postREST(queue, Array.from({ length: 30 }, (_, i) => ({ burst: i })));
    return showsQueue(page, queue);
  });
  await check('a new page shows the whole history (more than one listing)', async () => {
    const again = await openPage(herald, { queue });
    await live(again);
    const detail = await showsQueue(again, queue);
    await again.context().close();
    return detail;
  });
  await check('still on the websocket, JSON text frames only', async () => {
    await transportIs(page, 'websocket');
    if (page.frames_.binary || !page.frames_.text) fail(`frames ${JSON.stringify(page.frames_)}`);
    return `${page.frames_.text} text frames`;
  });
  await check('no page errors', () => noErrors(page));
  await check('screenshot', () => screenshot(page, 'websocket'));
  await page.context().close();
});

await section('msgpack', async (check) => {
  const queue = q('packed');
  await postREST(queue, [{ before: 'open' }]);
  const page = await openPage(herald, { queue, encoding: 'msgpack' });
  await check('status says websocket', () => transportIs(page, 'websocket'));
  await check('subscribed, history shown', async () => {
    await live(page);
    return showsQueue(page, queue);
  });
  await postsAppear(check, page, queue);
  await check('MessagePack binary frames only', async () => {
    if (page.frames_.text || !page.frames_.binary) fail(`frames ${JSON.stringify(page.frames_)}`);
    return `${page.frames_.binary} binary frames`;
  });
  await check('no page errors', () => noErrors(page));
  await page.context().close();
});

await section('ws-listener', async (check) => {
  const wsURL = process.env.HERALD_WS_URL;
  if (!wsURL) return;
  const queue = q('listener');
  const page = await openPage(herald, { queue, ws: wsURL });
  await check(`status says websocket, connected to ${wsURL}`, async () => {
    const why = await transportIs(page, 'websocket');
    if (!why.includes(wsURL)) fail(`reason: ${why}`);
    await live(page);
  });
  await postsAppear(check, page, queue);
  await check('no page errors', () => noErrors(page));
  await page.context().close();
});

await section('resume', async (check) => {
  const queue = q('resume');
  const proxy = await startProxy({ upgrades: true });
  try {
    const page = await openPage(proxy.url, { queue });
    await check('status says websocket (through a proxy)', () => transportIs(page, 'websocket'));
    await check('a message before the cut appears', async () => {
      await live(page);
      await postREST(queue, [{ cut: 'before' }]);
      await showsBody(page, '"before"');
      return showsQueue(page, queue);
    });
    await check('the connection is cut; a message is posted while it is down', async () => {
      proxy.upgrades = false;
      proxy.cut();
      await page.waitForFunction(() => /reconnecting/.test(document.getElementById('reason').textContent), null, { timeout: WAIT });
      await postREST(queue, [{ cut: 'during' }]);
      // Let the client's first reconnect fail before the network comes back.
      const deadline = Date.now() + WAIT;
      while (proxy.refused === 0) {
        if (Date.now() > deadline) fail('the client did not try to reconnect');
        await page.waitForTimeout(50);
      }
      proxy.upgrades = true;
    });
    await check('reconnected on the websocket', async () => {
      await page.waitForFunction(() => document.getElementById('reason').textContent.includes('reconnected'), null, { timeout: WAIT })
        .catch(async () => fail(`reason: ${await page.textContent('#reason')}`));
      return transportIs(page, 'websocket');
    });
    await check('the stream resumed: the message posted while down, then new ones, once each', async () => {
      await postREST(queue, [{ cut: 'after' }]);
      await showsBody(page, '"during"');
      await showsBody(page, '"after"');
      return showsQueue(page, queue);
    });
    await check('no page errors', () => noErrors(page));
    await page.context().close();
  } finally {
    await proxy.close();
  }
});

await section('fallback', async (check) => {
  const queue = q('polled');
  const proxy = await startProxy({ upgrades: false });
  try {
    await postREST(queue, [{ before: 'open' }]);
    const page = await openPage(proxy.url, { queue });
    await check('WebSocket refused by the proxy: status says rest polling', async () => {
      const why = await transportIs(page, 'rest polling');
      if (!proxy.refused) fail('the page never tried the WebSocket');
      return why;
    });
    await check('subscribed, history shown', async () => {
      await live(page);
      return showsQueue(page, queue);
    });
    await postsAppear(check, page, queue);
    await check('more than a page of messages appears in order, once each', async () => {
      await postREST(queue, Array.from({ length: 25 }, (_, i) => ({ polled: i })));
      return showsQueue(page, queue);
    });
    await check('no page errors', () => noErrors(page));
    await check('screenshot', () => screenshot(page, 'rest-polling'));
    await page.context().close();
  } finally {
    await proxy.close();
  }
});

await section('no-websocket', async (check) => {
  const queue = q('bare');
  const page = await openPage(herald, { queue }, { init: () => { delete window.WebSocket; } });
  await check('status says rest polling', async () => {
    const why = await transportIs(page, 'rest polling');
    await live(page);
    return why;
  });
  await postsAppear(check, page, queue);
  await check('no page errors', () => noErrors(page));
  await page.context().close();
});

await browser.close();
console.log(`screenshots in ${shots}`);
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
