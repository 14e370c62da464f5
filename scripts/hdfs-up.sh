#!/usr/bin/env bash
# Starts the HDFS mini-cluster the hdfsbackend tests run against: one
# NameNode on 127.0.0.1:$HLFS_HDFS_PORT and $HLFS_HDFS_DATANODES DataNodes,
# from Hadoop's own jars (testdata/hdfs, built with Maven on first use).
#
#   eval "$(scripts/hdfs-up.sh)"     # exports HLFS_HDFS_URI, HADOOP_CONF_DIR, HLFS_HDFS_CONTROL
#   go test ./hdfsbackend/
#   scripts/hdfs-down.sh
#
# Environment: HLFS_HDFS_DIR (state: data, conf, log, pid; default
# /tmp/hlfs-hdfs), HLFS_HDFS_PORT (default 9000), HLFS_HDFS_DATANODES
# (default 3), HLFS_HDFS_BLOCKSIZE (default 4194304), HLFS_HDFS_LEASE_SOFT_MS
# (lease soft limit: how long a crashed writer's lease blocks recovery;
# default 5000, Hadoop's is 60000), HLFS_HDFS_JAVA_OPTS
# (default -Xmx1g), HLFS_HDFS_TIMEOUT (seconds to wait for READY, default 300),
# HLFS_HDFS_HTTP_PORT (NameNode HTTP port serving WebHDFS; default 0: a free
# one; written to $HADOOP_CONF_DIR/hdfs-site.xml as dfs.namenode.http-address).
# Progress goes to stderr; stdout has only the export lines. Each start
# formats a fresh file system. If a cluster from this state dir is already
# running, its settings are printed again.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
src=$root/testdata/hdfs
dir=${HLFS_HDFS_DIR:-/tmp/hlfs-hdfs}
port=${HLFS_HDFS_PORT:-9000}
datanodes=${HLFS_HDFS_DATANODES:-3}
blocksize=${HLFS_HDFS_BLOCKSIZE:-4194304}
lease_soft_ms=${HLFS_HDFS_LEASE_SOFT_MS:-5000}
java_opts=${HLFS_HDFS_JAVA_OPTS:--Xmx1g}
timeout=${HLFS_HDFS_TIMEOUT:-300}
http_port=${HLFS_HDFS_HTTP_PORT:-0}
main=org.hlfs.minihdfs.Launcher

say() { echo "hdfs-up: $*" >&2; }

print_env() {
	echo "export HLFS_HDFS_URI=$(cat "$dir/uri")"
	echo "export HADOOP_CONF_DIR=$dir/conf"
	echo "export HLFS_HDFS_CONTROL=$(cat "$dir/control.port")"
	echo "export HLFS_HDFS_DIR=$dir"
}

running() {
	local pid
	pid=$(cat "$dir/pid" 2>/dev/null) || return 1
	kill -0 "$pid" 2>/dev/null && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q "$main"
}

if running && [ -r "$dir/uri" ]; then
	say "already running (pid $(cat "$dir/pid"))"
	print_env
	exit 0
fi

command -v java >/dev/null || { say "java not found (Java 17 needed)"; exit 1; }
command -v mvn >/dev/null || { say "mvn not found (Maven needed to fetch Hadoop)"; exit 1; }

# Build when the launcher, its class path or a jar on it is missing or stale.
cls=$src/target/classes/org/hlfs/minihdfs/Launcher.class
cpfile=$src/target/classpath.txt
need_build=0
if [ ! -f "$cls" ] || [ ! -f "$cpfile" ] || [ "$src/pom.xml" -nt "$cpfile" ] ||
	[ -n "$(find "$src/src" -newer "$cls" -type f 2>/dev/null)" ]; then
	need_build=1
else
	IFS=: read -ra jars <"$cpfile" || true # no final newline
	for j in "${jars[@]}"; do [ -f "$j" ] || need_build=1; done
fi
if [ $need_build = 1 ]; then
	say "building the launcher (first run downloads Hadoop, ~150 MB, to ~/.m2)"
	start=$(date +%s)
	(cd "$src" && { mvn -B -q -o package >/dev/null 2>&1 || mvn -B -q package >&2; }) ||
		{ say "maven build failed"; exit 1; }
	say "built in $(($(date +%s) - start)) s"
fi

mkdir -p "$dir"
rm -rf "$dir/dfs" "$dir/conf" "$dir/uri" "$dir/control.port"
log=$dir/launcher.log
: >"$log" # a READY line from an earlier run must not count
start=$(date +%s)
# shellcheck disable=SC2086 # java_opts is a list of flags
nohup java $java_opts -Dorg.slf4j.simpleLogger.defaultLogLevel=warn \
	-cp "$src/target/classes:$(cat "$cpfile")" "$main" \
	--dir "$dir" --port "$port" --datanodes "$datanodes" --block-size "$blocksize" \
	--lease-soft-limit-ms "$lease_soft_ms" --http-port "$http_port" \
	</dev/null >"$log" 2>&1 &
pid=$!
echo "$pid" >"$dir/pid"
say "starting (pid $pid, log $log)"

fail() {
	say "$1"
	echo "---- last lines of $log ----" >&2
	tail -n 40 "$log" >&2 || true
	kill "$pid" 2>/dev/null || true
	rm -f "$dir/pid"
	exit 1
}
while ! grep -q '^READY ' "$log" 2>/dev/null; do
	kill -0 "$pid" 2>/dev/null || fail "the launcher exited before READY"
	[ $(($(date +%s) - start)) -lt "$timeout" ] || fail "no READY after ${timeout} s"
	sleep 0.5
done
say "$(grep '^READY ' "$log") after $(($(date +%s) - start)) s; HADOOP_CONF_DIR=$dir/conf"
print_env
