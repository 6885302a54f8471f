// SPDX-License-Identifier: Apache-2.0
// Browser test of the chat page on a private room: `[auth] hmac_secret_file` and a
// `[[room]] auth = "token"`, joined with a signed token (JWT, HS256) in the page's own URL,
// which the page passes on to its WebSocket URL as `?token=`. Driven by playwright-core on
// Debian's chromium.
//
//   WSRELAY_BIN=/path/to/wsrelay node --test tests/browser/auth.test.mjs   (or ./run.sh)
//
// The test writes a secret and a config to a temporary folder, starts
// `$WSRELAY_BIN --config <it> --listen 127.0.0.1:PORT`, mints its tokens with node:crypto and
// kills the server at the end. Every wait is bounded; the server's log is left in
// tests/browser/artifacts/auth-server.log.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, freePort, launch, sleep, stopServer, watchIncidents, serverUnderTest } from './lib.mjs';

const STEP_MS = 10_000;   // default bound for one page action or wait


// --- tokens ------------------------------------------------------------------------------

// A JWS compact token, HS256 (RFC 7515 §3.1, RFC 7518 §3.2): base64url(header) "."
// base64url(claims) "." base64url(HMAC-SHA256 of the first two parts).
function hs256(claims, secret) {
  const part = (obj) => Buffer.from(JSON.stringify(obj)).toString('base64url');
  const input = `${part({ alg: 'HS256', typ: 'JWT' })}.${part(claims)}`;
  const mac = crypto.createHmac('sha256', secret).update(input).digest('base64url');
  return `${input}.${mac}`;
}

const inAnHour = () => Math.floor(Date.now() / 1000) + 3600;

// --- the server under test ---------------------------------------------------------------

// Starts wsrelay with `configPath` and waits until it serves the page. Everything it logs goes
// to `log` and is also kept in `output.text`, for the checks on its log lines.
async function startServer(bin, port, configPath, log, output) {
  const url = `http://127.0.0.1:${port}/`;
  const { child, serving, spawnError } = await launch(bin, ['--config', configPath, '--listen', `127.0.0.1:${port}`],
    url, log, { output });
  if (serving) return child;
  if (spawnError) throw new Error(`cannot start ${bin}: ${spawnError.message}`);
  throw new Error(`${bin} did not serve ${url} within 15 s: ${output.text.trim() || '(no output)'}`);
}


// Waits until the server has logged a line that matches `re`.
async function waitForLog(output, re, timeout = STEP_MS) {
  const deadline = Date.now() + timeout;
  while (!re.test(output.text)) {
    if (Date.now() > deadline) throw new Error(`the server did not log ${re} within ${timeout} ms`);
    await sleep(50);
  }
}

// --- pages -------------------------------------------------------------------------------

const incidents = [];   // dialogs, script errors, CSP violations: none is tolerated

async function newContext(browser) {
  const context = await browser.newContext();
  context.setDefaultTimeout(STEP_MS);
  await context.addInitScript(() => {
    document.addEventListener('securitypolicyviolation', (e) => {
      console.error(`CSP violation: ${e.violatedDirective} blocked ${e.blockedURI}`);
    });
  });
  return context;
}

// Opens `url` in a new page of `context` and returns the page and the URLs of the WebSockets it
// opens, in order. Waits for nothing: the caller waits for the state it expects.
async function openPage(context, url, nick) {
  const page = await context.newPage();
  const sockets = [];
  page.on('websocket', (ws) => sockets.push(ws.url()));
  watchIncidents(page, incidents);
  await page.addInitScript((n) => localStorage.setItem('wsrelay.nick', n), nick);
  await page.goto(url);
  return { page, sockets };
}

function texts(page, selector) {
  return page.$$eval(selector, (items) => items.map((e) => e.textContent));
}

async function waitForMessage(page, text) {
  try {
    await page.waitForFunction(
      (t) => [...document.querySelectorAll('#messages .msg .text')].some((e) => e.textContent === t),
      text, { timeout: STEP_MS });
  } catch (err) {
    throw new Error(`message ${JSON.stringify(text)} did not appear on ${page.url()}; `
      + `state=${await page.getAttribute('#state', 'data-state')}, `
      + `messages: ${JSON.stringify(await texts(page, '#messages .msg .text'))}`, { cause: err });
  }
}

async function say(page, text) {
  await page.fill('#text', text);
  await page.press('#text', 'Enter');
}

// What the page shows when its WebSocket is refused at the handshake: the browser reports a
// close (1006) before any open, so the page is "closed", counts down to its next attempt,
// never said it joined, and keeps the send button disabled.
async function assertCouldNotConnect(page) {
  // State and text read in one go: the page soon moves on to "connecting…" for its next attempt.
  await page.waitForFunction(() => {
    const state = document.querySelector('#state');
    return state.dataset.state === 'closed' && /closed\s+— reconnecting in \d+ s/.test(state.textContent);
  }, null, { timeout: STEP_MS, polling: 50 });
  assert.deepEqual(await texts(page, '#messages .note'), [], 'no "Joined room" (or any) note');
  assert.equal(await page.isDisabled('#send'), true);
}

// --- the test ----------------------------------------------------------------------------

test('chat page on a private room, with a token in its URL', { timeout: 120_000 }, async (t) => {
  const bin = serverUnderTest(t);
  if (!bin) return;

  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'wsrelay-auth-'));
  const secret = crypto.randomBytes(32).toString('base64');
  const secretPath = path.join(tmp, 'jwt-secret');
  fs.writeFileSync(secretPath, `${secret}\n`, { mode: 0o600 });
  const configPath = path.join(tmp, 'wsrelay.toml');
  fs.writeFileSync(configPath, `
[auth]
hmac_secret_file = ${JSON.stringify(secretPath)}

[[room]]
path = "/private"
auth = "token"
`);

  fs.mkdirSync(ARTIFACTS, { recursive: true });
  const log = fs.createWriteStream(path.join(ARTIFACTS, 'auth-server.log'));
  const output = { text: '' };
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const server = await startServer(bin, port, configPath, log, output);
  const alice = hs256({ sub: 'alice', rooms: ['/private'], exp: inAnHour() }, secret);
  const bob = hs256({ sub: 'bob', rooms: ['/private'], exp: inAnHour() }, secret);
  let browser;
  try {
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS, timeout: 30_000 });

    await t.test('with a token in the page URL, the page joins and a message round-trips', async () => {
      const a = await openPage(await newContext(browser), `${base}/?token=${alice}#/private`, 'alice');
      const b = await openPage(await newContext(browser), `${base}/?token=${bob}#/private`, 'bob');
      for (const { page } of [a, b]) await page.locator('#state[data-state="open"]').waitFor();
      assert.deepEqual(a.sockets, [`ws://127.0.0.1:${port}/private?token=${alice}`]);
      assert.deepEqual(b.sockets, [`ws://127.0.0.1:${port}/private?token=${bob}`]);
      assert.deepEqual(await texts(a.page, '#messages .note'), ['Joined room “private”.']);

      await say(a.page, 'hello from the private room');
      await waitForMessage(b.page, 'hello from the private room');
      // The sender's own copy is confirmed by the server's echo.
      await a.page.locator('#messages .msg[data-own="true"][data-status="sent"]').waitFor();
      await say(b.page, 'hi alice');
      await waitForMessage(a.page, 'hi alice');

      // The server knew who they were: the token's sub is on the connect line.
      await waitForLog(output, /room=\/private user=alice connected/);
      await waitForLog(output, /room=\/private user=bob connected/);
      await a.page.context().close();
      await b.page.context().close();
    });

    await t.test('without a token, the page shows it could not connect', async () => {
      const { page, sockets } = await openPage(await newContext(browser), `${base}/#/private`, 'eve');
      await assertCouldNotConnect(page);
      assert.equal(sockets[0], `ws://127.0.0.1:${port}/private`, 'no token, no query');
      await waitForLog(output, /room=\/private token refused: no token: 401/);
      await page.context().close();
    });

    await t.test('with a token that is not valid, the page shows it could not connect', async () => {
      // Not signed with the server's secret; and characters that need percent-encoding, to show
      // the page passes the value on encoded (the server percent-decodes it).
      const forged = hs256({ sub: 'mallory', rooms: ['/private'], exp: inAnHour() }, 'not the secret');
      const { page, sockets } = await openPage(await newContext(browser),
        `${base}/?token=${forged}#/private`, 'mallory');
      await assertCouldNotConnect(page);
      assert.equal(sockets[0], `ws://127.0.0.1:${port}/private?token=${forged}`);
      await waitForLog(output, /room=\/private token refused: bad signature: 401/);

      const odd = await openPage(await newContext(browser), `${base}/?token=a%2Bb%20c%2F%3D%26x#/private`, 'odd');
      await assertCouldNotConnect(odd.page);
      assert.equal(odd.sockets[0], `ws://127.0.0.1:${port}/private?token=a%2Bb%20c%2F%3D%26x`);
      await page.context().close();
      await odd.page.context().close();
    });

    await t.test('open rooms work as before, with or without a token', async () => {
      const plain = await openPage(await newContext(browser), `${base}/#/lobby`, 'carol');
      const withToken = await openPage(await newContext(browser), `${base}/?token=${alice}#/lobby`, 'alice');
      for (const { page } of [plain, withToken]) await page.locator('#state[data-state="open"]').waitFor();
      assert.deepEqual(plain.sockets, [`ws://127.0.0.1:${port}/lobby`]);
      assert.deepEqual(withToken.sockets, [`ws://127.0.0.1:${port}/lobby?token=${alice}`]);
      await say(plain.page, 'hello lobby');
      await waitForMessage(withToken.page, 'hello lobby');
      await say(withToken.page, 'hello carol');
      await waitForMessage(plain.page, 'hello carol');

      // Changing rooms keeps the token: from the open lobby into the private room.
      await withToken.page.fill('#room', 'private');
      await withToken.page.press('#room', 'Enter');
      await withToken.page.waitForFunction(() => document.querySelector('#state').dataset.state === 'open'
        && [...document.querySelectorAll('#messages .note')].some((e) => e.textContent.includes('private')));
      assert.equal(withToken.sockets.at(-1), `ws://127.0.0.1:${port}/private?token=${alice}`);
      await plain.page.context().close();
      await withToken.page.context().close();
    });

    await t.test('no dialogs, script errors or CSP violations on any page', () => {
      assert.deepEqual(incidents, []);
    });
  } finally {
    await browser?.close();
    await stopServer(server);
    log.end();
    fs.rmSync(tmp, { recursive: true, force: true });
  }
});
