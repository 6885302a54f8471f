// SPDX-License-Identifier: Apache-2.0
// What the browser tests share: Debian's chromium and its flags, the artifacts folder, a free
// loopback port, and the wsrelay processes they start (killed when the test process exits).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const CHROMIUM = '/usr/bin/chromium';
export const CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];
export const ARTIFACTS = path.join(path.dirname(fileURLToPath(import.meta.url)), 'artifacts');

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// Asks the kernel for a free loopback port. Another process could take it before wsrelay
// binds; the test then fails with the server's own error in its log.
export async function freePort() {
  const probe = net.createServer();
  await new Promise((resolve, reject) => probe.once('error', reject).listen(0, '127.0.0.1', resolve));
  const { port } = probe.address();
  await new Promise((resolve) => probe.close(resolve));
  return port;
}

// Every server a test starts: killed if the test process exits without stopping it.
export const children = new Set();
process.on('exit', () => { for (const child of children) child.kill('SIGKILL'); });

// Resolves true once `child` has exited, false after `ms`.
export function exited(child, ms) {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), ms);
    child.once('exit', () => { clearTimeout(timer); resolve(true); });
  });
}

// SIGTERM, then SIGKILL if it is still there after 5 s.
export async function stopServer(child, signal = 'SIGTERM') {
  child.kill(signal);
  if (await exited(child, 5000)) return;
  child.kill('SIGKILL');
  await exited(child, 5000);
}

// Starts `bin` with `args`, its output into the stream `log` (and appended to `output.text` when
// given), and waits until `url` answers 200, the process ends, or 15 s (or `until`) pass.
// Returns { child, serving, spawnError }; a child still running but not serving is stopped.
export async function launch(bin, args, url, log, { output = null, until = Date.now() + 15_000 } = {}) {
  const child = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  for (const stream of [child.stdout, child.stderr]) {
    stream.pipe(log, { end: false });
    if (output) stream.on('data', (d) => { output.text += d.toString(); });
  }
  let spawnError = null;
  child.once('error', (err) => { spawnError = err; });
  child.once('exit', () => children.delete(child));
  while (Date.now() < until && child.exitCode === null && child.signalCode === null && !spawnError) {
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(1000) });
      await res.arrayBuffer();
      if (res.ok) return { child, serving: true, spawnError };
    } catch { /* not listening yet */ }
    await sleep(100);
  }
  if (!spawnError && child.exitCode === null && child.signalCode === null) await stopServer(child);
  return { child, serving: false, spawnError };
}

// Records on `incidents` what a page must never do: open a dialog (script injection), throw, or
// break the Content-Security-Policy.
export function watchIncidents(page, incidents) {
  page.on('dialog', async (dialog) => {
    incidents.push(`dialog "${dialog.message()}" on ${page.url()}`);
    await dialog.dismiss();
  });
  page.on('pageerror', (err) => incidents.push(`page error on ${page.url()}: ${err.message}`));
  page.on('console', (msg) => {
    if (msg.text().startsWith('CSP violation')) incidents.push(`${msg.text()} on ${page.url()}`);
  });
}

// The wsrelay binary a browser test drives (WSRELAY_BIN); null, with the test skipped, when
// Debian's chromium is not installed.
export function serverUnderTest(t) {
  if (!fs.existsSync(CHROMIUM)) {
    t.skip(`chromium not installed: ${CHROMIUM} is missing (apt-get install -y chromium)`);
    return null;
  }
  const bin = process.env.WSRELAY_BIN;
  assert.ok(bin, 'set WSRELAY_BIN to the wsrelay binary, e.g. WSRELAY_BIN=build/src/wsrelay');
  return bin;
}
