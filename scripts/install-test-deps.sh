#!/bin/sh
# install-test-deps.sh: make sure the real NBD clients, the QEMU guest
# ingredients and the benchmark tools used by e2e/ and bench/ are installed.
#
# Idempotent: every tool is checked first; only when something is missing
# does it run `apt-get update` (once) and `apt-get install -y` of the missing
# Debian packages. Needs root only in that case. Debian 12 (bookworm).
#
# Usage: scripts/install-test-deps.sh [--check]   (--check: report, never install)
set -eu

check_only=0
[ "${1:-}" = "--check" ] && check_only=1

missing_pkgs=
missing_what=

need() { # need PACKAGE DESCRIPTION: record a missing package once
	case " $missing_pkgs " in *" $1 "*) ;; *) missing_pkgs="$missing_pkgs $1" ;; esac
	missing_what="$missing_what
  $2 (package $1)"
}

have() { command -v "$1" >/dev/null 2>&1; }

# Tools on PATH (root's PATH has /usr/sbin; a user's may not).
PATH=$PATH:/usr/sbin:/sbin
for pair in \
	qemu-io:qemu-utils qemu-img:qemu-utils qemu-nbd:qemu-utils \
	qemu-system-x86_64:qemu-system-x86 qemu-storage-daemon:qemu-system-common \
	nbdinfo:libnbd-bin nbdcopy:libnbd-bin \
	fio:fio nbdkit:nbdkit cpio:cpio openssl:openssl setpriv:util-linux \
	mkfs.ext4:e2fsprogs mke2fs:e2fsprogs e2fsck:e2fsprogs \
	python3:python3 xz:xz-utils ldd:libc-bin \
	java:openjdk-17-jdk-headless javac:openjdk-17-jdk-headless mvn:maven; do
	have "${pair%%:*}" || need "${pair#*:}" "${pair%%:*}"
done

# nbdkit's memory plugin (the transport ceiling in bench/).
if have nbdkit && ! nbdkit memory --dump-plugin >/dev/null 2>&1; then
	need nbdkit "nbdkit memory plugin"
fi

# python3-libnbd installs into Debian's system interpreter, which a pyenv or
# venv python3 earlier on PATH does not see: check /usr/bin/python3.
if ! /usr/bin/python3 -c 'import nbd' >/dev/null 2>&1; then
	need python3-libnbd "/usr/bin/python3 -c 'import nbd'"
fi

# A statically linked busybox for the guest initramfs.
static_busybox=0
for b in /bin/busybox /usr/bin/busybox; do
	if [ -x "$b" ] && ldd "$b" 2>&1 | grep -q 'not a dynamic executable'; then
		static_busybox=1
	fi
done
[ $static_busybox = 1 ] || need busybox-static "static busybox (/bin/busybox)"

# A kernel image with its module tree (virtio_blk and ext4 are modules).
kernel=0
for k in /boot/vmlinuz-*; do
	[ -e "$k" ] || continue
	[ -f "/lib/modules/${k#/boot/vmlinuz-}/modules.dep" ] && kernel=1
done
if [ $kernel = 0 ]; then
	arch=$(dpkg --print-architecture 2>/dev/null || echo amd64)
	need "linux-image-$arch" "kernel /boot/vmlinuz-* with /lib/modules/VERSION"
fi

# systemd-analyze verifies dist/systemd/hlfs.service (e2e/systemd_test.go).
have systemd-analyze || need systemd "systemd-analyze"

# hlfs attach: virt-xml-validate checks the libvirt <disk> (no libvirtd
# needed); it is a script around xmllint.
for pair in virt-xml-validate:libvirt-clients xmllint:libxml2-utils; do
	have "${pair%%:*}" || need "${pair#*:}" "${pair%%:*}"
done

# Go is not a Debian package here (the module needs a newer Go): warn only.
have go || echo "install-test-deps: warning: go not on PATH (needed by go test ./e2e)" >&2

if [ -z "$missing_pkgs" ]; then
	echo "install-test-deps: all test dependencies present"
	exit 0
fi

echo "install-test-deps: missing:$missing_what" >&2
if [ $check_only = 1 ]; then
	echo "install-test-deps: would install:$missing_pkgs" >&2
	exit 1
fi
if [ "$(id -u)" != 0 ]; then
	echo "install-test-deps: error: not root; run as root (or: sudo apt-get install$missing_pkgs)" >&2
	exit 1
fi
if ! have apt-get; then
	echo "install-test-deps: error: no apt-get; install by hand:$missing_pkgs" >&2
	exit 1
fi

export DEBIAN_FRONTEND=noninteractive
echo "install-test-deps: apt-get install$missing_pkgs"
apt-get update
# shellcheck disable=SC2086 # word splitting of the package list is intended
apt-get install -y --no-install-recommends $missing_pkgs

# Verify: rerun the checks without installing.
exec "$0" --check
