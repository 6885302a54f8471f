# SPDX-License-Identifier: Apache-2.0
"""[server] workers = 2: a main process that supervises two reactor processes, which share the
listening sockets and the rooms (through a redis-server started by each test, as in
test_cluster.py).

Covered: READY=1 only once both workers are; 200 clients in one room, spread over both workers
(each worker's own SO_REUSEPORT socket), all receiving every message once, in each sender's order;
the same with one socket passed by a service manager without SO_REUSEPORT, shared by both workers
(EPOLLEXCLUSIVE); kill -9 of one worker mid-traffic (its clients dropped without a close frame, the
other worker's clients lose nothing, a new worker takes over and the dropped clients, reconnected,
receive again); kill -9 of the main process (each worker stops as on SIGTERM, none is left behind
holding the sockets); a stopped (wedged) worker killed and replaced by the watchdog; SIGHUP (every
worker reloads; a broken file keeps them all on the running configuration); SIGTERM (1001 to
every client, exit 0); /metrics with its worker label; --check-config and the error for workers
without [cluster]."""

import os
import re
import signal
import socket
import subprocess
import tempfile
import threading
import time
import unittest

import harness
import test_cluster
import test_systemd
import wsclient
from test_cluster import Tally


def worker_pids(d):
    """The main process's children (the workers), by /proc."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == d.pid:
            pids.append(int(entry))
    return sorted(pids)


def socket_inodes(pid):
    out = set()
    try:
        for fd in os.listdir("/proc/%d/fd" % pid):
            try:
                target = os.readlink("/proc/%d/fd/%s" % (pid, fd))
            except OSError:
                continue
            if target.startswith("socket:["):
                out.add(int(target[8:-1]))
    except OSError:
        pass
    return out


def proc_net_address(addr):
    host, port = addr[:2]
    return "%08X:%04X" % (int.from_bytes(socket.inet_aton(host), "little"), port)


def server_ends():
    """{(local, remote) as /proc/net/tcp writes them: inode} for every ESTABLISHED connection
    (the same client port may serve connections to other servers too: both ends are the key). The kernel writes the table as it walks it, so a reading taken while
    other sockets come and go may miss a row: owners() reads again for the ones it missed."""
    fd = os.open("/proc/net/tcp", os.O_RDONLY)
    try:
        chunks = []
        while True:
            b = os.read(fd, 1 << 20)
            if not b:
                break
            chunks.append(b)
    finally:
        os.close(fd)
    out = {}
    for line in b"".join(chunks).decode().splitlines()[1:]:
        fields = line.split()
        if fields[3] == "01":
            out[(fields[1], fields[2])] = int(fields[9])
    return out


def alive(pid):
    """Running (not gone, not a zombie)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def counts(pids):
    """{pid: how many of the clients it holds}"""
    out = {}
    for p in pids:
        out[p] = out.get(p, 0) + 1
    return out


def owners(d, clients):
    """For each client, the pid of the worker that holds its connection."""
    by_worker = {pid: socket_inodes(pid) for pid in worker_pids(d)}
    wanted = []
    for c in clients:     # the server's end: local = what the client connected to, remote = it
        wanted.append((proc_net_address(c.sock.getpeername()), proc_net_address(c.sock.getsockname())))
    out = [None] * len(clients)
    for _reading in range(10):
        ends = server_ends()
        for i, key in enumerate(wanted):
            if out[i] is None and key in ends:
                out[i] = next((pid for pid, inodes in by_worker.items() if ends[key] in inodes), None)
        if None not in out:
            break
    return out


class WorkersTestCase(test_cluster.ClusterTestCase):

    def start_workers(self, redis, config=None, bound=True, env=None):
        """workers = 2 with [cluster] on `redis`. bound: the daemon binds its own listener (so
        each worker gets a SO_REUSEPORT socket); else one socket is passed as by systemd."""
        cfg = harness.merge({"server": {"workers": 2},
                             "cluster": {"redis": redis.url},
                             "limits": {"message_rate": 0, "max_connections_per_ip": 0}},
                            config or {})
        if bound:
            port = harness.free_port()
            cfg = harness.merge(cfg, {"listen": [{"address": "127.0.0.1:%d" % port, "metrics": True}]})
            d = self.start(cfg, activation=False, listen=[], env=env, wait_ready=False)
            d.port = port
        else:
            cfg = harness.merge(cfg, {"listen": [{"address": "127.0.0.1:{port}", "metrics": True}]})
            d = self.start(cfg, env=env, wait_ready=False)
        d.label = "workers"
        d.wait_notify("READY=1", timeout=30)
        return d

    def wait_workers(self, d, n=2):
        return harness.wait_for(lambda: worker_pids(d), 20, "%d workers" % n,
                                until=lambda p: len(p) == n)

    def wait_channel_subscribers(self, r, room, n):
        channel = "wsrelay:room:" + room
        harness.wait_for(lambda: r.command("PUBSUB", "NUMSUB", channel)[1], 30,
                         "%d subscribers to %s" % (n, channel), until=lambda v: v == n)

    def clients_on_both(self, d, room, count):
        cs = [self.connect(d, room) for _ in range(count)]
        own = owners(d, cs)
        pids = self.wait_workers(d)
        self.assertNotIn(None, own, "a client whose connection no worker holds")
        per = {p: own.count(p) for p in pids}
        return cs, own, per


class SpreadTest(WorkersTestCase):

    def check_room(self, d, r, room, n_clients, n_senders, per_sender):
        cs, own, per = self.clients_on_both(d, room, n_clients)
        print("\n  %d clients: %s" % (n_clients, ", ".join("worker pid %d: %d" % kv for kv in per.items())),
              end=" ")
        self.assertTrue(all(v > 0 for v in per.values()), per)
        self.wait_channel_subscribers(r, room, 2)
        # Senders taken from both workers, their messages interleaved.
        senders = []
        for pid in per:
            senders += [i for i, p in enumerate(own) if p == pid][: n_senders // 2]
        tallies = [Tally("c%d" % i, ["s%d" % s for s in senders]) for i in range(n_clients)]
        for seq in range(per_sender):
            for s in senders:
                cs[s].send_text("s%d:%d:" % (s, seq))
        for i, c in enumerate(cs):
            for s in senders:
                tallies[i].read_until(c, "s%d" % s, per_sender - 1)
        for i, c in enumerate(cs):
            c.expect_silence(0.0 if i else 0.3)    # nothing twice
        return cs

    def test_200_clients_over_two_workers_each_get_every_message(self):
        r = self.redis()
        d = self.start_workers(r)
        self.check_room(d, r, "/spread", 200, 4, 25)
        log = d.stderr()
        self.assertIn("all 2 workers are ready", log)
        self.assertNotIn("one socket shared", log)

    def test_one_passed_socket_shared_by_both_workers(self):
        r = self.redis()
        d = self.start_workers(r, bound=False)
        self.assertIn("one socket shared by the 2 workers (it has no SO_REUSEPORT, which systemd sets "
                      "with ReusePort=yes)", d.stderr())
        # EPOLLEXCLUSIVE wakes one of the workers waiting in epoll_wait; on an idle machine that is
        # the same one every time (measured: 400 of 400 connections on one worker). A stopped worker
        # is not waiting, so the kernel wakes the other one: the connections made while the first
        # is stopped (they could not be upgraded otherwise) show that both accept from the one socket.
        cs = [self.connect(d, "/shared") for _ in range(20)]
        per = counts(owners(d, cs))
        self.assertNotIn(None, per)
        if len(per) == 1:
            first = next(iter(per))
            os.kill(first, signal.SIGSTOP)
            try:
                cs += [self.connect(d, "/shared") for _ in range(20)]
            finally:
                os.kill(first, signal.SIGCONT)
            per = counts(owners(d, cs))
            self.assertEqual(per.get(first), 20, per)
        self.assertEqual(len(per), 2, "every connection went to one worker: %r" % per)
        self.wait_channel_subscribers(r, "/shared", 2)
        cs[0].send_text("x:0:")
        for c in cs:
            self.assertEqual(c.recv_data().text, "x:0:")

    def test_metrics_carry_the_worker_label(self):
        r = self.redis()
        d = self.start_workers(r)
        seen = set()
        for _ in range(40):
            text = d.get("/metrics").body.decode()
            m = re.search(r'^wsrelay_connections\{worker="(\d)"\} \d+$', text, re.M)
            self.assertIsNotNone(m, text[:500])
            self.assertRegex(text, r'(?m)^wsrelay_closes_total\{worker="%s",code="1000"\} \d+$' % m.group(1))
            seen.add(m.group(1))
            if seen == {"1", "2"}:
                break
        self.assertEqual(seen, {"1", "2"})


class FailureTest(WorkersTestCase):

    def test_kill_9_one_worker_mid_traffic(self):
        r = self.redis()
        d = self.start_workers(r)
        cs, own, per = self.clients_on_both(d, "/k", 40)
        self.assertTrue(all(v > 0 for v in per.values()), per)
        self.wait_channel_subscribers(r, "/k", 2)
        victim, survivor = sorted(per)
        s_v = own.index(victim)        # a sender on each worker
        s_s = own.index(survivor)
        tallies = {i: Tally("c%d" % i, ["S"]) for i in range(len(cs))}
        sent = {"S": 0, "V": 0}
        stop = threading.Event()
        errors = []

        def sender():
            try:
                while not stop.is_set() and sent["S"] < 400:
                    cs[s_s].send_text("S:%d:" % sent["S"])
                    sent["S"] += 1
                    try:
                        cs[s_v].send_text("V:%d:" % sent["V"])
                        sent["V"] += 1
                    except (OSError, wsclient.WSError):
                        pass        # its worker is gone
                    time.sleep(0.005)
            except Exception as e:     # reported by the test thread
                errors.append(e)

        t = threading.Thread(target=sender)
        t.start()
        try:
            harness.wait_for(lambda: sent["S"], 10, "traffic", until=lambda n: n >= 50)
            os.kill(victim, signal.SIGKILL)
        finally:
            t.join(timeout=30)
            stop.set()
        self.assertFalse(errors, errors)
        # The dropped: no close frame, the connection simply ends (their close code is 1006).
        for i, c in enumerate(cs):
            if own[i] != victim:
                continue
            try:
                while True:
                    m = c.recv_message(timeout=10)
                    self.assertFalse(m.is_close, "worker killed with -9, yet a close frame came")
            except wsclient.ConnectionClosed:
                pass
        # The survivor's clients: every message of S, in order; V's at most once, in order (those
        # published before the kill).
        for i, c in enumerate(cs):
            if own[i] == survivor:
                tallies[i].read_until(c, "S", sent["S"] - 1)
        self.assertGreater(max(tallies[i].last("V") for i in tallies if own[i] == survivor), 0,
                           "nothing from the victim's sender arrived before the kill")
        line = self.wait_log(d, "(pid %d) was killed by signal 9" % victim)[0]
        self.assertTrue(line.startswith("<3>"), line)
        self.assertIn("starting a new worker", line)
        pids = self.wait_workers(d)
        self.assertIn(survivor, pids)
        # The dropped clients come back (wherever they land) and hear the survivor's sender again.
        again = [self.connect(d, "/k") for i in range(len(cs)) if own[i] == victim]
        self.wait_channel_subscribers(r, "/k", 2) if len(set(owners(d, again + [cs[s_s]]))) == 2 \
            else None
        cs[s_s].send_text("S:after")
        for c in again:
            self.assertEqual(c.recv_data(timeout=10).text, "S:after")
        d.poll_notify(0)
        self.assertFalse([n for n in d.notifications if "STOPPING=1" in n])

    def test_workers_end_with_a_main_process_killed_by_sigkill(self):
        r = self.redis()
        d = self.start_workers(r, config={"timeouts": {"shutdown_timeout": "2s"}})
        cs, own, per = self.clients_on_both(d, "/orphans", 10)
        pids = self.wait_workers(d)
        os.kill(d.pid, signal.SIGKILL)
        d.returncode = d.wait(10)
        self.assertEqual(d.returncode, -signal.SIGKILL)
        # Each worker hears of it (SIGTERM) and closes its peers with 1001, as on a stop.
        for c in cs:
            self.assertEqual(c.expect_close(timeout=15)[0], 1001)
            c.answer_close(1001)
        harness.wait_for(lambda: [p for p in pids if alive(p)], 15, "the orphaned workers to exit",
                         until=lambda left: not left)

    def test_wedged_worker_is_killed_by_the_watchdog_and_replaced(self):
        r = self.redis()
        # systemd's watchdog for the main process: 2 s, so a worker must ping within 4 s.
        d = self.start_workers(r, env={"WATCHDOG_USEC": "2000000"})
        first = self.wait_workers(d)
        os.kill(first[0], signal.SIGSTOP)
        line = self.wait_log(d, "(pid %d) sent no WATCHDOG=1 for " % first[0], timeout=20)[0]
        self.assertTrue(line.startswith("<3>"), line)
        self.wait_log(d, "(pid %d) was killed by signal 9 (Killed) (killed: it stopped answering "
                         "the watchdog)" % first[0])
        pids = self.wait_workers(d)
        self.assertNotIn(first[0], pids)
        # The main process keeps pinging systemd all along.
        d.poll_notify(0)
        self.assertTrue(any("WATCHDOG=1" in n.split("\n") for n in d.notifications))
        c1, c2 = self.connect(d, "/w"), self.connect(d, "/w")
        c1.send_text("after")
        self.assertEqual(c1.recv_data().text, "after")
        self.assertEqual(c2.recv_data().text, "after")


class SignalTest(WorkersTestCase):

    def test_reload_reaches_every_worker_and_a_broken_file_none(self):
        r = self.redis()
        d = self.start_workers(r)
        pids = self.wait_workers(d)
        d.update_config({"rooms": {"echo": False}})
        d.send_signal(signal.SIGHUP)
        d.wait_notify("READY=1", timeout=30)
        self.wait_log(d, "every worker reloaded its configuration")
        self.assertEqual(len(harness.wait_for(lambda: [ln for ln in d.stderr().splitlines()
                                                       if "configuration reloaded from" in ln],
                                              20, "both workers to reload",
                                              until=lambda v: len(v) == 2)), 2)
        self.assertEqual(self.wait_workers(d), pids, "a reload must not restart workers")
        # echo = false now, on whichever worker a client lands.
        cs, own, per = self.clients_on_both(d, "/e", 20)
        self.wait_channel_subscribers(r, "/e", len(per))
        cs[0].send_text("no echo")
        for c in cs[1:]:
            self.assertEqual(c.recv_data().text, "no echo")
        cs[0].expect_silence(0.5)
        # A broken file: the main process refuses it; the workers never see it.
        d.update_config({"limits": {"max_message_bytes": "lots"}})
        d.send_signal(signal.SIGHUP)
        d.wait_notify("READY=1", timeout=30)
        line = self.wait_log(d, "reload failed, the workers keep the running configuration")[0]
        self.assertIn("limits.max_message_bytes", line)
        self.assertEqual(len([ln for ln in d.stderr().splitlines() if "configuration reloaded from" in ln]), 2)
        # workers changes on restart only.
        d.update_config({"server": {"workers": 3}, "limits": {"max_message_bytes": 1 << 20}})
        d.send_signal(signal.SIGHUP)
        d.wait_notify("READY=1", timeout=30)
        self.wait_log(d, "reload: [server] workers changes only on restart; keeping 2 workers")
        self.assertEqual(len(self.wait_workers(d)), 2)

    def test_sigterm_closes_every_client_with_1001_and_exits_0(self):
        r = self.redis()
        d = self.start_workers(r)
        cs, own, per = self.clients_on_both(d, "/t", 30)
        self.assertTrue(all(v > 0 for v in per.values()), per)
        pids = self.wait_workers(d)
        d.send_signal(signal.SIGTERM)
        for c in cs:
            code, _reason, _ = c.expect_close(timeout=15)
            self.assertEqual(code, 1001)
            c.answer_close(1001)
        rc = d.wait(timeout=30)
        self.assertEqual(rc, 0, d.stderr()[-3000:])
        d.returncode = rc
        self.assertTrue(any("STOPPING=1" in n for n in d.notifications + d.poll_notify(0)))
        for pid in pids:
            self.assertFalse(os.path.exists("/proc/%d" % pid), "worker %d outlived the service" % pid)
        self.assertIn("all workers are gone; exiting", d.stderr())


class SystemdTest(WorkersTestCase):
    """Under the real systemd-socket-activate, as wsrelay.socket starts it: one passed socket,
    shared by the workers; the main process alone talks to the service manager."""

    def test_socket_activation_ready_status_and_watchdog(self):
        r = self.redis()
        cfg = harness.merge(harness.BASE_CONFIG, {
            "server": {"workers": 2}, "cluster": {"redis": r.url},
            "listen": [{"address": "127.0.0.1:{port:plain}", "metrics": True}],
            "timeouts": {"handshake_timeout": "120s"}})
        d = test_systemd.Activated(cfg, env={"WATCHDOG_USEC": "1000000"})
        self._daemons.append(d)
        d.label = "activated"
        ready = d.activate(timeout=30).notifications[-1]
        # READY=1 comes once both workers are ready, from the main process, with their sums.
        self.assertIn("all 2 workers are ready", d.stderr())
        self.assertRegex(ready, r"(?m)^STATUS=2 of 2 workers: \d+ WebSocket connections \(\d+ in all\), "
                                r"\d+ rooms, 0 messages/s in, cluster link (up|DOWN) \([012] of 2 workers\)$")
        pids = self.wait_workers(d)
        clients = [self.connect(d, "/a"), self.connect(d, "/a"), self.connect(d, "/b")]
        for c in clients:
            c.send_ping(b"?")
            self.assertEqual(c.recv_message(return_control=True).data, b"?")
        # The periodic STATUS= (every 5 s) sums the workers' own figures.
        got = harness.wait_for(lambda: [m for m in d.poll_notify(0.2) for m in [m] if "STATUS=" in m], 15,
                               "a periodic STATUS= with the 3 connections",
                               until=lambda ms: any("workers: 3 WebSocket connections (3 in all)" in m and
                                                    "cluster link up (2 of 2 workers)" in m for m in ms))
        self.assertTrue(got)
        # WATCHDOG=1 from the main process, every half WATCHDOG_USEC; nothing else reaches
        # systemd from the workers (each STATUS= is the main process's sum).
        d.poll_notify(1.5)
        self.assertGreaterEqual(sum("WATCHDOG=1" in n.split("\n") for n in d.notifications), 2)
        for n in d.notifications:
            for line in n.split("\n"):
                if line.startswith("STATUS=") and line != "STATUS=shutting down":
                    self.assertRegex(line, r"^STATUS=\d of 2 workers: ")
                self.assertFalse(line.startswith(daemon_stats_field()), n)
        self.assertEqual(self.wait_workers(d), pids)
        d.send_signal(signal.SIGTERM)
        for c in clients:
            self.assertEqual(c.expect_close(timeout=15)[0], 1001)
            c.answer_close(1001)
        self.assertEqual(d.wait(30), 0)
        d.returncode = 0


def daemon_stats_field():
    return "X_WSRELAY_STATS="


class ConfigTest(unittest.TestCase):

    def check(self, text):
        with tempfile.TemporaryDirectory(prefix="wsrelay-workers-cfg-") as tmp:
            path = os.path.join(tmp, "w.toml")
            with open(path, "w") as f:
                f.write(text)
            return subprocess.run([harness.binary(), "--check-config", "--config", path],
                                  capture_output=True, text=True, timeout=30), path

    def test_workers_without_cluster_is_an_error(self):
        p, path = self.check("[server]\nworkers = 2\n")
        self.assertEqual(p.returncode, 2, p)
        self.assertIn("%s:2:11: server.workers: more than one worker needs [cluster] redis" % path, p.stderr)

    def test_workers_with_cluster_is_valid(self):
        p, _path = self.check('[server]\nworkers = "auto"\n[cluster]\nredis = "redis://127.0.0.1:6379"\n')
        self.assertEqual(p.returncode, 0, p)
        self.assertIn("workers %d (auto)\n" % len(os.sched_getaffinity(0)), p.stdout)
        p, _path = self.check('[server]\nworkers = 3\n[cluster]\nredis = "redis://127.0.0.1:6379"\n')
        self.assertIn("workers 3\n", p.stdout)


if __name__ == "__main__":
    unittest.main()
