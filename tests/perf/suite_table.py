#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Turns run_suite.sh's JSON lines (RESULTS_DIR/<scenario>.<server>.<run>.json) into its tables:
the detailed figures (medians over the runs) and the README table with ratios. Standard library.

Usage: suite_table.py RESULTS_DIR [--machine TEXT] [--params TEXT] [--peer-name NAME]
Results of a peer server (run_suite.sh's PEER_WS/PEER_WSS) get columns of their own.
"""

import argparse
import glob
import json
import os
import statistics
import sys

SCENARIOS = [
    ("echo32", "echo, 32 B, 100 connections × 8 in flight"),
    ("echo1k", "echo, 1 KiB, 100 connections × 8 in flight"),
    ("broadcast", "broadcast, 32 B, 1 publisher → {subs} subscribers"),
    ("broadcast_rate", "broadcast at {rate} msg/s, 32 B, 1 → {subs}"),
    ("idle", "idle connections, {idle} upgraded"),
    # Many small rooms (run_suite.sh's second part).
    ("idle_rooms", "idle connections, {idle_rooms} upgraded, a room each"),
    ("chatter", "chatter: {chatter_conns} members in {chatter_rooms} rooms, {chatter_rate} msg/s in all, 32 B"),
    ("broadcast_big", "one big room: {big_rate} msg/s, 32 B, 1 → {big_subs}"),
    ("connect", "connect + close, all in one room"),
    ("churn", "churn: connect + close, each in a new room"),
]
# What a scenario's "per message" is.
UNITS = {"broadcast": "delivery", "broadcast_rate": "delivery", "broadcast_big": "delivery", "chatter": "delivery",
         "connect": "handshake", "churn": "join + leave"}
MEMORY = ("idle", "idle_rooms")
SERVERS = [("raw", "raw TCP ceiling"), ("ws", "wsrelay ws"), ("wss", "wsrelay wss"), ("peer", "{peer} ws"),
           ("peerwss", "{peer} wss")]
FIGURES = ["server_cpu_us_per_msg", "msgs_per_s", "latency_p50_us", "latency_p99_us", "server_cpu_util",
           "bench_cpu_util", "rss_per_conn_bytes", "rss_drained_growth", "connections", "rooms", "rate",
           "publish_skipped"]


def load(directory):
    """{(scenario, server): {"runs": n, "failed": [why], figure: median}}"""
    runs = {}
    for path in sorted(glob.glob(os.path.join(directory, "*.*.*.json"))):
        scenario, server, _run, _ = os.path.basename(path).split(".")
        entry = runs.setdefault((scenario, server), {"lines": [], "failed": []})
        try:
            with open(path) as f:
                line = json.loads(f.read().strip().splitlines()[-1])
        except (OSError, ValueError, IndexError):
            entry["failed"].append("no JSON line")
            continue
        if not line.get("completed") or line.get("errors"):
            entry["failed"].append(line.get("error") or "not completed")
            continue
        entry["lines"].append(line)
    out = {}
    for key, entry in runs.items():
        med = {"runs": len(entry["lines"]), "failed": entry["failed"]}
        for fig in FIGURES:
            values = [l[fig] for l in entry["lines"] if l.get(fig) is not None]
            med[fig] = statistics.median(values) if values else None
        out[key] = med
    return out


def fmt(v, spec, suffix=""):
    return "—" if v is None else format(v, spec) + suffix


def rate(v):
    if v is None:
        return "—"
    return "%.2f M/s" % (v / 1e6) if v >= 1e6 else "%.0f k/s" % (v / 1e3)


def ratio(a, b):
    return None if a is None or b is None or b == 0 else a / b


def small_rooms(r, titles, peer_name):
    """The many-small-rooms figures against their targets (ws only)."""
    ws = {k: r.get((k, "ws")) for k, _ in SCENARIOS}
    peer = {k: r.get((k, "peer")) for k, _ in SCENARIOS}
    if not any(ws.get(k) for k in ("idle_rooms", "chatter", "churn")):
        return

    def get(m, fig):
        return m[fig] if m else None

    print()
    print("| many small rooms (ws) | wsrelay | %s | target |" % peer_name)
    print("|---|---|---|---|")
    print("| %s: RSS per connection | %s | %s | ≤ 560 B |" % (
        titles["idle_rooms"], fmt(get(ws["idle_rooms"], "rss_per_conn_bytes"), ".0f", " B"),
        fmt(get(peer["idle_rooms"], "rss_per_conn_bytes"), ".0f", " B")))
    print("| %s: RSS per connection | %s | %s | (for comparison) |" % (
        titles["idle"], fmt(get(ws["idle"], "rss_per_conn_bytes"), ".0f", " B"),
        fmt(get(peer["idle"], "rss_per_conn_bytes"), ".0f", " B")))
    for key, baseline in (("chatter", "broadcast_big"), ("chatter", "broadcast_rate")):
        print("| %s: CPU per delivery, × %s | %s | %s | %s |" % (
            titles[key], titles[baseline],
            fmt(ratio(get(ws[key], "server_cpu_us_per_msg"), get(ws[baseline], "server_cpu_us_per_msg")), ".2f", "×"),
            fmt(ratio(get(peer[key], "server_cpu_us_per_msg"), get(peer[baseline], "server_cpu_us_per_msg")), ".2f", "×"),
            "≤ 1.2×"))
    print("| %s: CPU per join + leave, × one room | %s | %s | (for comparison) |" % (
        titles["churn"], fmt(ratio(get(ws["churn"], "server_cpu_us_per_msg"), get(ws["connect"], "server_cpu_us_per_msg")), ".2f", "×"),
        fmt(ratio(get(peer["churn"], "server_cpu_us_per_msg"), get(peer["connect"], "server_cpu_us_per_msg")), ".2f", "×")))
    for key, what in (("idle_rooms", "after all left, × with the first connection"),
                      ("churn", "after all left, × at the start of the measurement")):
        print("| %s: RSS %s | %s | %s | ≤ +5 %% |" % (
            titles[key], what, fmt(get(ws[key], "rss_drained_growth") and ws[key]["rss_drained_growth"] * 100, "+.1f", " %"),
            fmt(get(peer[key], "rss_drained_growth") and peer[key]["rss_drained_growth"] * 100, "+.1f", " %")))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("results")
    ap.add_argument("--machine", default="")
    ap.add_argument("--params", default="")
    ap.add_argument("--peer-name", default="peer")
    a = ap.parse_args()
    servers = [(k, label.format(peer=a.peer_name)) for k, label in SERVERS]
    r = load(a.results)
    if not r:
        print("no results in", a.results)
        return 1
    def param(scenario, figure, default):
        return int(next((v[figure] for (s, _), v in r.items() if s == scenario and v[figure]), default))

    def grouped(n):
        return "{:,}".format(n)

    titles = {k: t.format(subs=param("broadcast", "connections", 1000), idle=grouped(param("idle", "connections", 10000)),
                          rate=param("broadcast_rate", "rate", 0),
                          idle_rooms=grouped(param("idle_rooms", "connections", 10000)),
                          chatter_conns=grouped(param("chatter", "connections", 10000)),
                          chatter_rooms=grouped(param("chatter", "rooms", 1000)),
                          chatter_rate=grouped(param("chatter", "rate", 0)),
                          big_rate=param("broadcast_big", "rate", 0),
                          big_subs=grouped(param("broadcast_big", "connections", 10000)))
              for k, t in SCENARIOS}

    if a.machine:
        print("Machine:", a.machine)
    if a.params:
        print("Method: ", a.params)
    print()
    head = "%-60s %-22s %10s %10s %10s %10s %8s %8s %9s %9s" % (
        "scenario", "server", "CPU µs/msg", "msg/s", "p50 µs", "p99 µs", "srv CPU", "gen CPU", "RSS/conn",
        "RSS left")
    print(head)
    print("-" * len(head))
    for key, _ in SCENARIOS:
        for server, label in servers:
            m = r.get((key, server))
            if not m:
                continue
            line = "%-60s %-22s %10s %10s %10s %10s %8s %8s %9s %9s" % (
                titles[key], label, fmt(m["server_cpu_us_per_msg"], ".3f"), rate(m["msgs_per_s"]),
                fmt(m["latency_p50_us"], ".0f"), fmt(m["latency_p99_us"], ".0f"),
                fmt(m["server_cpu_util"] and m["server_cpu_util"] * 100, ".0f", "%"),
                fmt(m["bench_cpu_util"] and m["bench_cpu_util"] * 100, ".0f", "%"),
                fmt(m["rss_per_conn_bytes"], ".0f", " B") if key in MEMORY else "",
                fmt(m["rss_drained_growth"] and m["rss_drained_growth"] * 100, "+.1f", "%"))
            if m["publish_skipped"]:
                line += "  (%d sends skipped: window full)" % m["publish_skipped"]
            if m["failed"]:
                line += "  (%d of %d runs failed: %s)" % (len(m["failed"]), len(m["failed"]) + m["runs"],
                                                          m["failed"][0])
            print(line)
    print()

    # The README table: the columns, with wsrelay's figures and the ratios the targets use.
    has_peer = any(s.startswith("peer") for _, s in r)
    peer_head = " %s (ws) | %s (wss) |" % (a.peer_name, a.peer_name) if has_peer else ""
    print("| scenario | raw TCP epoll echo/fan-out (the ceiling) | wsrelay (ws) | wsrelay (wss) |" + peer_head)
    print("|---|---|---|---|" + ("---|---|" if has_peer else ""))
    for key, _ in SCENARIOS:
        raw, ws, wss, peer, peerwss = (r.get((key, s)) for s, _ in SERVERS)
        if not any((raw, ws, wss, peer, peerwss)):
            continue
        if key in MEMORY:
            cells = [fmt(m and m["rss_per_conn_bytes"], ".0f", " B RSS per connection") if m else "—"
                     for m in (raw, ws, peer)]
            print("| %s | %s | %s | — |" % (titles[key], cells[0], cells[1]) + (" %s | — |" % cells[2] if has_peer else ""))
            continue
        unit = "µs per " + UNITS.get(key, "msg")

        def cell(m):
            if not m:
                return "—"
            return "%s %s, %s" % (fmt(m["server_cpu_us_per_msg"], ".2f"), unit, rate(m["msgs_per_s"]))

        ws_cell = cell(ws)
        if ws and raw:
            ws_cell += " (%s× raw CPU/msg, %s× raw throughput)" % (
                fmt(ratio(ws["server_cpu_us_per_msg"], raw["server_cpu_us_per_msg"]), ".2f"),
                fmt(ratio(ws["msgs_per_s"], raw["msgs_per_s"]), ".2f"))
        wss_cell = cell(wss)
        if wss and ws:
            wss_cell += " (%s× ws throughput, %s× ws CPU/msg)" % (
                fmt(ratio(wss["msgs_per_s"], ws["msgs_per_s"]), ".2f"),
                fmt(ratio(wss["server_cpu_us_per_msg"], ws["server_cpu_us_per_msg"]), ".2f"))
        peer_cells = ""
        if has_peer:
            peer_cell, peerwss_cell = cell(peer), cell(peerwss)
            if peer and ws:
                peer_cell += " (wsrelay uses %s× its CPU/msg)" % fmt(
                    ratio(ws["server_cpu_us_per_msg"], peer["server_cpu_us_per_msg"]), ".2f")
            if peerwss and wss:
                peerwss_cell += " (wsrelay uses %s× its CPU/msg)" % fmt(
                    ratio(wss["server_cpu_us_per_msg"], peerwss["server_cpu_us_per_msg"]), ".2f")
            peer_cells = " %s | %s |" % (peer_cell, peerwss_cell)
        print("| %s | %s | %s | %s |" % (titles[key], cell(raw), ws_cell, wss_cell) + peer_cells)
    print()
    shown = [(s, label) for s, label in servers if not s.startswith("peer") or has_peer]
    print("| latency p50 / p99 (µs) | " + " | ".join(label for _, label in shown) + " |")
    print("|---|" + "---|" * len(shown))
    for key, _ in SCENARIOS:
        if key in MEMORY or key in ("connect", "churn") or not any(r.get((key, s)) for s, _ in shown):
            continue
        cells = []
        for server, _ in shown:
            m = r.get((key, server))
            cells.append("%s / %s" % (fmt(m["latency_p50_us"], ".0f"), fmt(m["latency_p99_us"], ".0f")) if m else "—")
        print("| %s | %s |" % (titles[key], " | ".join(cells)))
    small_rooms(r, titles, a.peer_name)
    failed = sum(len(m["failed"]) for m in r.values())
    if failed:
        print("\n%d run(s) failed; their figures are left out of the medians." % failed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
