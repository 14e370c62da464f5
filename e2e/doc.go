// Package e2e drives hlfs with real NBD clients: a Linux guest under QEMU
// (TCG), qemu-io, qemu-img, nbdinfo, nbdcopy and a python3-libnbd writer.
//
// The pieces:
//
//   - Server (server.go) starts the NBD server under test on a loopback port
//     and stops it with SIGTERM (Stop, which demands exit status 0) or
//     SIGKILL (Kill), then restarts it on the same store and port (Start).
//     The backend is chosen by HLFS_E2E_SERVER: "hlfs" (the default; the
//     binary is HLFS_BIN, or ./cmd/hlfs built once per test process) or
//     "qemu-nbd" (raw files behind qemu-nbd, or qemu-storage-daemon for
//     several volumes), the reference the harness was validated against.
//     testdata/fake-hlfs.sh puts qemu-nbd behind the hlfs command line, to
//     check the hlfs code path of the harness itself.
//   - BuildInitramfs (initramfs.go) packs busybox-static, the kernel's virtio
//     and ext4 modules (dependencies from modules.dep, compressed modules
//     unpacked) and e2fsprogs (mke2fs, e2fsck and their shared libraries)
//     into an uncompressed newc initramfs, cached under
//     os.TempDir()/hlfs-guest-cache/KERNELVERSION-RECIPE.
//   - BootGuest and RunGuest (guest.go) boot that kernel with one NBD-backed
//     virtio disk (/dev/vda), append the test script to the initramfs as a
//     second cpio archive, run it with `sh -e`, and return the serial
//     console. A boot takes 6-12 s on two cores.
//   - testdata/nbd_writer.py is the crash-test load generator whose log
//     crash_test.go replays (writeModel); soak_test.go feeds it to the
//     model as it grows, cycle after cycle (make soak, SOAK_CYCLES).
//
// Every test first calls Begin, which skips the test only when HLFS_SKIP_E2E=1
// and otherwise fails it (never skips) when a required tool is missing:
// scripts/install-test-deps.sh installs them.
//
// Environment: HLFS_SKIP_E2E=1 skips everything; HLFS_E2E_SERVER and HLFS_BIN
// pick the server; HLFS_PYTHON a python3 that can import nbd (default: the
// first of python3 on PATH and /usr/bin/python3 that can); HLFS_GUEST_KERNEL a
// vmlinuz (default the newest /boot/vmlinuz-*); HLFS_GUEST_REBUILD=1 rebuilds
// the cached initramfs; HLFS_GUEST_TIMEOUT bounds a boot (default 180s);
// HLFS_GUEST_ACCEL overrides accel=tcg (e.g. kvm); HLFS_GUEST_VERBOSE=1 logs
// every guest console.
//
// Nothing here is safe for concurrent use by parallel tests, and the tests are
// serial by design: a TCG guest and the server already saturate two cores.
package e2e
