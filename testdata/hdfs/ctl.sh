#!/usr/bin/env bash
# Sends one command to the running HDFS mini-cluster's control channel and
# prints the one-line answer; exits 1 when the answer is not "OK ...".
#   testdata/hdfs/ctl.sh status
#   testdata/hdfs/ctl.sh stop-datanode 1
# The control address comes from $HLFS_HDFS_CONTROL or
# ${HLFS_HDFS_DIR:-/tmp/hlfs-hdfs}/control.port (written by the launcher).
set -euo pipefail
if [ $# -eq 0 ]; then
	echo "usage: $0 status | stop-datanode N [nomark] | restart-datanode N | stop-namenode | start-namenode | restart-namenode | shutdown" >&2
	exit 2
fi
addr=${HLFS_HDFS_CONTROL:-}
if [ -z "$addr" ]; then
	f=${HLFS_HDFS_DIR:-/tmp/hlfs-hdfs}/control.port
	[ -r "$f" ] || { echo "$0: no $f: is the mini-cluster running (scripts/hdfs-up.sh)?" >&2; exit 1; }
	addr=$(cat "$f")
fi
exec 3<>"/dev/tcp/${addr%:*}/${addr##*:}"
printf '%s\n' "$*" >&3
IFS= read -r reply <&3 || reply="ERR no answer from $addr"
exec 3<&-
echo "$reply"
[[ $reply == OK* ]]
