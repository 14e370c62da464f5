#!/usr/bin/env bash
# Runs a command with the HDFS mini-cluster up (HLFS_HDFS_URI, HADOOP_CONF_DIR
# and HLFS_HDFS_CONTROL exported), then stops the cluster, whatever happened.
# If the cluster cannot start this fails: tests never silently skip HDFS.
#
#   scripts/with-hdfs.sh go test ./hdfsbackend/...
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
env_lines=$("$here/hdfs-up.sh")
eval "$env_lines"
trap '"$here/hdfs-down.sh" >&2 || true' EXIT
"$@"
