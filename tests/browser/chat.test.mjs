// SPDX-License-Identifier: Apache-2.0
// Browser test of the chat page served by wsrelay (src/www), driven by playwright-core on
// Debian's chromium.
//
//   WSRELAY_BIN=/path/to/wsrelay node --test tests/browser/chat.test.mjs   (or ./run.sh)
//
// The test starts `$WSRELAY_BIN --listen 127.0.0.1:PORT` itself on a free loopback port, kills it
// and restarts it on the same port to check reconnection, and kills it at the end. Every wait
// is bounded. A screenshot is left in tests/browser/artifacts/ together with the server's log.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, freePort, launch, sleep, stopServer, watchIncidents, serverUnderTest } from './lib.mjs';

const STEP_MS = 10_000;        // default bound for one page action or wait
const RECONNECT_MS = 25_000;   // the page backs off up to 10 s (+ jitter) between attempts
const XSS = '<img src=x onerror=alert(1)>';


// --- the server under test ---------------------------------------------------------------

// Starts wsrelay and waits until it serves the page. A restart on the port we just killed may
// briefly fail to bind, so a server that exits at once is started again until the deadline.
async function startServer(bin, port, log) {
  const deadline = Date.now() + 15_000;
  const url = `http://127.0.0.1:${port}/`;
  for (;;) {
    const { child, serving, spawnError } = await launch(bin, ['--listen', `127.0.0.1:${port}`], url, log, { until: deadline });
    if (serving) return child;
    if (spawnError) throw new Error(`cannot start ${bin}: ${spawnError.message}`);
    if (child.exitCode === null && child.signalCode === null)
      throw new Error(`${bin} runs but did not serve ${url} within 15 s (see artifacts/server.log)`);
    if (Date.now() + 250 >= deadline) {
      const how = child.exitCode !== null ? `status ${child.exitCode}` : child.signalCode;
      throw new Error(`${bin} keeps exiting (last: ${how}) instead of serving ${url} (see artifacts/server.log)`);
    }
    await sleep(250);   // most likely the port is not free yet
  }
}


// --- pages -------------------------------------------------------------------------------

// Everything a page did that the test must not tolerate: dialogs (an injected alert()),
// uncaught script errors and Content-Security-Policy violations.
const incidents = [];

async function newContext(browser, options = {}) {
  const context = await browser.newContext(options);
  context.setDefaultTimeout(STEP_MS);
  await context.addInitScript(() => {
    document.addEventListener('securitypolicyviolation', (e) => {
      console.error(`CSP violation: ${e.violatedDirective} blocked ${e.blockedURI}`);
    });
  });
  return context;
}

async function openChat(context, base, room, nick) {
  const page = await context.newPage();
  watchIncidents(page, incidents);
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

// Waits until a message with exactly this text is in the list; returns all such messages.
async function waitForMessage(page, text, timeout = STEP_MS) {
  try {
    await page.waitForFunction(
      (t) => [...document.querySelectorAll('#messages .msg .text')].some((e) => e.textContent === t),
      text, { timeout });
  } catch (err) {
    const seen = (await messages(page)).map((m) => `${m.nick}: ${m.text}`);
    throw new Error(`message ${JSON.stringify(text)} did not appear on ${page.url()} within ${timeout} ms; `
      + `state=${await page.getAttribute('#state', 'data-state')}, messages: ${JSON.stringify(seen)}`, { cause: err });
  }
  return (await messages(page)).filter((m) => m.text === text);
}

async function say(page, text) {
  await page.fill('#text', text);
  await page.press('#text', 'Enter');
}

// --- the test ----------------------------------------------------------------------------

test('chat page in a real browser against wsrelay', { timeout: 180_000 }, async (t) => {
  const bin = serverUnderTest(t);
  if (!bin) return;

  fs.mkdirSync(ARTIFACTS, { recursive: true });
  const log = fs.createWriteStream(path.join(ARTIFACTS, 'server.log'));
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  let server = await startServer(bin, port, log);
  let browser;
  try {
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS, timeout: 30_000 });
    const aliceCtx = await newContext(browser);
    const bobCtx = await newContext(browser);
    const carolCtx = await newContext(browser);
    const alice = await openChat(aliceCtx, base, 'kitchen', 'alice');
    const bob = await openChat(bobCtx, base, 'kitchen', 'bob');
    const carol = await openChat(carolCtx, base, 'garden', 'carol');

    await t.test('two pages in the same room chat both ways', async () => {
      await say(alice, 'hello from alice');
      const atBob = await waitForMessage(bob, 'hello from alice');
      assert.deepEqual(atBob, [{ nick: 'alice', text: 'hello from alice', own: false, status: null }]);

      await say(bob, 'hi alice, bob here');
      const atAlice = await waitForMessage(alice, 'hi alice, bob here');
      assert.deepEqual(atAlice, [{ nick: 'bob', text: 'hi alice, bob here', own: false, status: null }]);

      // The sender sees its own message once, marked as its own and confirmed by the echo.
      await alice.locator('#messages .msg[data-own="true"][data-status="sent"]').waitFor();
      const own = (await messages(alice)).filter((m) => m.text === 'hello from alice');
      assert.deepEqual(own, [{ nick: 'alice', text: 'hello from alice', own: true, status: 'sent' }]);
      assert.equal(await alice.getAttribute('html', 'lang'), 'en');
      assert.equal(await alice.textContent('#send'), 'Send');
      assert.equal(await alice.inputValue('#text'), '', 'the text box is cleared after sending');
    });

    await t.test('a page in another room sees nothing of it', async () => {
      await say(carol, 'only for the garden');
      await waitForMessage(carol, 'only for the garden');
      // Alice and Bob received everything above in order; a round trip through their own
      // room after Carol's message shows that nothing of hers is still on its way.
      await say(bob, 'kitchen sync');
      await waitForMessage(alice, 'kitchen sync');
      for (const page of [alice, bob]) {
        assert.ok(!(await messages(page)).some((m) => m.text === 'only for the garden'));
      }
      assert.deepEqual((await messages(carol)).map((m) => m.text), ['only for the garden']);
    });

    await t.test('markup in messages is shown as literal text', async () => {
      await say(alice, XSS);
      for (const page of [alice, bob]) {
        const [m] = await waitForMessage(page, XSS);
        assert.equal(m.text, XSS);
        assert.equal(await page.locator('img').count(), 0, 'no <img> element was created');
      }

      // Other clients need not use the page's envelope: raw text, binary data and an envelope
      // with markup in the nickname, sent from a bare WebSocket in Carol's page.
      await carol.evaluate(async (url) => {
        const ws = new WebSocket(url);
        await new Promise((resolve, reject) => { ws.onopen = resolve; ws.onerror = reject; });
        ws.send('<b>raw</b><img src=x onerror=alert(2)>');
        ws.send(new Uint8Array([1, 2, 3, 4, 5]));
        ws.send(JSON.stringify({ v: 1, type: 'chat', nick: '<img src=x onerror=alert(3)>', text: 'evil nick', ts: Date.now(), id: 'x1' }));
        ws.close();
      }, `ws://127.0.0.1:${port}/kitchen`);
      const [raw] = await waitForMessage(bob, '<b>raw</b><img src=x onerror=alert(2)>');
      assert.equal(raw.nick, '(unknown)');
      const [binary] = await waitForMessage(bob, '[binary message, 5 bytes]');
      assert.equal(binary.nick, '(unknown)');
      const [evil] = await waitForMessage(bob, 'evil nick');
      assert.equal(evil.nick, '<img src=x onerror=alert(3)>');
      assert.equal(await bob.locator('img, b').count(), 0, 'no element was created from received data');
      assert.deepEqual(incidents, []);
    });

    await t.test('state follows the server going away and coming back', async () => {
      await stopServer(server, 'SIGKILL');
      for (const page of [alice, bob]) {
        await page.locator('#state[data-state="closed"]').waitFor();
        assert.match(await page.textContent('#state'), /closed\s+— reconnecting in \d+ s/);
      }

      // While closed, sending is disabled and what was typed stays in the box.
      await say(alice, 'typed while the server was away');
      assert.equal(await alice.isDisabled('#send'), true);
      assert.equal(await alice.inputValue('#text'), 'typed while the server was away');

      server = await startServer(bin, port, log);
      for (const page of [alice, bob]) {
        await page.locator('#state[data-state="open"]').waitFor({ timeout: RECONNECT_MS });
      }
      await alice.press('#text', 'Enter');   // the text kept from before, sent now
      const [m] = await waitForMessage(bob, 'typed while the server was away');
      assert.equal(m.nick, 'alice');
      await say(bob, 'welcome back');
      await waitForMessage(alice, 'welcome back');
    });

    await t.test('usable with the keyboard alone', async () => {
      // Tab order follows the page top to bottom, and keyboard focus is visibly marked.
      await bob.focus('#room');
      const order = ['#room', 'button[type="submit"]', '#nick', '#messages', '#text', '#send'];
      for (let i = 1; i < order.length; i++) {
        await bob.keyboard.press('Tab');
        assert.ok(await bob.evaluate((sel) => document.activeElement.matches(sel), order[i]),
          `Tab from ${order[i - 1]} reaches ${order[i]}`);
        const outline = await bob.evaluate(() => getComputedStyle(document.activeElement).outlineStyle);
        assert.notEqual(outline, 'none', `${order[i]} shows a focus ring`);
      }
      // Enter on the focused send button sends, like Enter in the text box.
      await bob.focus('#text');
      await bob.keyboard.type('sent with the keyboard');
      await bob.keyboard.press('Tab');
      await bob.keyboard.press('Enter');
      await waitForMessage(alice, 'sent with the keyboard');
    });

    await t.test('labels are Chinese for a zh-CN browser', async () => {
      const context = await newContext(browser, { locale: 'zh-CN' });
      const page = await openChat(context, base, 'lobby', '小明');
      assert.match(await page.getAttribute('html', 'lang'), /^zh/);
      assert.equal(await page.textContent('#send'), '发送');
      assert.equal(await page.textContent('label[for="room"]'), '房间');
      assert.equal(await page.textContent('label[for="nick"]'), '昵称');
      assert.equal(await page.textContent('#state-text'), '已连接');
      await say(page, '你好');
      const [m] = await waitForMessage(page, '你好');
      assert.equal(m.nick, '小明');
      await context.close();
    });

    await t.test('fits a 360 px wide phone screen', async () => {
      const context = await newContext(browser, { viewport: { width: 360, height: 740 }, deviceScaleFactor: 2 });
      const page = await openChat(context, base, 'kitchen', 'dana');
      await say(page, `a long word that must wrap: ${'x'.repeat(200)}`);
      await page.locator('#messages .msg[data-status="sent"]').waitFor();
      const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      assert.ok(overflow <= 0, `page scrolls horizontally by ${overflow} px`);
      for (const selector of ['#text', '#send', '#state', '#room', '#nick']) {
        assert.ok(await page.isVisible(selector), `${selector} is visible`);
        const box = await page.locator(selector).boundingBox();
        assert.ok(box.x >= 0 && box.x + box.width <= 360, `${selector} fits horizontally: ${JSON.stringify(box)}`);
        assert.ok(box.y >= 0 && box.y + box.height <= 740, `${selector} fits vertically: ${JSON.stringify(box)}`);
      }
      await page.screenshot({ path: path.join(ARTIFACTS, 'chat-360.png') });
      await context.close();
    });

    await t.test('screenshot', async () => {
      await alice.setViewportSize({ width: 900, height: 640 });
      await alice.screenshot({ path: path.join(ARTIFACTS, 'chat.png') });
      assert.ok(fs.statSync(path.join(ARTIFACTS, 'chat.png')).size > 0);
    });

    await t.test('no dialogs, script errors or CSP violations on any page', () => {
      assert.deepEqual(incidents, []);
    });
  } finally {
    await browser?.close();
    await stopServer(server);
    log.end();
  }
});
