#!/usr/bin/python3
"""Flushing writes to many NBD exports at once (python3-libnbd), and their check.

write mode: one thread per volume connects to nbd://ADDR/VOLUME and, round
after round, writes block R (BLOCK bytes, content derived from the volume
and R) and flushes; after each flush reply it prints "VOLUME R" (stdout,
line-buffered): block R of VOLUME is durable. Each block is written once.
It stops after --rounds rounds or when the server goes away (exit 3).

check mode: reads the lines a write run printed from stdin and checks that
every block named reads back with its content, and that every block after
the last acknowledged one of its volume holds its content or zeros (written
without a flush reply, or never). Prints "ok N" or the first mismatches and
exits 1.

Usage: fleet_writer.py write|check --addr HOST:PORT --block N --rounds N VOLUME...
"""

import argparse
import sys
import threading

import nbd


def content(vol, r, block):
    pattern = ("%s:%d;" % (vol, r)).encode()
    return (pattern * (block // len(pattern) + 1))[:block]


def connect(addr, vol):
    h = nbd.NBD()
    h.connect_uri("nbd://%s/%s" % (addr, vol))
    return h


def write(a):
    lock = threading.Lock()
    failed = []

    def run(vol):
        try:
            h = connect(a.addr, vol)
            for r in range(a.rounds):
                h.pwrite(content(vol, r, a.block), r * a.block)
                h.flush()
                with lock:
                    sys.stdout.write("%s %d\n" % (vol, r))
                    sys.stdout.flush()
        except nbd.Error as e:
            with lock:
                failed.append("%s: %s" % (vol, e))

    threads = [threading.Thread(target=run, args=(v,)) for v in a.volumes]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if failed:
        sys.stderr.write("server gone: %d of %d writers stopped (%s)\n" % (len(failed), len(a.volumes), failed[0]))
        return 3
    return 0


def check(a):
    acked = {v: -1 for v in a.volumes}
    for line in sys.stdin:
        vol, r = line.split()
        acked[vol] = max(acked[vol], int(r))
    bad, n = [], 0
    zero = bytes(a.block)
    for vol in a.volumes:
        h = connect(a.addr, vol)
        for r in range(a.rounds):
            got = h.pread(a.block, r * a.block)
            want = content(vol, r, a.block)
            if r <= acked[vol]:
                n += 1
                if got != want:
                    bad.append("%s block %d: flushed, reads %r" % (vol, r, got[:24]))
            elif got != want and got != zero:
                bad.append("%s block %d: never flushed, reads %r" % (vol, r, got[:24]))
        h.shutdown()
    if bad:
        print("\n".join(bad[:10]))
        return 1
    print("ok %d" % n)
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("mode", choices=["write", "check"])
    ap.add_argument("--addr", required=True)
    ap.add_argument("--block", type=int, default=4096)
    ap.add_argument("--rounds", type=int, required=True)
    ap.add_argument("volumes", nargs="+")
    a = ap.parse_args()
    return write(a) if a.mode == "write" else check(a)


if __name__ == "__main__":
    sys.exit(main())
