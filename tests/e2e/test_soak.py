# SPDX-License-Identifier: Apache-2.0
"""The soak test (soak.py) as CTest tests, labels e2e;soak:

* e2e.soak (SoakTest): one daemon (ws and wss listeners, socket-activated) for
  WSRELAY_SOAK_SECONDS (default 120): a few hundred well-behaved clients exchanging
  sequence-numbered messages, thousands of others joining and leaving, misbehaving, resetting;
* e2e.soak.cluster (ClusterSoakTest): the same mix spread over two instances that share their
  rooms through a redis-server started for the test ([cluster]), for
  WSRELAY_SOAK_CLUSTER_SECONDS (default 60), with the same zero-loss accounting across the
  instances.

Both run with token rooms ([auth]: the last 5 rooms need a signed token, which every client of
theirs carries) and hostile token attempts (forged, expired, alg none, alg confusion, another
room's, none) that must all be refused with 401/403 before any 101 (see soak.py).

Fails when a well-behaved client lost, duplicated or reordered a message or was closed by the
server, a misbehaving one got an answer the protocol does not allow, a hostile token was
admitted or refused with the wrong status or reason (or the refusal counters disagree with the
refusals seen), /healthz did not answer 200 within 1 s, the fds or RSS did not return to their
baseline, or a daemon logged at err, crashed or reported a sanitizer error; in the cluster, also
when an instance dropped a message for the other one, lost its Redis link or kept a channel
subscribed after the run. Run soak.py by hand for longer runs and other mixes (--help).
"""

import os
import shutil
import sys
import unittest

import harness
import soak


def soak_args(duration_var, default_seconds):
    if shutil.which("openssl") is None:
        raise unittest.SkipTest("no openssl command to make the wss certificate")
    seed = os.environ.get("WSRELAY_SOAK_SEED")
    return {"binary": harness.binary(),
            "duration": float(os.environ.get(duration_var, default_seconds)),
            "seed": int(seed) if seed else None, "out": sys.stderr}


class SoakTest(unittest.TestCase):

    def test_soak(self):
        report = soak.run(**soak_args("WSRELAY_SOAK_SECONDS", "120"))
        self.assertFalse(report.failures, "soak failed (rerun with WSRELAY_SOAK_SEED to replay "
                         "the same plan):\n" + report.text)


class ClusterSoakTest(unittest.TestCase):

    def test_soak_cluster(self):
        if shutil.which("redis-server") is None:
            self.skipTest("no redis-server (Debian: redis-server) for the cluster's backplane")
        report = soak.run(cluster=True, **soak_args("WSRELAY_SOAK_CLUSTER_SECONDS", "60"))
        self.assertFalse(report.failures, "cluster soak failed (rerun with WSRELAY_SOAK_SEED to "
                         "replay the same plan):\n" + report.text)


if __name__ == "__main__":
    unittest.main()
