#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Runs the browser tests: the chat page (chat.test.mjs), the chat page on a private room with a
# token in its URL (auth.test.mjs) and permessage-deflate interop with Chromium and the ws client
# (deflate.test.mjs). Needs WSRELAY_BIN (the wsrelay binary), Node 20+
# and Debian's chromium at /usr/bin/chromium (apt-get install -y chromium); never downloads a
# browser. Exits with the tests' status.
set -eu

# The test is run from this folder, so a relative WSRELAY_BIN must be made absolute first.
if [ -n "${WSRELAY_BIN:-}" ] && [ -e "$WSRELAY_BIN" ]; then
    WSRELAY_BIN=$(realpath "$WSRELAY_BIN")
    export WSRELAY_BIN
fi

cd "$(dirname "$0")"
if [ ! -d node_modules ]; then
    npm ci --no-audit --no-fund
fi
exec node --test chat.test.mjs auth.test.mjs deflate.test.mjs
