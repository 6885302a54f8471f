// SPDX-License-Identifier: Apache-2.0
// What the browser tests share: Debian's chromium and its flags, the artifacts folder, a free
// loopback port, and the wsrelay processes they start (killed when the test process exits).
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
