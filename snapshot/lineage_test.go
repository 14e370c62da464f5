package snapshot

import (
	"encoding/binary"
	"testing"

	"github.com/stretchr/testify/require"
)

func cloneLineage() Lineage {
	return Lineage{Branch: 2, SourceBranch: 1, SourceSnap: 3, SourceName: "s3", SourceUID: 0xabcdef0123456789,
		Volumes: map[uint16]string{0: "vm1", 1: "c1", 2: "c2"}, Root: "vm1"}
}

// oldPlainLineage is PlainLineage(vol) encoded without the empty source
// snapshot name (the form written before the name was added).
func oldPlainLineage(vol string) []byte {
	b := PlainLineage(vol).Encode()
	return withCRC(append([]byte(nil), b[:len(b)-6]...))
}

func TestLineageRoundTrip(t *testing.T) {
	flattened := cloneLineage()
	flattened.SourceBranch, flattened.SourceName = NoBranch, ""
	for name, tc := range map[string]struct {
		l      Lineage
		source string
	}{
		"plain":     {PlainLineage("vm1"), ""},
		"clone":     {cloneLineage(), "c1"},
		"flattened": {flattened, ""},
		"clone of the root": {Lineage{Branch: 7, SourceBranch: 0, SourceSnap: 1, SourceName: "s1", Volumes: map[uint16]string{0: "vm1", 7: "c"}, Root: "vm1"},
			"vm1"},
	} {
		t.Run(name, func(t *testing.T) {
			b := tc.l.Encode()
			got, err := DecodeLineage(b)
			require.NoError(t, err)
			require.Equal(t, tc.l, got)
			require.Equal(t, tc.source, got.Source())
			require.Equal(t, b, got.Encode())
		})
	}
	require.Equal(t, Lineage{Branch: 0, SourceBranch: NoBranch, Volumes: map[uint16]string{0: "vm1"}, Root: "vm1"}, PlainLineage("vm1"))
}

// TestLineageLayout pins the clone lineage's bytes.
func TestLineageLayout(t *testing.T) {
	want := []byte("HLL1")
	want = append(want, 1, 0, 2, 0, 1, 0, 3, 0) // version, branch, source branch, count
	want = append(want, 3, 0, 0, 0)             // source snapshot id
	want = binary.LittleEndian.AppendUint64(want, 0xabcdef0123456789)
	for _, e := range []struct {
		id   uint16
		name string
	}{{0, "vm1"}, {1, "c1"}, {2, "c2"}} {
		want = binary.LittleEndian.AppendUint16(want, e.id)
		want = binary.LittleEndian.AppendUint16(want, uint16(len(e.name)))
		want = append(want, e.name...)
	}
	want = append(want, 3, 0, 'v', 'm', '1', 2, 0, 's', '3')
	require.Equal(t, withCRC(want), cloneLineage().Encode())
}

func TestDecodeLineageOldPlainForm(t *testing.T) {
	b := oldPlainLineage("vm1")
	require.Len(t, b, len(PlainLineage("vm1").Encode())-2)
	got, err := DecodeLineage(b)
	require.NoError(t, err)
	require.Equal(t, PlainLineage("vm1"), got)
}

func TestDecodeLineageRejects(t *testing.T) {
	good := cloneLineage().Encode()
	for i := range good {
		b := append([]byte(nil), good...)
		b[i] ^= 0x04
		_, err := DecodeLineage(b)
		require.ErrorIs(t, err, ErrCorrupt, "flipped byte %d", i)
	}
	for n := 0; n < len(good); n++ {
		_, err := DecodeLineage(good[:n])
		require.ErrorIs(t, err, ErrCorrupt, "cut at %d", n)
	}
	// set returns good with a u16 at off changed and a valid CRC.
	set := func(b []byte, off int, v uint16) []byte {
		b = append([]byte(nil), b...)
		binary.LittleEndian.PutUint16(b[off:], v)
		return recrc(b)
	}
	plain := PlainLineage("vm1").Encode()
	noOwn := cloneLineage()
	noOwn.Branch = 5
	noSource := cloneLineage()
	noSource.SourceBranch = 5
	badEntry := cloneLineage()
	badEntry.Volumes[1] = "a b"
	badRoot := cloneLineage()
	badRoot.Root = ""
	noSourceName := cloneLineage()
	noSourceName.SourceName = ""
	plainWithName := PlainLineage("vm1")
	plainWithName.SourceName = "s1"
	cases := map[string][]byte{
		"bad magic":                         recrc(append([]byte("HLL2"), good[4:]...)),
		"bad magic, bad checksum":           append([]byte("XLL1"), good[4:]...),
		"trailing byte":                     withCRC(append(append([]byte(nil), good[:len(good)-4]...), 0)),
		"trailing zero name after a clone":  withCRC(append(append([]byte(nil), good[:len(good)-4]...), 0, 0)),
		"plain with three trailing bytes":   withCRC(append(append([]byte(nil), plain[:len(plain)-4]...), 0)),
		"plain with a source name":          plainWithName.Encode(),
		"own branch missing":                noOwn.Encode(),
		"source branch missing":             noSource.Encode(),
		"bad entry name":                    badEntry.Encode(),
		"empty root name":                   badRoot.Encode(),
		"clone without its source name":     noSourceName.Encode(),
		"clone with its source name absent": withCRC(append([]byte(nil), good[:len(good)-8]...)),
		"count too large":                   set(good, 10, 4),
		"count too small":                   set(good, 10, 2),
		"count 0":                           set(good, 10, 0),
		"entry name length past the end":    set(good, 26, 200),
		"only a header":                     withCRC(append([]byte(nil), good[:24]...)),
	}
	for name, b := range cases {
		t.Run(name, func(t *testing.T) {
			l, err := DecodeLineage(b)
			require.ErrorIs(t, err, ErrCorrupt)
			require.NotErrorIs(t, err, ErrNewerVersion)
			require.Zero(t, l)
		})
	}
	for _, v := range []uint16{LineageVersion + 1, 0xffff} {
		l, err := DecodeLineage(set(good, 4, v))
		require.ErrorIs(t, err, ErrNewerVersion, "version %d", v)
		require.Zero(t, l)
	}
	_, err := DecodeLineage(set(good, 4, LineageVersion+1)[:len(good)-1])
	require.ErrorIs(t, err, ErrCorrupt, "the checksum is checked before the version")
}
