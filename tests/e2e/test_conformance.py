# SPDX-License-Identifier: Apache-2.0
"""Runs the conformance suite (conformance.py: the Autobahn fuzzingclient cases 1-7, 9, 10)
against a wsrelay started by the harness, one unittest per Autobahn section."""

import io
import sys
import unittest

import conformance
import harness


class ConformanceTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.daemon = harness.Daemon(conformance.SPAWN_CONFIG)
        cls.target = conformance.Target(cls.daemon.url(""))

    @classmethod
    def tearDownClass(cls):
        d = cls.daemon
        rc = d.stop()
        report = d.sanitizer_report()
        tail = d.stderr()[-3000:]
        d.cleanup(keep_tmp=bool(report) or rc != 0)
        if report:
            raise AssertionError("sanitizer report:\n" + report)
        if rc != 0:
            raise AssertionError("wsrelay exit status %r after SIGTERM; stderr tail:\n%s" % (
                rc, tail))

    def setUp(self):
        # A crash fails the section that caused it; the next section gets a fresh daemon so one
        # bug does not hide the results of the others.
        cls = type(self)
        if not cls.daemon.alive():
            cls.daemon.cleanup(keep_tmp=True)
            cls.daemon = harness.Daemon(conformance.SPAWN_CONFIG)
            cls.target = conformance.Target(cls.daemon.url(""))

    def run_section(self, patterns):
        out = io.StringIO()
        results = conformance.run_suite(self.target, patterns, out=out)
        sys.stderr.write("\n" + out.getvalue())
        self.assertTrue(results, "no cases selected by %r" % patterns)
        crash = self.daemon.sanitizer_report()
        self.assertIsNone(crash, crash)
        failed = [r for r in results if r[1] == conformance.FAILED]
        self.assertFalse(failed, "FAILED cases:\n" + "\n".join(
            "  %s: %s" % (r[0], r[2]) for r in failed))
        self.assertTrue(self.daemon.alive(), "wsrelay died during the cases; stderr tail:\n" +
                        self.daemon.stderr()[-2000:])

    def test_1_framing(self):
        self.run_section("1.*")

    def test_2_pings_pongs(self):
        self.run_section("2.*")

    def test_3_reserved_bits(self):
        self.run_section("3.*")

    def test_4_opcodes(self):
        self.run_section("4.*")

    def test_5_fragmentation(self):
        self.run_section("5.*")

    def test_6_utf8(self):
        self.run_section("6.*")

    def test_7_close(self):
        self.run_section("7.*")

    def test_9_limits_performance(self):
        self.run_section("9.*")

    def test_10_misc(self):
        self.run_section("10.*")


if __name__ == "__main__":
    unittest.main()
