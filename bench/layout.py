#!/usr/bin/env python3
"""Where a log is weakest: data layout and map memory (issue 15), same run.

Sections (fio's nbd ioengine over loopback, like bench.py; systems alternate
within a round, rounds repeat, medians):

  scattered   BENCH_LAYOUT_SPAN (default 1G) written by 4K random writes at
              QD16, every block once in random order (fio's random map), on
              hlfs and on qemu-nbd raw (writeback). Then a 1M sequential read
              QD4 of the whole span on both ("before"); then `hlfs gc`
              through the server's admin socket (cleaning and
              defragmentation), and the same read again on both ("after").
              Also hlfs's live map: `hlfs info --json` map_bytes per 4 KiB of
              mapped data (`hlfs du --json`), before and after the gc.
              Targets: read after gc / qemu-nbd raw >= 0.9x; map bytes per
              4 KiB after gc <= 8. The read before gc is reported only.
  sequential  BENCH_LAYOUT_SEQ (default 256M) written by 4K sequential writes
              at QD1 on hlfs; map bytes per 4 KiB of mapped data. Target <= 1.

Environment: BENCH_LAYOUT_SECTIONS (scattered,sequential), BENCH_LAYOUT_SPAN,
BENCH_LAYOUT_SEQ, BENCH_ROUNDS (2), BENCH_SIZE (volume size, default the
span rounded up to 2G), BENCH_HLFS_BIN, BENCH_DIR, BENCH_JSON. A report;
performance never fails the exit status (a failed run does).
"""

import json
import os
import shutil
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402  (the same servers, fio runner and helpers)


def hlfs_json(srv, *args):
    out = bench.run([srv.hlfs_bin, "--store", "file://" + srv.store()] + list(args) + ["--json"])
    return json.loads(out[out.index("{"):])


def map_per_4k(srv):
    info = hlfs_json(srv, "info", srv.name)
    du = hlfs_json(srv, "du", srv.name)
    mapped = du["mapped_bytes"]
    return {"extents": info["extents"], "map_bytes": info["map_bytes"], "mapped": mapped,
            "per4k": info["map_bytes"] / (mapped / 4096) if mapped else 0,
            "fragmented": du.get("fragmented_bytes", 0)}


def seqread(srv, span):
    j = bench.fio(srv.uri, "seqread", span, "read", "1M", 4)
    return j["read"]["bw_bytes"] / 1e6


def scattered(kind, cfg, hlfs_bin):
    span = cfg["span"]
    srv = bench.Server(kind, cfg["workdir"], cfg["size"], hlfs_bin)
    try:
        srv.start()
        t = time.time()
        bench.fio(srv.uri, "scatter", span, "randwrite", "4k", 16)
        res = {"server": kind, "section": "scattered", "write_s": time.time() - t}
        res["before_mbps"] = seqread(srv, span)
        if kind == "hlfs":
            res["map_before"] = map_per_4k(srv)
            cpu0 = bench.cpu_seconds(srv.proc.pid)
            t = time.time()
            res["gc"] = hlfs_json(srv, "gc", srv.name)
            res["gc_s"], res["gc_cpu_s"] = time.time() - t, bench.cpu_seconds(srv.proc.pid) - cpu0
            res["map_after"] = map_per_4k(srv)
        res["after_mbps"] = seqread(srv, span)
        srv.stop()
        if srv.exit_code != 0:
            res["note"] = "exit %s after SIGTERM: %s" % (srv.exit_code, srv.log_tail(5).strip())
        return res
    except Exception as e:
        raise RuntimeError("%s\nserver log:\n%s" % (e, srv.log_tail())) from e
    finally:
        srv.cleanup()


def sequential(cfg, hlfs_bin):
    span = cfg["seq"]
    srv = bench.Server("hlfs", cfg["workdir"], cfg["size"], hlfs_bin)
    try:
        srv.start()
        j = bench.fio(srv.uri, "seq4k", span, "write", "4k", 1)
        res = {"server": "hlfs", "section": "sequential", "iops": j["write"]["iops"], "map": map_per_4k(srv)}
        srv.stop()
        return res
    finally:
        srv.cleanup()


def main():
    span = bench.parse_size(os.environ.get("BENCH_LAYOUT_SPAN", "1G"))
    cfg = {
        "span": span,
        "seq": bench.parse_size(os.environ.get("BENCH_LAYOUT_SEQ", "256M")),
        "rounds": int(os.environ.get("BENCH_ROUNDS", "2")),
        "size": bench.parse_size(os.environ.get("BENCH_SIZE", "0")) or max(2 << 30, span),
    }
    sections = bench.env_list("BENCH_LAYOUT_SECTIONS", ["scattered", "sequential"])
    hlfs_bin = os.path.abspath(os.environ.get("BENCH_HLFS_BIN", os.path.join(bench.REPO, "bin", "hlfs")))
    if not os.access(hlfs_bin, os.X_OK):
        sys.exit("bench: build bin/hlfs first (make build)")
    for tool in ("fio", "qemu-nbd"):
        if not shutil.which(tool):
            sys.exit("bench: missing %s: run scripts/install-test-deps.sh" % tool)
    own_dir = "BENCH_DIR" not in os.environ
    cfg["workdir"] = tempfile.mkdtemp(prefix="hlfs-layout-", dir=os.environ.get("BENCH_DIR"))
    results, failures = [], []
    try:
        for rnd in range(cfg["rounds"]):
            order = ["hlfs", "qemu-nbd-raw"] if rnd % 2 == 0 else ["qemu-nbd-raw", "hlfs"]
            if "scattered" in sections:
                for kind in order:
                    bench.log("layout: round %d scattered %s ..." % (rnd + 1, kind))
                    try:
                        r = scattered(kind, cfg, hlfs_bin)
                        bench.log("layout:   before %.0f MB/s after %.0f MB/s %s" % (
                            r["before_mbps"], r["after_mbps"],
                            "map/4K %.2f -> %.2f B" % (r["map_before"]["per4k"], r["map_after"]["per4k"]) if kind == "hlfs" else ""))
                        results.append(r)
                    except Exception as e:
                        bench.log("layout:   FAILED: %s" % e)
                        failures.append({"server": kind, "section": "scattered", "error": str(e)})
            if "sequential" in sections:
                bench.log("layout: round %d sequential hlfs ..." % (rnd + 1))
                try:
                    r = sequential(cfg, hlfs_bin)
                    bench.log("layout:   map/4K %.4f B (%d extents)" % (r["map"]["per4k"], r["map"]["extents"]))
                    results.append(r)
                except Exception as e:
                    bench.log("layout:   FAILED: %s" % e)
                    failures.append({"server": "hlfs", "section": "sequential", "error": str(e)})
    finally:
        if own_dir:
            shutil.rmtree(cfg["workdir"], ignore_errors=True)

    def med(rs, f):
        v = [f(r) for r in rs]
        return statistics.median(v) if v else None

    print("")
    print("data layout and map memory: span %s scattered, %s sequential, %d round(s), medians" % (
        bench.human(cfg["span"]), bench.human(cfg["seq"]), cfg["rounds"]))
    h = [r for r in results if r["section"] == "scattered" and r["server"] == "hlfs"]
    q = [r for r in results if r["section"] == "scattered" and r["server"] == "qemu-nbd-raw"]
    if h and q:
        hb, ha = med(h, lambda r: r["before_mbps"]), med(h, lambda r: r["after_mbps"])
        qb, qa = med(q, lambda r: r["before_mbps"]), med(q, lambda r: r["after_mbps"])
        print("1M seq read QD4 of 4K-randomly-written data (MB/s): hlfs before gc %.0f, after %.0f; qemu-nbd raw %.0f, %.0f"
              % (hb, ha, qb, qa))
        print("  before gc: %.2fx (reported)" % (hb / qb))
        print("  after gc:  %.2fx  %s (>= 0.9x)" % (ha / qa, "PASS" if ha / qa >= 0.9 else "BELOW TARGET"))
        mb, ma = med(h, lambda r: r["map_before"]["per4k"]), med(h, lambda r: r["map_after"]["per4k"])
        print("map bytes per 4 KiB, scattered: %.2f before gc (%d extents), %.3f after (%d extents)  %s (<= 8)" % (
            mb, med(h, lambda r: r["map_before"]["extents"]), ma, med(h, lambda r: r["map_after"]["extents"]),
            "PASS" if ma <= 8 else "BELOW TARGET"))
        print("  gc: %.1f s, %.1f server CPU s, %.0f MiB defragmented, %.0f MiB copied in all" % (
            med(h, lambda r: r["gc_s"]), med(h, lambda r: r["gc_cpu_s"]),
            med(h, lambda r: r["gc"].get("defrag_bytes", 0)) / (1 << 20), med(h, lambda r: r["gc"]["bytes_copied"]) / (1 << 20)))
    s = [r for r in results if r["section"] == "sequential"]
    if s:
        ms = med(s, lambda r: r["map"]["per4k"])
        print("map bytes per 4 KiB, sequential 4K QD1: %.4f (%d extents, %.0f IOPS)  %s (<= 1)" % (
            ms, med(s, lambda r: r["map"]["extents"]), med(s, lambda r: r["iops"]), "PASS" if ms <= 1 else "BELOW TARGET"))
    for f in failures:
        print("FAILED: %s %s: %s" % (f["server"], f["section"], f["error"].strip().splitlines()[0]))
    if os.environ.get("BENCH_JSON"):
        with open(os.environ["BENCH_JSON"], "w") as f:
            json.dump({"config": cfg, "results": results, "failures": failures}, f, indent=1)
    if any(f["server"] == "hlfs" for f in failures):
        sys.exit(1)


if __name__ == "__main__":
    main()
