#!/usr/bin/env python3
"""NBD over TLS: hlfs against qemu-nbd with the same certificates, and what
TLS costs each against itself in clear; same client, same run.

Makes a CA, a server certificate for 127.0.0.1 and a client certificate
with openssl (the README's commands), then runs bench.py's jobs

  randwrite  4K random write, QD16
  randread   4K random read, QD16
  seqread    1M sequential read, QD4

through fio's nbd ioengine against

  hlfs-tls      hlfs serve --tls-creds DIR --tls-verify-peer   (TLS required)
  qemu-nbd-tls  qemu-nbd --object tls-creds-x509,id=tls0,dir=DIR,endpoint=server
                --tls-creds tls0 on a raw file, writeback (verify-peer is
                QEMU's default: client certificates checked too)
  hlfs          hlfs serve, in clear
  qemu-nbd-raw  qemu-nbd on a raw file, writeback, in clear

each (server, job) on a fresh server and store, fill and overwrite as in
bench.py, servers alternating within a round, medians over rounds.

fio 3.33's nbd engine cannot take the certificates in the URI (libnbd refuses
?tls-certificates= unless the program allows local file access, and fio does
not). libnbd then reads its default directory: $HOME/.pki/libnbd for a user,
/etc/pki/libnbd for root. So fio runs with HOME set to a directory holding
.pki/libnbd/{ca-cert,client-cert,client-key}.pem, and, when this script runs
as root, as user nobody (setpriv), every server alike.

Environment: BENCH_TLS_SERVERS (default all four), BENCH_TLS_JOBS
(randwrite,randread,seqread), and bench.py's BENCH_RUNTIME, BENCH_ROUNDS,
BENCH_SPAN, BENCH_SIZE, BENCH_OVERWRITE, BENCH_HLFS_BIN, BENCH_DIR,
BENCH_JSON.
"""

import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402  (the helpers of bench.py)

SERVERS = ["hlfs-tls", "qemu-nbd-tls", "hlfs", "qemu-nbd-raw"]
JOBS = ["randwrite", "randread", "seqread"]
TARGETS = [(job, "qemu-nbd-tls", 1.0) for job in JOBS]

# The README's openssl recipe (section "NBD over TLS"), with EC keys.
CERT_SCRIPT = r"""
set -e
cd "$1"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 \
  -subj "/O=Example/CN=Example NBD CA" -keyout ca-key.pem -out ca-cert.pem \
  -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
  -subj "/O=Example/CN=localhost" -keyout server-key.pem -out server.csr
printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n' > server.ext
openssl x509 -req -in server.csr -CA ca-cert.pem -CAkey ca-key.pem -CAcreateserial \
  -days 365 -extfile server.ext -out server-cert.pem
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
  -subj "/O=Example/CN=bench client" -keyout client-key.pem -out client.csr
printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n' > client.ext
openssl x509 -req -in client.csr -CA ca-cert.pem -CAkey ca-key.pem -CAcreateserial \
  -days 365 -extfile client.ext -out client-cert.pem
mkdir server fiohome fiohome/.pki fiohome/.pki/libnbd
cp ca-cert.pem server-cert.pem server-key.pem server/
cp ca-cert.pem client-cert.pem client-key.pem fiohome/.pki/libnbd/
chmod -R a+rX fiohome
"""


def make_certs(dir):
    """Makes the certificates in dir; returns (server dir, fio's HOME)."""
    r = subprocess.run(["sh", "-c", CERT_SCRIPT, "sh", dir], capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError("making certificates with openssl failed:\n%s%s" % (r.stdout, r.stderr))
    return os.path.join(dir, "server"), os.path.join(dir, "fiohome")


class TLSServer(bench.Server):
    """bench.Server for the kinds of this benchmark: "X-tls" is X with TLS."""

    def __init__(self, kind, workdir, size, hlfs_bin, creds, fio_home):
        self.tls = kind.endswith("-tls")
        base = {"hlfs-tls": "hlfs", "qemu-nbd-tls": "qemu-nbd-raw"}.get(kind, kind)
        super().__init__(base, workdir, size, hlfs_bin)
        self.creds = creds
        if self.tls:
            self.uri = "nbds://127.0.0.1:%d/%s" % (self.port, self.name)
        self.client_env = {"HOME": fio_home}
        if os.geteuid() == 0:
            self.client_prefix = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]

    def prepare(self):
        cmd = super().prepare()
        if not self.tls:
            return cmd
        if self.kind == "hlfs":  # [..., "serve", "--listen", ADDR, VOLUME]
            return cmd[:-1] + ["--tls-creds", self.creds, "--tls-verify-peer"] + cmd[-1:]
        # qemu-nbd [...] IMAGE
        return cmd[:-1] + ["--object", "tls-creds-x509,id=tls0,dir=%s,endpoint=server" % self.creds,
                           "--tls-creds", "tls0"] + cmd[-1:]


def main():
    cfg = {
        "runtime": int(os.environ.get("BENCH_RUNTIME", "5")),
        "rounds": int(os.environ.get("BENCH_ROUNDS", "2")),
        "span": bench.parse_size(os.environ.get("BENCH_SPAN", "256M")),
        "size": bench.parse_size(os.environ.get("BENCH_SIZE", "1G")),
        "overwrite": int(os.environ.get("BENCH_OVERWRITE", "1")),
    }
    servers = bench.env_list("BENCH_TLS_SERVERS", SERVERS)
    jobs = bench.env_list("BENCH_TLS_JOBS", JOBS)
    for s in servers:
        if s not in SERVERS:
            sys.exit("tls: unknown server %r (want %s)" % (s, ",".join(SERVERS)))
    for j in jobs:
        if j not in bench.JOBS:
            sys.exit("tls: unknown job %r (want %s)" % (j, ",".join(bench.JOBS)))
    missing = sorted(t for t in ["fio", "qemu-nbd", "openssl"] + (["setpriv"] if os.geteuid() == 0 else [])
                     if not shutil.which(t))
    if missing:
        sys.exit("tls: missing %s: run scripts/install-test-deps.sh" % ", ".join(missing))
    cfg["fio_version"] = bench.run(["fio", "--version"]).strip()
    hlfs_bin = bench.hlfs_binary()
    if any(s.startswith("hlfs") for s in servers) and not os.access(hlfs_bin, os.X_OK):
        sys.exit("tls: %s missing (go build -o bin/hlfs ./cmd/hlfs)" % hlfs_bin)

    own_dir = "BENCH_DIR" not in os.environ
    cfg["workdir"] = tempfile.mkdtemp(prefix="hlfs-tls-bench-", dir=os.environ.get("BENCH_DIR"))
    # fio runs as nobody when we are root: its certificates live in a
    # directory of their own that nobody may read.
    certdir = tempfile.mkdtemp(prefix="hlfs-tls-certs-")
    os.chmod(certdir, 0o755)
    results, failures = [], []
    t0 = time.time()
    try:
        creds, fio_home = make_certs(certdir)

        def make_server(kind, workdir, size, hlfs_bin):
            return TLSServer(kind, workdir, size, hlfs_bin, creds, fio_home)

        for rnd in range(cfg["rounds"]):
            order = servers[rnd % len(servers):] + servers[:rnd % len(servers)]
            for job in jobs:
                for s in order:
                    bench.log("tls: round %d/%d %-10s %-13s ..." % (rnd + 1, cfg["rounds"], job, s))
                    try:
                        r = bench.measure(s, job, cfg, hlfs_bin, make_server)
                    except Exception as e:  # report, keep going
                        bench.log("tls:   FAILED: %s" % e)
                        failures.append({"server": s, "job": job, "round": rnd, "error": str(e)})
                        continue
                    r["round"] = rnd
                    results.append(r)
                    bench.log("tls:   %.0f IOPS %.1f MB/s cpu %.2fs" % (r["iops"], r["mbps"], r["cpu_s"]))
    finally:
        shutil.rmtree(certdir, ignore_errors=True)
        if own_dir:
            shutil.rmtree(cfg["workdir"], ignore_errors=True)
    print(bench.report(results, servers, jobs, cfg, targets=TARGETS, ours="hlfs-tls", ceiling_peer="hlfs"))
    print(tls_cost(results, jobs))
    bench.finish(t0, {"config": cfg, "results": results, "failures": failures})
    if any(f["server"].startswith("hlfs") for f in failures):
        sys.exit(1)


def tls_cost(results, jobs):
    """What TLS costs each server against itself in clear: throughput and
    server CPU seconds per GB moved."""
    out = ["TLS cost (with TLS / in clear, same server, for information):"]
    for tls_kind, clear in (("hlfs-tls", "hlfs"), ("qemu-nbd-tls", "qemu-nbd-raw")):
        for job in jobs:
            t = [r for r in results if r["server"] == tls_kind and r["job"] == job]
            c = [r for r in results if r["server"] == clear and r["job"] == job]
            if not t or not c:
                continue
            key = "iops" if bench.JOBS[job]["bs"] == "4k" else "mbps"
            cpu_t = bench.med(t, "cpu_s") / max(bench.med(t, "mbps"), 1e-9)
            cpu_c = bench.med(c, "cpu_s") / max(bench.med(c, "mbps"), 1e-9)
            out.append("  %-13s %-34s %5.2fx throughput, %5.2fx server CPU per byte" % (
                tls_kind, bench.JOB_TITLES[job], bench.med(t, key) / bench.med(c, key), cpu_t / cpu_c))
    if len(out) == 1:
        out.append("  n/a (no server ran both with TLS and in clear)")
    return "\n".join(out)


if __name__ == "__main__":
    main()
