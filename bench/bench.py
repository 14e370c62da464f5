#!/usr/bin/env python3
"""End-to-end NBD benchmark: hlfs against its peers, same client, same run.

Starts each server in turn on a loopback port -- hlfs (bin/hlfs on a fresh
file:// store), qemu-nbd on a raw file (writeback), qemu-nbd on a qcow2 file
(writeback), nbdkit memory (the transport ceiling) -- and runs fio's nbd
ioengine against it:

  randwrite          4K random write, QD16
  randwrite-fsync32  4K random write, QD16, FLUSH every 32 writes
  randread           4K random read, QD16
  seqwrite           1M sequential write, QD4
  seqread            1M sequential read, QD4

Every (server, job) gets a fresh server and store, a sequential fill of the
span first, and for write jobs one random overwrite pass (steady state for a
log-structured store, PEERS.md rule 3), then the timed run. Servers alternate
within each round (the starting server rotates) and rounds repeat; the report
gives medians of IOPS, MB/s, p99 latency, server CPU seconds during the timed
run (/proc/PID/stat utime+stime), RSS, and write amplification for every
file-backed server (hlfs's is the one that matters):
  wa(store) = bytes the store directory occupies after a clean stop
              / bytes fio wrote (fill + overwrite + timed run)
  wa(dev)   = sectors written to the block device under BENCH_DIR from
              server start to after its stop and a sync(), / bytes fio
              wrote. Device-wide: includes the host file system's journal
              and anything else writing meanwhile ("-" on tmpfs). Per-process
              I/O accounting (/proc/PID/io write_bytes) is not used: on this
              kernel it counted ~50x the real bytes under fdatasync load.
and the hlfs/peer ratio against the targets, marked PASS or BELOW TARGET.
Performance never makes the exit status non-zero. A run that fails (fio
error, server crash) is reported with the server's log and the rest goes
on; the exit status is 1 when an hlfs run failed or the setup is broken.

Configuration (environment):
  BENCH_SERVERS   comma list (default hlfs,qemu-nbd-raw,qemu-nbd-qcow2,nbdkit-memory)
  BENCH_JOBS      comma list (default all five above)
  BENCH_RUNTIME   seconds per timed run (default 5)
  BENCH_ROUNDS    rounds (default 2)
  BENCH_SPAN      bytes fio touches, with K/M/G suffix (default 256M)
  BENCH_SIZE      volume size (default 1G)
  BENCH_OVERWRITE random overwrite passes before write jobs (default 1)
  BENCH_HLFS_BIN  hlfs binary (default <repo>/bin/hlfs; skipped with a note if absent)
  BENCH_HLFS_CREATE_ARGS  extra `hlfs create` arguments, e.g. "--compress"
  BENCH_DIR       where stores and images live (default a new temp dir;
                  use a real disk, not tmpfs, for meaningful wa(dev))
  BENCH_JSON      also write all raw results to this file
"""

import json
import os
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

JOBS = {
    "randwrite": dict(rw="randwrite", bs="4k", iodepth=16),
    "randwrite-fsync32": dict(rw="randwrite", bs="4k", iodepth=16, fsync=32),
    "randread": dict(rw="randread", bs="4k", iodepth=16),
    "seqwrite": dict(rw="write", bs="1M", iodepth=4),
    "seqread": dict(rw="read", bs="1M", iodepth=4),
}
JOB_TITLES = {
    "randwrite": "4K randwrite QD16",
    "randwrite-fsync32": "4K randwrite QD16 fsync=32",
    "randread": "4K randread QD16 (after fill)",
    "seqwrite": "1M seq write QD4",
    "seqread": "1M seq read QD4",
}
# (job, peer, minimum hlfs/peer ratio)
TARGETS = [
    ("randwrite", "qemu-nbd-raw", 1.0),
    ("randwrite-fsync32", "qemu-nbd-qcow2", 1.5),
    ("randread", "qemu-nbd-raw", 0.9),
    ("seqwrite", "qemu-nbd-raw", 0.9),
    ("seqread", "qemu-nbd-raw", 0.9),
]
ALL_SERVERS = ["hlfs", "qemu-nbd-raw", "qemu-nbd-qcow2", "nbdkit-memory"]
# Not run by default: another hlfs binary (BENCH_HLFS_BASE_BIN), to compare
# two versions in the same run (bench/checksums.py).
EXTRA_SERVERS = ["hlfs-base"]
CLK_TCK = os.sysconf("SC_CLK_TCK")


def parse_size(s):
    s = s.strip().upper().rstrip("B").rstrip("I")
    mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
    if s and s[-1] in mult:
        return int(float(s[:-1]) * mult[s[-1]])
    return int(s)


def env_list(name, default):
    v = os.environ.get(name, "")
    return [x.strip() for x in v.split(",") if x.strip()] if v else list(default)


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def nbd_greets(port, timeout=0.2):
    """Whether the NBD server on 127.0.0.1:port sends its greeting within
    timeout: hlfs serve listens before it opens its volumes and greets only
    once they are open, so an accepted connection is not enough."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.settimeout(timeout)
            magic = b""
            while len(magic) < 8:
                chunk = s.recv(8 - len(magic))
                if not chunk:
                    return False
                magic += chunk
            return magic == b"NBDMAGIC"
    except OSError:
        return False


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(cmd, **kw):
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)
    if r.returncode != 0:
        raise RuntimeError("%s: exit %d\n%s" % (" ".join(map(shlex.quote, cmd)), r.returncode, r.stdout))
    return r.stdout


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        rest = f.read().rsplit(")", 1)[1].split()
    return (int(rest[11]) + int(rest[12])) / CLK_TCK


def proc_status_kb(pid, key):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def du_bytes(path):
    n = 0
    for root, _, files in os.walk(path):
        for f in files:
            try:
                n += os.lstat(os.path.join(root, f)).st_blocks * 512
            except FileNotFoundError:
                pass
    return n


def dev_stat_path(path):
    """The /sys stat file of the block device holding path, or None (tmpfs)."""
    st = os.stat(path)
    p = "/sys/dev/block/%d:%d/stat" % (os.major(st.st_dev), os.minor(st.st_dev))
    return p if os.path.exists(p) else None


def dev_written(stat_path):
    """Bytes written to the device so far (field 7: sectors written)."""
    if not stat_path:
        return None
    with open(stat_path) as f:
        return int(f.read().split()[6]) * 512


class Server:
    """One server process on a fresh store under workdir."""

    def __init__(self, kind, workdir, size, hlfs_bin):
        self.kind, self.size, self.hlfs_bin = kind, size, hlfs_bin
        self.dir = tempfile.mkdtemp(prefix=kind + "-", dir=workdir)
        self.port = free_port()
        self.name = "benchvol"
        self.uri = "nbd://127.0.0.1:%d/%s" % (self.port, self.name)
        self.proc = None
        self.rusage = None
        # client_env: environment changes for fio (bench/tls.py sets HOME);
        # client_prefix: a command fio runs under (e.g. setpriv).
        self.client_env = {}
        self.client_prefix = []
        self.exit_code = None
        self.log_path = os.path.join(self.dir, "server.log")

    def store(self):
        return os.path.join(self.dir, "store")

    def prepare(self):
        os.makedirs(self.store())
        img = os.path.join(self.store(), self.name)
        if self.kind in ("hlfs", "hlfs-base"):
            bin_ = self.hlfs_bin if self.kind == "hlfs" else os.environ["BENCH_HLFS_BASE_BIN"]
            extra = shlex.split(os.environ.get("BENCH_HLFS_CREATE_ARGS", ""))
            run([bin_, "--store", "file://" + self.store(), "create", self.name,
                 "--size", human(self.size)] + extra)
            return [bin_, "--store", "file://" + self.store(), "serve",
                    "--listen", "127.0.0.1:%d" % self.port, self.name]
        if self.kind == "qemu-nbd-raw":
            with open(img + ".raw", "wb") as f:
                f.truncate(self.size)
            return ["qemu-nbd", "-f", "raw", "-x", self.name, "-b", "127.0.0.1", "-p", str(self.port),
                    "--persistent", "--shared=16", "--cache=writeback", img + ".raw"]
        if self.kind == "qemu-nbd-qcow2":
            run(["qemu-img", "create", "-q", "-f", "qcow2", img + ".qcow2", str(self.size)])
            return ["qemu-nbd", "-f", "qcow2", "-x", self.name, "-b", "127.0.0.1", "-p", str(self.port),
                    "--persistent", "--shared=16", "--cache=writeback", img + ".qcow2"]
        if self.kind == "nbdkit-memory":
            return ["nbdkit", "--foreground", "--exit-with-parent", "--ipaddr", "127.0.0.1",
                    "--port", str(self.port), "memory", str(self.size)]
        raise ValueError("unknown server %r (want one of %s)" % (self.kind, ",".join(ALL_SERVERS)))

    def start(self):
        cmd = self.prepare()
        self.logf = open(self.log_path, "w")
        self.proc = subprocess.Popen(cmd, stdout=self.logf, stderr=subprocess.STDOUT)
        deadline = time.time() + 60
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError("%s exited during start-up:\n%s" % (self.kind, self.log_tail()))
            if nbd_greets(self.port):
                return
            if time.time() > deadline:
                raise RuntimeError("%s not listening after 60 s:\n%s" % (self.kind, self.log_tail()))
            time.sleep(0.02)

    def stop(self):
        """SIGTERM, then reap (wait4: the whole-life rusage is kept too)."""
        self.proc.send_signal(signal.SIGTERM)
        deadline = time.time() + 120
        while True:
            pid, status, ru = os.wait4(self.proc.pid, os.WNOHANG)
            if pid:
                break
            if time.time() > deadline:
                self.proc.kill()
                pid, status, ru = os.wait4(self.proc.pid, 0)
                break
            time.sleep(0.02)
        self.proc.returncode = os.waitstatus_to_exitcode(status)
        self.exit_code = self.proc.returncode
        self.rusage = ru
        self.logf.close()

    def log_tail(self, n=20):
        try:
            with open(self.log_path) as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""

    def cleanup(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def fio(uri, name, span, rw, bs, iodepth, fsync=0, runtime=None, srv=None):
    """Runs fio's nbd engine; srv (a Server) may add to fio's environment
    and command (client_env, client_prefix)."""
    cmd = ["fio", "--name=" + name, "--ioengine=nbd", "--uri=" + uri, "--rw=" + rw, "--bs=" + bs,
           "--iodepth=%d" % iodepth, "--size=%d" % span, "--output-format=json",
           "--randrepeat=0", "--norandommap=0"]
    if fsync:
        cmd.append("--fsync=%d" % fsync)
    if runtime:
        cmd += ["--runtime=%d" % runtime, "--time_based"]
    env = None
    if srv is not None and (srv.client_env or srv.client_prefix):
        env = dict(os.environ, **srv.client_env)
        cmd = srv.client_prefix + cmd
    out = run(cmd, env=env)
    # fio may print notes before the JSON document.
    doc = json.loads(out[out.index("{"):])
    job = doc["jobs"][0]
    if job.get("error"):
        raise RuntimeError("fio %s: error %s" % (name, job["error"]))
    return job


def measure(kind, jobname, cfg, hlfs_bin, make_server=None):
    """One (server, job) run on a fresh server: make_server(kind, workdir,
    size, hlfs_bin) makes it (default Server)."""
    spec = JOBS[jobname]
    span, runtime = cfg["span"], cfg["runtime"]
    srv = (make_server or Server)(kind, cfg["workdir"], cfg["size"], hlfs_bin)
    devstat = dev_stat_path(cfg["workdir"]) if kind != "nbdkit-memory" else None
    try:
        os.sync()  # start clean: no writeback left over from the last run
        dev0 = dev_written(devstat)
        srv.start()
        written = 0
        # Fill the span so reads hit data and writes overwrite it.
        j = fio(srv.uri, "fill", span, "write", "1M", 4, srv=srv)
        written += j["write"]["io_bytes"]
        if spec["rw"] != "randread" and spec["rw"] != "read":
            for i in range(cfg["overwrite"]):
                j = fio(srv.uri, "overwrite%d" % i, span, "randwrite", "4k", 16, srv=srv)
                written += j["write"]["io_bytes"]
        pid = srv.proc.pid
        cpu0 = cpu_seconds(pid)
        j = fio(srv.uri, jobname, span, spec["rw"], spec["bs"], spec["iodepth"],
                spec.get("fsync", 0), runtime, srv=srv)
        cpu = cpu_seconds(pid) - cpu0
        rss_kb = proc_status_kb(pid, "VmRSS")
        hwm_kb = proc_status_kb(pid, "VmHWM")
        side = j["read"] if spec["rw"] in ("read", "randread") else j["write"]
        written += j["write"]["io_bytes"]
        srv.stop()
        os.sync()
        dev1 = dev_written(devstat)
        res = {
            "server": kind, "job": jobname,
            "iops": side["iops"], "mbps": side["bw_bytes"] / 1e6,
            "p99_us": side.get("clat_ns", {}).get("percentile", {}).get("99.000000", 0) / 1000,
            "cpu_s": cpu, "rss_mb": rss_kb / 1024, "hwm_mb": hwm_kb / 1024,
            "fio_written": written, "exit": srv.exit_code,
        }
        res["store_bytes"] = du_bytes(srv.store())
        res["wa_store"] = res["store_bytes"] / written
        if dev0 is not None:
            res["dev_bytes"] = dev1 - dev0
            res["wa_dev"] = res["dev_bytes"] / written
        if srv.exit_code != 0:
            res["note"] = "exit %s after SIGTERM: %s" % (srv.exit_code, srv.log_tail(5).strip())
        return res
    except Exception as e:
        alive = srv.proc is not None and srv.proc.poll() is None
        raise RuntimeError("%s\nserver %s; its log:\n%s" % (
            e, "still running" if alive else "exited (%s)" % (srv.proc.returncode if srv.proc else "never started"),
            srv.log_tail())) from e
    finally:
        srv.cleanup()


def med(rs, key):
    vals = [r[key] for r in rs if key in r]
    return statistics.median(vals) if vals else None


def report(results, servers, jobs, cfg, targets=None, ours="hlfs", ceiling_peer="nbdkit-memory"):
    """The report: a table per job, then ours / peer against targets
    (default TARGETS), then ours / ceiling_peer for information."""
    if targets is None:
        targets = TARGETS
    out = []
    w = out.append
    w("")
    w("hlfs NBD benchmark: fio %s, nbd ioengine over loopback TCP, span %s, %ds runs, %d round(s), medians"
      % (cfg["fio_version"], human(cfg["span"]), cfg["runtime"], cfg["rounds"]))
    w("")
    hdr = "%-16s %10s %9s %10s %7s %8s %8s %9s %7s %7s" % (
        "server", "IOPS", "MB/s", "p99 us", "cpu s", "RSS MB", "HWM MB", "store MB", "wa.st", "wa.dev")
    for job in jobs:
        w("%s  [%s]" % (JOB_TITLES[job], job))
        w(hdr)
        for s in servers:
            rs = [r for r in results if r["server"] == s and r["job"] == job]
            if not rs:
                continue
            line = "%-16s %10.0f %9.1f %10.0f %7.2f %8.1f %8.1f" % (
                s, med(rs, "iops"), med(rs, "mbps"), med(rs, "p99_us"), med(rs, "cpu_s"),
                med(rs, "rss_mb"), med(rs, "hwm_mb"))
            if s != "nbdkit-memory":
                wd = med(rs, "wa_dev")
                line += " %9.1f %7.2f %7s" % (med(rs, "store_bytes") / 1e6, med(rs, "wa_store"),
                                             "-" if wd is None else "%.2f" % wd)
            w(line)
            for r in rs:
                if r.get("note"):
                    w("  ! %s round: %s" % (s, r["note"]))
        w("")
    w("targets (%s / peer, same run):" % ours)
    for job, peer, want in targets:
        if job not in jobs:
            continue
        key = "iops" if JOBS[job]["bs"] == "4k" else "mbps"
        h = [r for r in results if r["server"] == ours and r["job"] == job]
        p = [r for r in results if r["server"] == peer and r["job"] == job]
        label = "  %-34s vs %-15s >= %.1fx:" % (JOB_TITLES[job], peer, want)
        if not h or not p:
            w("%s n/a (no %s result)" % (label, ours if not h else peer))
            continue
        ratio = med(h, key) / med(p, key) if med(p, key) else 0
        w("%s %5.2fx  %s" % (label, ratio, "PASS" if ratio >= want else "BELOW TARGET"))
    # Server CPU seconds per GiB the timed run wrote (issue 15): at most the peer's.
    for job, peer in (("seqwrite", "qemu-nbd-raw"),):
        if job not in jobs:
            continue
        per = {}
        for s in ("hlfs", peer):
            rs = [r for r in results if r["server"] == s and r["job"] == job and r["mbps"] > 0]
            if rs:
                per[s] = statistics.median(r["cpu_s"] / (r["mbps"] * 1e6 * cfg["runtime"] / (1 << 30)) for r in rs)
        label = "  %-34s vs %-15s <= 1.0x:" % ("CPU s per GiB, " + JOB_TITLES[job], peer)
        if len(per) < 2 or not per[peer]:
            w("%s n/a" % label)
            continue
        ratio = per["hlfs"] / per[peer]
        w("%s %5.2fx  %s (%.2f vs %.2f)" % (label, ratio, "PASS" if ratio <= 1.0 else "BELOW TARGET", per["hlfs"], per[peer]))
    ceiling = []
    for job in jobs:
        key = "iops" if JOBS[job]["bs"] == "4k" else "mbps"
        h = [r for r in results if r["server"] == ours and r["job"] == job]
        p = [r for r in results if r["server"] == ceiling_peer and r["job"] == job]
        if h and p and med(p, key):
            ceiling.append("  %-34s %5.2fx" % (JOB_TITLES[job], med(h, key) / med(p, key)))
    if ceiling:
        if ceiling_peer == "nbdkit-memory":
            w("transport ceiling (hlfs / nbdkit memory, for information):")
        else:
            w("%s / %s, for information:" % (ours, ceiling_peer))
        out.extend(ceiling)
    return "\n".join(out)


def human(n):
    for unit, m in (("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)):
        if n % m == 0:
            return "%d%s" % (n // m, unit)
    return str(n)


def hlfs_binary():
    """The hlfs binary: BENCH_HLFS_BIN (relative to the repository if not
    found as given) or bin/hlfs, as an absolute path."""
    hlfs_bin = os.environ.get("BENCH_HLFS_BIN", os.path.join(REPO, "bin", "hlfs"))
    if not os.path.isabs(hlfs_bin) and not os.path.exists(hlfs_bin):
        hlfs_bin = os.path.join(REPO, hlfs_bin)
    return os.path.abspath(hlfs_bin)


def finish(t0, doc):
    """Prints the failed (server, job, round) runs of doc and the time since
    t0, and writes doc to BENCH_JSON when set."""
    for f in doc["failures"]:
        print("FAILED: %s %s round %d: %s" % (f["server"], f["job"], f["round"] + 1,
                                              f["error"].strip().splitlines()[0]))
    print("(%.0f s in all; performance is reported, never a failing exit)" % (time.time() - t0))
    if os.environ.get("BENCH_JSON"):
        with open(os.environ["BENCH_JSON"], "w") as f:
            json.dump(doc, f, indent=1)


def main():
    cfg = {
        "runtime": int(os.environ.get("BENCH_RUNTIME", "5")),
        "rounds": int(os.environ.get("BENCH_ROUNDS", "2")),
        "span": parse_size(os.environ.get("BENCH_SPAN", "256M")),
        "size": parse_size(os.environ.get("BENCH_SIZE", "1G")),
        "overwrite": int(os.environ.get("BENCH_OVERWRITE", "1")),
    }
    servers = env_list("BENCH_SERVERS", ALL_SERVERS)
    jobs = env_list("BENCH_JOBS", list(JOBS))
    for j in jobs:
        if j not in JOBS:
            sys.exit("bench: unknown job %r (want %s)" % (j, ",".join(JOBS)))
    for s in servers:
        if s not in ALL_SERVERS + EXTRA_SERVERS:
            sys.exit("bench: unknown server %r (want %s)" % (s, ",".join(ALL_SERVERS + EXTRA_SERVERS)))
    if "hlfs-base" in servers and not os.access(os.environ.get("BENCH_HLFS_BASE_BIN", ""), os.X_OK):
        sys.exit("bench: hlfs-base needs BENCH_HLFS_BASE_BIN, an hlfs binary")

    need = {"fio"}
    if any(s.startswith("qemu-nbd") for s in servers):
        need |= {"qemu-nbd", "qemu-img"}
    if "nbdkit-memory" in servers:
        need.add("nbdkit")
    missing = sorted(t for t in need if not shutil.which(t))
    if missing:
        sys.exit("bench: missing %s: run scripts/install-test-deps.sh" % ", ".join(missing))
    if subprocess.run(["fio", "--enghelp=nbd"], capture_output=True).returncode != 0:
        sys.exit("bench: this fio has no nbd ioengine")
    cfg["fio_version"] = run(["fio", "--version"]).strip()

    hlfs_bin = hlfs_binary()
    notes = []
    if "hlfs" in servers and not os.access(hlfs_bin, os.X_OK):
        notes.append("hlfs not run: %s missing (go build -o bin/hlfs ./cmd/hlfs)" % hlfs_bin)
        servers.remove("hlfs")

    own_dir = "BENCH_DIR" not in os.environ
    cfg["workdir"] = tempfile.mkdtemp(prefix="hlfs-bench-", dir=os.environ.get("BENCH_DIR"))
    results, failures = [], []
    t0 = time.time()
    try:
        for rnd in range(cfg["rounds"]):
            order = servers[rnd % len(servers):] + servers[:rnd % len(servers)] if servers else []
            for job in jobs:
                for s in order:
                    log("bench: round %d/%d %-18s %-15s ..." % (rnd + 1, cfg["rounds"], job, s))
                    try:
                        r = measure(s, job, cfg, hlfs_bin)
                    except Exception as e:  # report, keep going
                        log("bench:   FAILED: %s" % e)
                        failures.append({"server": s, "job": job, "round": rnd, "error": str(e)})
                        continue
                    r["round"] = rnd
                    results.append(r)
                    log("bench:   %.0f IOPS %.1f MB/s cpu %.2fs%s" % (
                        r["iops"], r["mbps"], r["cpu_s"],
                        " wa.store %.2f wa.dev %s" % (r["wa_store"], "%.2f" % r["wa_dev"] if "wa_dev" in r else "-")
                        if r["server"] != "nbdkit-memory" else ""))
    finally:
        if own_dir:
            shutil.rmtree(cfg["workdir"], ignore_errors=True)
    text = report(results, servers + (["hlfs"] if notes else []), jobs, cfg)
    print(text)
    for n in notes:
        print("note: " + n)
    finish(t0, {"config": cfg, "results": results, "failures": failures, "notes": notes})
    # A failed hlfs run is a bug to surface; a flaky peer only a warning.
    if any(f["server"] == "hlfs" for f in failures):
        sys.exit(1)


if __name__ == "__main__":
    main()
