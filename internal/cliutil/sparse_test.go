package cliutil

import (
	"os"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
)

func TestNextData(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "sparse"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	const mib = 1 << 20
	const size = 16 * mib
	data := make([]byte, mib)
	for i := range data {
		data[i] = 0xa5
	}
	for _, off := range []int64{2 * mib, 9 * mib} {
		if _, err := f.WriteAt(data, off); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}

	// Walk all data runs: whatever the file system reports, the runs must
	// cover both written ranges and stay inside the file.
	var runs [][2]int64
	for off := int64(0); off < size; {
		start, end, err := NextData(f, off, size)
		if err != nil {
			t.Fatal(err)
		}
		if start < off || end > size || (start < size && end <= start) {
			t.Fatalf("NextData(%d) = [%d, %d)", off, start, end)
		}
		if start == size {
			break
		}
		runs = append(runs, [2]int64{start, end})
		off = end
	}
	covered := func(a, b int64) bool {
		for _, r := range runs {
			if r[0] <= a && b <= r[1] {
				return true
			}
		}
		return false
	}
	if !covered(2*mib, 3*mib) || !covered(9*mib, 10*mib) {
		t.Fatalf("data runs %v miss written ranges", runs)
	}

	// Where holes are supported (Linux on a file system that keeps this file
	// sparse), the hole between the runs must be skipped.
	var st syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
		t.Fatal(err)
	}
	if runtime.GOOS == "linux" && st.Blocks*512 < size/2 {
		if covered(5*mib, 6*mib) {
			t.Errorf("data runs %v include the hole at 5 MiB", runs)
		}
		start, end, err := NextData(f, 10*mib, size)
		if err != nil || start != size || end != size {
			t.Errorf("NextData(10 MiB) = %d, %d, %v; want end of file", start, end, err)
		}
	}

	if start, end, err := NextData(f, size, size); err != nil || start != size || end != size {
		t.Errorf("NextData(size) = %d, %d, %v", start, end, err)
	}
}
