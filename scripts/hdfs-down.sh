#!/usr/bin/env bash
# Stops the HDFS mini-cluster started by scripts/hdfs-up.sh: asks it to shut
# down over its control channel, then sends TERM and finally KILL if it does
# not exit. Safe to run when nothing is running. The data under
# ${HLFS_HDFS_DIR:-/tmp/hlfs-hdfs} stays for inspection; the next
# hdfs-up.sh formats afresh.
set -uo pipefail

dir=${HLFS_HDFS_DIR:-/tmp/hlfs-hdfs}
main=org.hlfs.minihdfs.Launcher
say() { echo "hdfs-down: $*" >&2; }

pid=$(cat "$dir/pid" 2>/dev/null) || { say "not running (no $dir/pid)"; exit 0; }
ours() { kill -0 "$pid" 2>/dev/null && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q "$main"; }
if ! ours; then
	say "not running (stale pid $pid)"
	rm -f "$dir/pid" "$dir/control.port" "$dir/uri"
	exit 0
fi

wait_exit() { # seconds
	local i
	for ((i = 0; i < $1 * 10; i++)); do
		ours || return 0
		sleep 0.1
	done
	return 1
}

if [ -r "$dir/control.port" ]; then
	HLFS_HDFS_CONTROL=$(cat "$dir/control.port") \
		timeout 10 "$(dirname "$0")/../testdata/hdfs/ctl.sh" shutdown >/dev/null 2>&1 || true
fi
if ! wait_exit 30; then
	say "no exit after shutdown; sending TERM to $pid"
	kill "$pid" 2>/dev/null
	if ! wait_exit 15; then
		say "sending KILL to $pid"
		kill -9 "$pid" 2>/dev/null
		wait_exit 5
	fi
fi
rm -f "$dir/pid" "$dir/control.port" "$dir/uri"
say "stopped (pid $pid)"
