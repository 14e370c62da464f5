#!/bin/sh
# fake-hlfs.sh: a stand-in for bin/hlfs with the same command line, built on
# raw image files served by qemu-nbd (one volume) or qemu-storage-daemon
# (several). It exists to prove the e2e tests and bench/bench.py drive the
# hlfs code path correctly before (or independently of) the real binary:
#
#   HLFS_BIN=e2e/testdata/fake-hlfs.sh go test ./e2e/
#   BENCH_HLFS_BIN=e2e/testdata/fake-hlfs.sh python3 bench/bench.py
#
# Supported: --store file:///DIR before the subcommand, then
#   create VOL --size SIZE [--block-size N] [--compress]
#   serve --listen HOST:PORT [--socket PATH] [VOL...]   (SIGTERM: exit 0)
#   fsck VOL | info VOL [--json] | import FILE VOL | export VOL FILE
set -eu

die() { echo "fake-hlfs: $*" >&2; exit 2; }

store=
while [ $# -gt 0 ]; do
	case $1 in
	--store) store=$2; shift 2 ;;
	--store=*) store=${1#--store=}; shift ;;
	*) break ;;
	esac
done
[ -n "$store" ] || die "--store file:///DIR is required"
case $store in file://*) dir=${store#file://} ;; *) die "only file:// stores" ;; esac
[ $# -gt 0 ] || die "no subcommand"
cmd=$1; shift

case $cmd in
create)
	[ $# -gt 0 ] || die "create: no volume"
	vol=$1; shift
	size=
	while [ $# -gt 0 ]; do
		case $1 in
		--size) size=$2; shift 2 ;;
		--block-size) shift 2 ;;
		--compress) shift ;;
		*) die "create: unknown argument $1" ;;
		esac
	done
	[ -n "$size" ] || die "create: --size is required"
	mkdir -p "$dir"
	[ ! -e "$dir/$vol.img" ] || die "create: volume $vol exists"
	# Not qemu-img create: it allocates the first 4 KiB.
	exec truncate -s "$size" "$dir/$vol.img"
	;;
serve)
	listen= vols=
	while [ $# -gt 0 ]; do
		case $1 in
		--listen) listen=$2; shift 2 ;;
		--socket) shift 2 ;;
		-*) die "serve: unknown flag $1" ;;
		*) vols="$vols $1"; shift ;;
		esac
	done
	[ -n "$listen" ] || die "serve: --listen is required"
	if [ -z "$vols" ]; then
		for f in "$dir"/*.img; do vols="$vols $(basename "$f" .img)"; done
	fi
	host=${listen%:*} port=${listen##*:}
	set -- $vols
	if [ $# -eq 1 ]; then
		exec qemu-nbd -f raw -x "$1" -b "$host" -p "$port" --persistent --shared=16 \
			--cache=writeback --discard=unmap "$dir/$1.img"
	fi
	n=0 args=
	for v in "$@"; do
		args="$args --blockdev driver=file,filename=$dir/$v.img,node-name=f$n,cache.direct=off,discard=unmap"
		args="$args --blockdev driver=raw,file=f$n,node-name=n$n,discard=unmap"
		args="$args --export type=nbd,id=e$n,node-name=n$n,name=$v,writable=on"
		n=$((n + 1))
	done
	exec qemu-storage-daemon --nbd-server "addr.type=inet,addr.host=$host,addr.port=$port,max-connections=16" $args
	;;
fsck)
	[ -f "$dir/$1.img" ] || die "fsck: no volume $1"
	echo "fake fsck: $1: ok"
	;;
info)
	[ -f "$dir/$1.img" ] || die "info: no volume $1"
	printf '{"name":"%s","size":%s}\n' "$1" "$(stat -c %s "$dir/$1.img")"
	;;
import)
	[ -f "$dir/$2.img" ] || die "import: no volume $2"
	exec dd if="$1" of="$dir/$2.img" bs=1M conv=notrunc,sparse status=none
	;;
export)
	[ -f "$dir/$1.img" ] || die "export: no volume $1"
	exec cp --sparse=always "$dir/$1.img" "$2"
	;;
*)
	die "unknown subcommand $cmd"
	;;
esac
