#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Turns cluster_bench.sh's results into its tables: the broadcast rows (RESULTS_DIR/<row>.<run>.json,
wsrelay-bench's JSON line, with <row>.<run>.{before,after}.{A,B}.prom, the instances' /metrics, and
.redis.txt, Redis's INFO commandstats, around it), medians over the runs; the figures against the
targets; and Redis's capacity (capacity.<fanout>.json). Standard library only.

Usage: cluster_table.py RESULTS_DIR [--machine TEXT] [--params TEXT]
"""

import argparse
import glob
import json
import os
import re
import statistics

ROWS = [
    ("off", "local broadcast, one instance, no [cluster]"),
    ("on", "local broadcast on B, [cluster] on"),
    ("cross", "publisher on A → Redis → subscribers on B"),
    ("off_rate", "at {rate} msg/s: local, no [cluster]"),
    ("on_rate", "at {rate} msg/s: local on B, [cluster] on"),
    ("cross_rate", "at {rate} msg/s: A → Redis → B"),
]
TARGET_B_RATIO = 1.10
TARGET_A_US = 2.0


def prom(path):
    """{metric line name (with labels): value} of a Prometheus text file; {} if absent."""
    out = {}
    try:
        with open(path) as f:
            for line in f:
                if line.startswith("#") or not line.strip():
                    continue
                name, _, value = line.rpartition(" ")
                try:
                    out[name] = float(value)
                except ValueError:
                    pass
    except OSError:
        pass
    return out


def publish_calls(path):
    """PUBLISH commands Redis executed (INFO commandstats), or None if the file is absent."""
    try:
        with open(path) as f:
            m = re.search(r"^cmdstat_publish:calls=(\d+)", f.read(), re.M)
    except OSError:
        return None
    return int(m.group(1)) if m else 0


def delta(before, after, name):
    return sum(after[k].get(name, 0) - before[k].get(name, 0) for k in ("A", "B"))


def one_run(base):
    """The figures of one run, or (None, why)."""
    try:
        with open(base + ".json") as f:
            line = json.loads(f.read().strip().splitlines()[-1])
    except (OSError, ValueError, IndexError):
        return None, "no JSON line"
    if not line.get("completed") or line.get("errors"):
        return None, line.get("error") or "not completed"
    before = {k: prom("%s.before.%s.prom" % (base, k)) for k in ("A", "B")}
    after = {k: prom("%s.after.%s.prom" % (base, k)) for k in ("A", "B")}
    cpu = line.get("cpu_pids") or {}
    r = {
        "deliveries_per_s": line["msgs_per_s"],
        "published_per_s": line["published"] / line["duration_s"] if line["duration_s"] else None,
        "p50_us": line["latency_p50_us"],
        "p99_us": line["latency_p99_us"],
        "bench_util": line["bench_cpu_util"],
        "skipped": line["publish_skipped"],
    }
    for name in ("A", "B", "redis"):
        c = cpu.get(name) or {}
        r[name + "_util"] = c.get("cpu_util")
        r[name + "_us_delivery"] = c.get("us_per_msg")
        r[name + "_us_message"] = c.get("us_per_published")
    # Whole-run counts (warm-up and drain included): ratios only.
    published = delta(before, after, "wsrelay_cluster_messages_published_total")
    publishes = delta(before, after, "wsrelay_cluster_publishes_total")
    calls_before = publish_calls(base + ".before.redis.txt")
    calls_after = publish_calls(base + ".after.redis.txt")
    calls = calls_after - calls_before if calls_before is not None and calls_after is not None else None
    r["cluster_published"] = published if after["B"].get("wsrelay_cluster_link_up") is not None else None
    r["publish_per_message"] = calls / published if calls is not None and published else None
    r["messages_per_publish"] = published / publishes if publishes else None
    r["received_at_B"] = delta(before, after, "wsrelay_cluster_messages_received_total")
    r["dropped"] = delta(before, after, "wsrelay_cluster_messages_dropped_total")
    # CPU used meanwhile by processes other than ours (other users of the machine, kernel threads),
    # as a share of one CPU: a busy neighbour shows here rather than as a mystery in the figures.
    try:
        with open(base + ".load") as f:
            load = json.loads(f.read())
        r["other_load"] = max(0.0, load["busy_s"] - load["ours_s"]) / load["wall_s"]
    except (OSError, ValueError, KeyError, ZeroDivisionError):
        r["other_load"] = None
    return r, None


def load(directory):
    rows = {}
    for name, _ in ROWS:
        runs, failed = [], []
        for path in sorted(glob.glob(os.path.join(directory, name + ".*.json"))):
            r, why = one_run(path[: -len(".json")])
            if r:
                runs.append(r)
            else:
                failed.append(why)
        if not runs and not failed:
            continue
        med = {"runs": len(runs), "failed": failed}
        for key in (runs[0] if runs else {}):
            values = [r[key] for r in runs if r[key] is not None]
            med[key] = statistics.median(values) if values else None
        rows[name] = med
    return rows


def load_capacity(directory):
    out = []
    for path in sorted(glob.glob(os.path.join(directory, "capacity.*.json"))):
        with open(path) as f:
            c = json.loads(f.read())
        calls = publish_calls(path[: -len(".json")] + ".redis.txt") or 0
        ch = c["channel"].encode()
        # What Redis writes to each subscriber: the SUBSCRIBE confirmation, then per PUBLISH a
        # "message" push of the channel and the payload (RESP).
        confirm = len(b"*3\r\n$9\r\nsubscribe\r\n$%d\r\n%s\r\n:1\r\n" % (len(ch), ch))
        push = len(b"*3\r\n$7\r\nmessage\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % (len(ch), ch, c["payload_bytes"],
                                                                         b"x" * c["payload_bytes"]))
        complete = all(b == confirm + calls * push for b in c["sink_bytes"])
        rate = calls / c["seconds"] if c["seconds"] else 0
        us = c["redis_cpu_s"] * 1e6 / calls if calls else None
        out.append({"fanout": c["fanout"], "options": c.get("options", ""), "payload": c["payload_bytes"],
                    "messages": c.get("messages", 1), "calls": calls, "rate": rate,
                    "util": c["redis_cpu_s"] / c["seconds"] if c["seconds"] else None, "us": us,
                    "ceiling": 1e6 / us if us else None, "complete": complete})
    return out


def fmt(v, spec, suffix=""):
    return "—" if v is None else format(v, spec) + suffix


def rate(v):
    if v is None:
        return "—"
    return "%.2f M/s" % (v / 1e6) if v >= 1e6 else "%.1f k/s" % (v / 1e3) if v >= 1e3 else "%.0f/s" % v


def lat(us):
    if us is None:
        return "—"
    return "%.0f µs" % us if us < 1000 else "%.2f ms" % (us / 1e3)


def ratio(a, b):
    return None if a is None or b is None or b == 0 else a / b


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("results")
    ap.add_argument("--machine", default="")
    ap.add_argument("--params", default="")
    ap.add_argument("--rate", default="100")
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--subscribers", type=int, default=1000)
    a = ap.parse_args()
    rows = load(a.results)
    cap = load_capacity(a.results)
    rate_label = a.rate

    print("## Cluster benchmark: details (medians)\n")
    for name, label in ROWS:
        r = rows.get(name)
        if not r:
            continue
        print("%-11s %s (%d runs%s)" % (name, label.format(rate=rate_label), r["runs"],
                                        ", failed: " + "; ".join(r["failed"]) if r["failed"] else ""))
        if not r["runs"]:
            continue
        print("  deliveries %s, published %s, skipped %s, latency p50 %s p99 %s, generator CPU %s, "
              "other processes %s of a CPU" % (
                  rate(r["deliveries_per_s"]), rate(r["published_per_s"]), fmt(r["skipped"], ".0f"),
                  lat(r["p50_us"]), lat(r["p99_us"]), fmt(r["bench_util"] and 100 * r["bench_util"], ".0f", "%"),
                  fmt(r["other_load"] and 100 * r["other_load"], ".0f", "%")))
        for n in ("B", "A", "redis"):
            if r.get(n + "_util") is not None:
                print("  %-5s CPU %s of a core, %s µs per delivery, %s µs per published message" % (
                    n, fmt(100 * r[n + "_util"], ".0f", "%"), fmt(r[n + "_us_delivery"], ".4f"),
                    fmt(r[n + "_us_message"], ".2f")))
        if r.get("cluster_published"):
            print("  whole run: %.0f messages published to Redis, %s per PUBLISH, %s PUBLISH per message "
                  "(Redis's count), %.0f received at B, %.0f dropped" % (
                      r["cluster_published"], fmt(r["messages_per_publish"], ".2f"),
                      fmt(r["publish_per_message"], ".3f"), r["received_at_B"], r["dropped"]))
    print()

    busy = [name for name, r in rows.items() if r.get("other_load") and r["other_load"] > 0.1]
    if busy:
        print("WARNING: other processes used more than 10%% of a CPU during %s: the machine was not quiet, "
              "measure again\n" % ", ".join(busy))

    print("## README table\n")
    if a.machine:
        print("Machine: %s. %s.\n" % (a.machine, a.params))
    print("| %d B, 1 publisher → %d subscribers | deliveries/s | p50 | p99 | B CPU per delivery | "
          "A CPU per delivery (per message) | Redis CPU per delivery (per message) | PUBLISH per message |" % (
              a.size, a.subscribers))
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, label in ROWS:
        r = rows.get(name)
        if not r or not r["runs"]:
            continue

        def per(n):
            if r.get(n + "_us_delivery") is None:
                return "—"
            if n == "A" and name.startswith("on"):
                return "idle"  # A runs but has no member in the room
            return "%.4f µs (%.2f µs)" % (r[n + "_us_delivery"], r[n + "_us_message"])

        ppm = r.get("publish_per_message")
        print("| %s | %s | %s | %s | %s µs | %s | %s | %s |" % (
            label.format(rate=rate_label), rate(r["deliveries_per_s"]), lat(r["p50_us"]), lat(r["p99_us"]),
            fmt(r["B_us_delivery"], ".4f"), per("A"), per("redis"),
            "—" if ppm is None else "%.2f (%.1f msg/PUBLISH)" % (ppm, r["messages_per_publish"] or 0)))
    print()

    print("## Against the targets\n")
    off, on, cross = rows.get("off"), rows.get("on"), rows.get("cross")
    off_r, cross_r = rows.get("off_rate"), rows.get("cross_rate")
    if cross and off and cross["runs"] and off["runs"]:
        rb = ratio(cross["B_us_delivery"], off["B_us_delivery"])
        rb_on = ratio(cross["B_us_delivery"], on["B_us_delivery"]) if on and on["runs"] else None
        print("- B's CPU per delivery, cross-instance / local broadcast: %s / %s µs = %s× (target ≤ %.2f×: %s); "
              "against the local broadcast with [cluster] on: %s×" % (
                  fmt(cross["B_us_delivery"], ".4f"), fmt(off["B_us_delivery"], ".4f"), fmt(rb, ".3f"), TARGET_B_RATIO,
                  "met" if rb is not None and rb <= TARGET_B_RATIO else "MISSED", fmt(rb_on, ".3f")))
    if cross_r and off_r and cross_r["runs"] and off_r["runs"]:
        print("- at %s msg/s: B %s vs %s µs per delivery (%s×)" % (
            rate_label, fmt(cross_r["B_us_delivery"], ".4f"), fmt(off_r["B_us_delivery"], ".4f"),
            fmt(ratio(cross_r["B_us_delivery"], off_r["B_us_delivery"]), ".3f")))
    for r, what in ((cross, "as fast as the window allows"), (cross_r, "at %s msg/s" % rate_label)):
        if r and r["runs"]:
            print("- Redis PUBLISH per message, %s: %s (%s messages per PUBLISH; per member would be %d)" % (
                what, fmt(r["publish_per_message"], ".3f"), fmt(r["messages_per_publish"], ".2f"),
                a.subscribers))
    for r, what in ((cross, "as fast as the window allows"), (cross_r, "at %s msg/s" % rate_label)):
        if r and r["runs"]:
            v = r["A_us_message"]
            print("- A's CPU per published message, %s: %s µs (target ≤ %.0f µs: %s)" % (
                what, fmt(v, ".2f"), TARGET_A_US, "met" if v is not None and v <= TARGET_A_US else "MISSED"))
    print()

    if cap:
        print("## One Redis: PUBLISH/s on one core\n")
        print("| PUBLISH of one envelope to N subscribed instances | PUBLISH/s | Redis CPU | "
              "Redis CPU per PUBLISH | one core's ceiling, PUBLISH/s (messages/s) | every subscriber got every one |")
        print("|---|---:|---:|---:|---:|---|")
        for c in cap:
            print("| %d message%s (%d B), N = %d, redis-benchmark %s | %s | %s | %s µs | %s (%s) | %s |" % (
                c["messages"], "" if c["messages"] == 1 else "s", c["payload"], c["fanout"], c["options"],
                rate(c["rate"]), fmt(c["util"] and 100 * c["util"], ".0f", "%"), fmt(c["us"], ".2f"),
                rate(c["ceiling"]), rate(c["ceiling"] and c["ceiling"] * c["messages"]),
                "yes" if c["complete"] else "NO"))
        print()
        if cross and cross["runs"] and cross.get("messages_per_publish"):
            print("Messages per PUBLISH in the cross-instance window run: %.1f; with many quiet rooms, 1." %
                  cross["messages_per_publish"])


if __name__ == "__main__":
    main()
