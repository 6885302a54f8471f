# SPDX-License-Identifier: Apache-2.0
"""The soak test (soak.py) as a CTest test: e2e.soak, labels e2e;soak.

One daemon (ws and wss listeners, socket-activated) for WSRELAY_SOAK_SECONDS (default 120):
a few hundred well-behaved clients exchanging sequence-numbered messages, thousands of others
joining and leaving, misbehaving, resetting. Fails when a well-behaved client lost, duplicated
or reordered a message or was closed by the server, a misbehaving one got an answer the protocol
does not allow, /healthz did not answer 200 within 1 s, the fds or RSS did not return to their
baseline, or the daemon logged at err, crashed or reported a sanitizer error. Run soak.py by hand
for longer runs and other mixes (--help).
"""

import os
import shutil
import sys
import unittest

import harness
import soak


class SoakTest(unittest.TestCase):

    def test_soak(self):
        binary = harness.binary()
        if shutil.which("openssl") is None:
            self.skipTest("no openssl command to make the wss certificate")
        duration = float(os.environ.get("WSRELAY_SOAK_SECONDS", "120"))
        seed = os.environ.get("WSRELAY_SOAK_SEED")
        report = soak.run(binary, duration=duration, seed=int(seed) if seed else None,
                          out=sys.stderr)
        self.assertFalse(report.failures, "soak failed (rerun with WSRELAY_SOAK_SEED to replay "
                         "the same plan):\n" + report.text)


if __name__ == "__main__":
    unittest.main()
