// SPDX-License-Identifier: Apache-2.0
// permessage-deflate (RFC 7692) interop: Chromium (via playwright-core, Debian's chromium) and the
// Node `ws` client against wsrelay with `[deflate] enabled = true`.
//
//   WSRELAY_BIN=/path/to/wsrelay node --test tests/browser/deflate.test.mjs   (or ./run.sh)
//
// The test writes a temporary config, starts `$WSRELAY_BIN --config <it> --listen 127.0.0.1:PORT`
// and puts a small TCP proxy in front of it that forwards bytes unchanged and decodes frame
// headers in both directions. A peer that says it negotiated deflate and gets its data back
// intact proves little on its own (both ends could have fallen back to plain frames); the proxy
// shows the RSV1 bits, i.e. that the messages really crossed the wire compressed, both ways.
// Every wait is bounded; the server's log is left in tests/browser/artifacts/deflate-server.log.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, exited, freePort, launch, sleep, stopServer } from './lib.mjs';
import WebSocket from 'ws';

const STEP_MS = 10_000;   // default bound for one page action or wait
const ECHO_MS = 30_000;   // bound for a whole batch of echoes
const KiB = 1024;

// min_bytes = 0: the server compresses every message for a deflate client, so every data frame
// it sends on such a connection must carry RSV1 (checked below).
const CONFIG = `
[deflate]
enabled = true
min_bytes = 0

[limits]
max_message_bytes = 4194304
send_queue_bytes = 16777216
`;


function withTimeout(promise, ms, what) {
  let timer;
  return Promise.race([promise, new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no result within ${ms} ms`)), ms);
  })]).finally(() => clearTimeout(timer));
}

// --- the server under test ---------------------------------------------------------------

// Starts wsrelay with `config` and waits until it serves the page. Another process may take
// the port between freePort() and the bind: the server then exits and the error is in the log.
async function startServer(bin, port, configPath, log) {
  const url = `http://127.0.0.1:${port}/`;
  const { child, serving, spawnError } = await launch(bin, ['--config', configPath, '--listen', `127.0.0.1:${port}`], url, log);
  if (serving) return child;
  if (spawnError) throw new Error(`cannot start ${bin}: ${spawnError.message}`);
  throw new Error(`${bin} did not serve ${url} within 15 s (see artifacts/deflate-server.log)`);
}


// --- the sniffing proxy ------------------------------------------------------------------

// Decodes one direction of a connection: the HTTP head, then (after an upgrade) frame headers.
// Payloads are skipped, never buffered: only the few bytes of a split header are kept.
class Sniffer {
  constructor(isUpgrade) {
    this.isUpgrade = isUpgrade;
    this.state = 'head';   // 'head' -> 'frames' (WebSocket) or 'off' (plain HTTP)
    this.head = '';
    this.rest = Buffer.alloc(0);
    this.skip = 0;         // payload bytes of the current frame still to pass
    this.frames = [];      // { fin, rsv, opcode, len }
  }

  feed(chunk) {
    if (this.state === 'off') return;
    let data = this.rest.length ? Buffer.concat([this.rest, chunk]) : chunk;
    this.rest = Buffer.alloc(0);
    let i = 0;
    if (this.state === 'head') {
      const end = data.indexOf('\r\n\r\n');
      if (end < 0) { this.rest = Buffer.from(data); return; }
      this.head = data.subarray(0, end).toString('latin1');
      i = end + 4;
      this.state = this.isUpgrade(this.head) ? 'frames' : 'off';
      if (this.state === 'off') return;
    }
    while (i < data.length) {
      if (this.skip > 0) {
        const n = Math.min(this.skip, data.length - i);
        this.skip -= n;
        i += n;
        continue;
      }
      const avail = data.length - i;
      if (avail < 2) break;
      const b0 = data[i];
      const b1 = data[i + 1];
      let len = b1 & 0x7f;
      let headerBytes = len === 126 ? 4 : len === 127 ? 10 : 2;
      if (b1 & 0x80) headerBytes += 4;   // masked (client to server)
      if (avail < headerBytes) break;
      if (len === 126) len = data.readUInt16BE(i + 2);
      else if (len === 127) len = Number(data.readBigUInt64BE(i + 2));
      this.frames.push({ fin: (b0 & 0x80) !== 0, rsv: (b0 >> 4) & 7, opcode: b0 & 0x0f, len });
      i += headerBytes;
      this.skip = len;
    }
    this.rest = Buffer.from(data.subarray(i));
  }

  header(name) {
    const m = this.head.match(new RegExp(`^${name}:[ \\t]*(.*)$`, 'im'));
    return m ? m[1].trim() : null;
  }

  // The data messages of this direction: { opcode, compressed, frames, bytes, rsvOnContinuation }.
  messages() {
    const out = [];
    let current = null;
    for (const f of this.frames) {
      if (f.opcode >= 8) continue;
      if (f.opcode !== 0) {
        current = { opcode: f.opcode, compressed: (f.rsv & 4) !== 0, otherRsv: f.rsv & 3, frames: 0, bytes: 0, rsvOnContinuation: false };
        out.push(current);
      } else if (current) {
        if (f.rsv) current.rsvOnContinuation = true;
      }
      if (current) { current.frames += 1; current.bytes += f.len; }
    }
    return out;
  }
}

// A TCP proxy to 127.0.0.1:targetPort that records, per connection, what both sides sent.
async function startProxy(targetPort) {
  const connections = [];
  const sockets = new Set();
  const server = net.createServer({ allowHalfOpen: true }, (client) => {
    const upstream = net.connect({ port: targetPort, host: '127.0.0.1', allowHalfOpen: true });
    const rec = {
      c2s: new Sniffer((head) => /^upgrade:[ \t]*websocket/im.test(head)),
      s2c: new Sniffer((head) => /^HTTP\/1\.1 101/.test(head)),
      path: () => rec.c2s.head.split(' ')[1] ?? '',
    };
    connections.push(rec);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => { client.destroy(); upstream.destroy(); });
    }
    client.on('data', (d) => rec.c2s.feed(d));
    upstream.on('data', (d) => rec.s2c.feed(d));
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise((resolve, reject) => server.once('error', reject).listen(0, '127.0.0.1', resolve));
  return {
    port: server.address().port,
    // The WebSocket connections made to `path` so far (in order).
    websockets(p) { return connections.filter((c) => c.c2s.state === 'frames' && c.path() === p); },
    close() {
      for (const s of sockets) s.destroy();
      return new Promise((resolve) => server.close(resolve));
    },
  };
}

// Checks the frames one WebSocket connection carried: the 101 agreed permessage-deflate; every
// message from the server was compressed (min_bytes = 0) with RSV1 on its first frame only; the
// client's compressed messages are returned for the caller to count.
function checkWire(conn, what) {
  const offer = conn.c2s.header('sec-websocket-extensions');
  const agreed = conn.s2c.header('sec-websocket-extensions');
  assert.ok(offer && /permessage-deflate/.test(offer), `${what}: the client offered ${offer}`);
  assert.ok(agreed && /^permessage-deflate\b/.test(agreed), `${what}: the 101 agreed ${agreed}`);
  const fromServer = conn.s2c.messages();
  const fromClient = conn.c2s.messages();
  for (const [dir, list] of [['server', fromServer], ['client', fromClient]]) {
    for (const m of list) {
      assert.equal(m.otherRsv, 0, `${what}: RSV2/RSV3 from the ${dir}`);
      assert.equal(m.rsvOnContinuation, false, `${what}: RSV1 on a continuation from the ${dir}`);
    }
  }
  const plainFromServer = fromServer.filter((m) => !m.compressed);
  assert.deepEqual(plainFromServer, [], `${what}: with min_bytes = 0 every server message is compressed`);
  return { offer, agreed, fromServer, fromClient };
}

// --- payloads ----------------------------------------------------------------------------

const CHINESE = '永和九年，岁在癸丑，暮春之初，会于会稽山阴之兰亭，修禊事也。群贤毕至，少长咸集。此地有崇山峻岭，茂林修竹；又有清流激湍，映带左右。';

function text(size, seed = 1) {
  // Mixed ASCII, Chinese and emoji, compressible, exactly `size` UTF-16 code units long.
  const words = ['relay', 'deflate', '中文', '消息', '你好', '世界', '😀', 'window', 'κόσμε', 'frame'];
  let s = '';
  let x = seed;
  while (s.length < size) {
    x = (x * 1103515245 + 12345) % 2147483648;
    s += `${words[x % words.length]} `;
  }
  s = s.slice(0, size);
  // Do not end on half a surrogate pair.
  if (s.length && /[\ud800-\udbff]$/.test(s)) s = `${s.slice(0, -1)}x`;
  return s;
}

function bytes(size, seed = 1, random = true) {
  const b = Buffer.alloc(size);
  let x = seed;
  for (let i = 0; i < size; i++) {
    x = (x * 1103515245 + 12345) % 2147483648;
    b[i] = random ? (x >> 16) & 0xff : i % 251;
  }
  return b;
}

// --- pages (the chat UI) -----------------------------------------------------------------

const incidents = [];

async function newContext(browser, options = {}) {
  const context = await browser.newContext(options);
  context.setDefaultTimeout(STEP_MS);
  // Keep every WebSocket the page makes, so the test can read its `extensions`.
  await context.addInitScript(() => {
    const Native = window.WebSocket;
    window.__sockets = [];
    window.WebSocket = class extends Native {
      constructor(...args) { super(...args); window.__sockets.push(this); }
    };
  });
  return context;
}

async function openChat(context, base, room, nick) {
  const page = await context.newPage();
  page.on('dialog', async (dialog) => {
    incidents.push(`dialog "${dialog.message()}" on ${page.url()}`);
    await dialog.dismiss();
  });
  page.on('pageerror', (err) => incidents.push(`page error on ${page.url()}: ${err.message}`));
  await page.addInitScript((n) => localStorage.setItem('wsrelay.nick', n), nick);
  await page.goto(`${base}/#/${room}`);
  await page.locator('#state[data-state="open"]').waitFor();
  return page;
}

function messages(page) {
  return page.$$eval('#messages .msg', (items) => items.map((li) => ({
    nick: li.querySelector('.nick').textContent,
    text: li.querySelector('.text').textContent,
    own: li.dataset.own === 'true',
    status: li.dataset.status ?? null,
  })));
}

async function waitForMessage(page, wanted, timeout = STEP_MS) {
  try {
    await page.waitForFunction(
      (t) => [...document.querySelectorAll('#messages .msg .text')].some((e) => e.textContent === t),
      wanted, { timeout });
  } catch (err) {
    const seen = (await messages(page)).map((m) => `${m.nick}: ${m.text.slice(0, 80)}`);
    throw new Error(`message ${JSON.stringify(wanted.slice(0, 80))} did not appear on ${page.url()} within ${timeout} ms; `
      + `messages: ${JSON.stringify(seen)}`, { cause: err });
  }
  return (await messages(page)).filter((m) => m.text === wanted);
}

async function say(page, words) {
  await page.fill('#text', words);
  await page.press('#text', 'Enter');
}

// --- Node ws client ----------------------------------------------------------------------

async function openWs(url, perMessageDeflate) {
  const ws = new WebSocket(url, { perMessageDeflate, handshakeTimeout: STEP_MS, maxPayload: 8 * 1024 * 1024 });
  await withTimeout(new Promise((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
    ws.once('unexpected-response', (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)));
  }), STEP_MS, `open ${url}`);
  return ws;
}

// Sends every message, then waits for as many echoes; returns them as { binary, data }.
async function echoAll(ws, outgoing) {
  const received = [];
  const done = new Promise((resolve, reject) => {
    const onMessage = (data, isBinary) => {
      received.push({ binary: isBinary, data: Buffer.isBuffer(data) ? data : Buffer.concat(data) });
      if (received.length === outgoing.length) { ws.off('message', onMessage); resolve(); }
    };
    ws.on('message', onMessage);
    ws.once('close', (code, reason) => reject(new Error(`closed ${code} ${reason}`)));
    ws.once('error', reject);
  });
  for (const m of outgoing) ws.send(m.data, { binary: m.binary });
  await withTimeout(done, ECHO_MS, `${outgoing.length} echoes`);
  return received;
}

async function closeWs(ws) {
  if (ws.readyState === WebSocket.CLOSED) return;
  const closed = once(ws, 'close');
  ws.close(1000);
  await withTimeout(closed, STEP_MS, 'close handshake');
}

const NODE_SIZES = [0, 1, 125, 126, 1023, 1024, 1025, 4096, 65535, 65536, 100 * KiB, 512 * KiB, 1024 * KiB + 1];

function nodeMessages() {
  const out = [];
  for (const size of NODE_SIZES) {
    out.push({ binary: false, data: text(size, size + 1) });
    out.push({ binary: true, data: bytes(size, size + 2, true) });
    out.push({ binary: true, data: bytes(size, size + 3, false) });
  }
  out.push({ binary: false, data: CHINESE });
  out.push({ binary: false, data: CHINESE.repeat(2000) });
  return out;
}

// --- the test ----------------------------------------------------------------------------

test('permessage-deflate interop: Chromium and the ws client', { timeout: 240_000 }, async (t) => {
  const bin = process.env.WSRELAY_BIN;
  assert.ok(bin, 'set WSRELAY_BIN to the wsrelay binary, e.g. WSRELAY_BIN=build/src/wsrelay');
  const haveChromium = fs.existsSync(CHROMIUM);

  fs.mkdirSync(ARTIFACTS, { recursive: true });
  const log = fs.createWriteStream(path.join(ARTIFACTS, 'deflate-server.log'));
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'wsrelay-deflate-'));
  const configPath = path.join(tmp, 'wsrelay.toml');
  fs.writeFileSync(configPath, CONFIG);
  const port = await freePort();
  const server = await startServer(bin, port, configPath, log);
  const proxy = await startProxy(port);
  const base = `http://127.0.0.1:${proxy.port}`;
  const wsBase = `ws://127.0.0.1:${proxy.port}`;
  let browser;
  try {
    if (haveChromium) {
      browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS, timeout: 30_000 });
    }
    const chromiumTest = (name, fn) => t.test(name, { skip: !haveChromium && `chromium not installed: ${CHROMIUM} is missing` }, fn);

    await chromiumTest('Chromium negotiates deflate and gets every message back intact', async (st) => {
      const context = await newContext(browser);
      const page = await context.newPage();
      await page.goto(`${base}/healthz`);   // any page of the server's origin will do
      const texts = ['', 'a', 'hello', text(100), text(1000), text(16 * KiB), text(100 * KiB),
        CHINESE, CHINESE.repeat(700), '😀🎉 emoji 𝄞 and 中文 mixed'.repeat(50)];
      const binaries = [[0, true], [1, true], [1000, true], [64 * KiB, true], [256 * KiB, false], [300 * KiB, true]];
      const result = await page.evaluate(async ({ url, texts, binaries, ms }) => {
        const make = (size, random, seed) => {
          const b = new Uint8Array(size);
          let x = seed;
          for (let i = 0; i < size; i++) {
            x = (x * 1103515245 + 12345) % 2147483648;
            b[i] = random ? (x >> 16) & 0xff : i % 251;
          }
          return b;
        };
        const ws = new WebSocket(url);
        ws.binaryType = 'arraybuffer';
        await new Promise((resolve, reject) => { ws.onopen = resolve; ws.onerror = () => reject(new Error('WebSocket error')); });
        const sent = [...texts, ...binaries.map(([size, random], i) => make(size, random, i + 7))];
        const got = [];
        const done = new Promise((resolve, reject) => {
          ws.onmessage = (e) => { got.push(e.data); if (got.length === sent.length) resolve(); };
          ws.onclose = (e) => reject(new Error(`closed ${e.code} ${e.reason}`));
          setTimeout(() => reject(new Error(`only ${got.length} of ${sent.length} echoes`)), ms);
        });
        for (const m of sent) ws.send(m);
        await done;
        const same = (a, b) => {
          if (typeof a === 'string') return a === b;
          if (!(b instanceof ArrayBuffer) || b.byteLength !== a.length) return false;
          const v = new Uint8Array(b);
          return a.every((x, i) => v[i] === x);
        };
        const mismatches = sent.map((m, i) => (same(m, got[i]) ? null : {
          i, sent: typeof m === 'string' ? `text ${m.length}` : `binary ${m.length}`,
          got: typeof got[i] === 'string' ? `text ${got[i].length}` : `binary ${got[i].byteLength}`,
        })).filter(Boolean);
        const extensions = ws.extensions;
        await new Promise((resolve) => { ws.onclose = resolve; ws.close(1000); });
        return { extensions, mismatches, count: sent.length };
      }, { url: `${wsBase}/chromium-echo`, texts, binaries, ms: ECHO_MS });
      assert.match(result.extensions, /^permessage-deflate\b/, `ws.extensions is "${result.extensions}"`);
      assert.deepEqual(result.mismatches, []);
      const [conn] = proxy.websockets('/chromium-echo');
      const wire = checkWire(conn, 'Chromium');
      assert.equal(wire.agreed, result.extensions, 'ws.extensions is the agreed header');
      assert.equal(wire.fromServer.length, result.count);
      assert.equal(wire.fromClient.length, result.count);
      // Chromium compresses what it sends once deflate is agreed (today: every message; its
      // policy for tiny ones is its own business), and the server inflated it all (the echoes).
      const compressed = wire.fromClient.filter((m) => m.compressed).length;
      const big = wire.fromClient.filter((m) => m.bytes >= 1000 || m.compressed);
      assert.ok(big.length > 5 && big.every((m) => m.compressed),
        `Chromium compressed ${compressed} of ${result.count} messages: ${JSON.stringify(wire.fromClient)}`);
      st.diagnostic(`Chromium offered "${wire.offer}", server agreed "${wire.agreed}"; `
        + `${compressed}/${result.count} messages compressed by Chromium, ${result.count}/${result.count} by the server`);
      await context.close();
    });

    await chromiumTest('two pages chat through the chat UI with deflate on', async () => {
      const aliceCtx = await newContext(browser);
      const bobCtx = await newContext(browser);
      const alice = await openChat(aliceCtx, base, 'deflate-chat', 'alice');
      const bob = await openChat(bobCtx, base, 'deflate-chat', 'bob');
      for (const page of [alice, bob]) {
        const ext = await page.evaluate(() => window.__sockets.at(-1).extensions);
        assert.match(ext, /^permessage-deflate\b/, `the chat page's socket agreed "${ext}"`);
      }
      const lines = ['hello from alice', '你好，鲍勃！这是压缩过的消息。', text(3000, 5)];
      for (const line of lines) {
        await say(alice, line);
        const [atBob] = await waitForMessage(bob, line);
        assert.equal(atBob.nick, 'alice');
      }
      await say(bob, '收到 — bob');
      const [atAlice] = await waitForMessage(alice, '收到 — bob');
      assert.equal(atAlice.nick, 'bob');
      await alice.locator('#messages .msg[data-own="true"][data-status="sent"]').first().waitFor();
      const conns = proxy.websockets('/deflate-chat');
      assert.equal(conns.length, 2);
      for (const conn of conns) {
        const wire = checkWire(conn, 'chat page');
        assert.ok(wire.fromServer.length >= 4, `server sent ${wire.fromServer.length} messages`);
        assert.ok(wire.fromClient.every((m) => m.compressed), 'Chromium compressed every chat message');
      }
      assert.deepEqual(incidents, []);
      await aliceCtx.close();
      await bobCtx.close();
    });

    const variants = [
      ['perMessageDeflate: true', true, 1024],
      ['no context takeover, 10-bit windows', { serverNoContextTakeover: true, clientNoContextTakeover: true, serverMaxWindowBits: 10, clientMaxWindowBits: 10 }, 1024],
      ['threshold 0 (every message compressed)', { threshold: 0 }, 0],
    ];
    for (const [i, [name, option, threshold]] of variants.entries()) {
      await t.test(`ws client, ${name}: negotiation and echoes of many sizes`, async (st) => {
        const url = `${wsBase}/node-echo-${i}`;
        const ws = await openWs(url, option);
        assert.equal(ws.extensions, 'permessage-deflate');
        const outgoing = nodeMessages();
        const received = await echoAll(ws, outgoing);
        for (const [k, m] of outgoing.entries()) {
          const want = Buffer.isBuffer(m.data) ? m.data : Buffer.from(m.data, 'utf8');
          const r = received[k];
          assert.equal(r.binary, m.binary, `message ${k}: type`);
          assert.ok(r.data.equals(want), `message ${k} (${m.binary ? 'binary' : 'text'}, ${want.length} bytes) differs: got ${r.data.length} bytes`);
        }
        await closeWs(ws);
        const [conn] = proxy.websockets(`/node-echo-${i}`);
        const wire = checkWire(conn, `ws (${name})`);
        if (typeof option === 'object' && option.serverMaxWindowBits) {
          assert.match(wire.agreed, /server_max_window_bits=10\b/);
          assert.match(wire.agreed, /client_max_window_bits=10\b/);
        }
        // ws compresses a message when it is at least `threshold` bytes long: those, and only
        // those, arrived compressed — and the server inflated them correctly (the echoes).
        const wantCompressed = outgoing.map((m) => (Buffer.isBuffer(m.data) ? m.data.length : Buffer.byteLength(m.data)) >= threshold);
        assert.deepEqual(wire.fromClient.map((m) => m.compressed), wantCompressed);
        assert.equal(wire.fromServer.length, outgoing.length);
        st.diagnostic(`ws ${name}: agreed "${wire.agreed}"; ${wantCompressed.filter(Boolean).length}/${outgoing.length} compressed by ws`);
      });
    }

    await chromiumTest('a ws client and a browser in the same room', async () => {
      const context = await newContext(browser);
      const page = await openChat(context, base, 'mixed', 'carol');
      const ws = await openWs(`${wsBase}/mixed`, true);
      const inbox = [];
      ws.on('message', (data, isBinary) => { if (!isBinary) inbox.push(data.toString('utf8')); });
      // Long enough for ws to compress it (threshold 1024), with Chinese in it.
      const long = `${CHINESE} ${text(2000, 9)}`;
      for (const [k, words] of ['short from node', long].entries()) {
        ws.send(JSON.stringify({ v: 1, type: 'chat', nick: 'node-ws', text: words, ts: Date.now(), id: `n${k}` }));
        const [m] = await waitForMessage(page, words);
        assert.equal(m.nick, 'node-ws');
      }
      await say(page, '浏览器说：hello, node');
      const deadline = Date.now() + STEP_MS;
      let envelope = null;
      while (!envelope && Date.now() < deadline) {
        envelope = inbox.map((s) => { try { return JSON.parse(s); } catch { return null; } })
          .find((e) => e && e.text === '浏览器说：hello, node');
        if (!envelope) await sleep(50);
      }
      assert.ok(envelope, `ws client did not receive the page's message; got ${JSON.stringify(inbox.map((s) => s.slice(0, 60)))}`);
      assert.equal(envelope.nick, 'carol');
      await closeWs(ws);
      const conns = proxy.websockets('/mixed');
      assert.equal(conns.length, 2);
      for (const conn of conns) checkWire(conn, 'mixed room');
      const wsConn = conns.find((c) => c.c2s.header('user-agent') === null);   // ws sends none
      assert.ok(wsConn, 'the ws client connection went through the proxy');
      assert.ok(wsConn.c2s.messages().some((m) => m.compressed), 'the long message left ws compressed');
      assert.deepEqual(incidents, []);
      await context.close();
    });
  } finally {
    await browser?.close();
    await proxy.close();
    await stopServer(server);
    log.end();
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  assert.equal(server.exitCode, 0, `wsrelay exited with ${server.exitCode ?? server.signalCode} (see artifacts/deflate-server.log)`);
});
