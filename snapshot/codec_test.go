package snapshot

import (
	"encoding/binary"
	"encoding/hex"
	"hash/crc32"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hlfs/hlfs/segment"
	"github.com/stretchr/testify/require"
)

// encodeTreeV1 encodes t in the version 1 table layout, written here from
// the layout comment of Tree.Encode: no generation in the entries and no
// last rollback position before the CRC.
func encodeTreeV1(t *Tree) []byte {
	b := make([]byte, 12)
	binary.LittleEndian.PutUint32(b[0:], uint32(t.head))
	binary.LittleEndian.PutUint32(b[4:], uint32(t.next))
	binary.LittleEndian.PutUint32(b[8:], uint32(len(t.nodes)))
	for _, n := range t.nodes {
		b = binary.LittleEndian.AppendUint32(b, uint32(n.ID))
		b = binary.LittleEndian.AppendUint32(b, uint32(n.Parent))
		b = binary.LittleEndian.AppendUint64(b, uint64(n.Created.UnixNano()))
		b = binary.LittleEndian.AppendUint64(b, n.Pos.Seq)
		b = binary.LittleEndian.AppendUint64(b, uint64(n.Pos.Off))
		b = binary.LittleEndian.AppendUint16(b, uint16(len(n.Name)))
		b = append(b, n.Name...)
	}
	return withCRC(b)
}

// withCRC appends the CRC-32C of b.
func withCRC(b []byte) []byte {
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, crc32.MakeTable(crc32.Castagnoli)))
}

// recrc replaces the trailing CRC-32C of b with one over the rest.
func recrc(b []byte) []byte { return withCRC(append([]byte(nil), b[:len(b)-4]...)) }

// requireSameTree compares two trees by their state (a tree whose nodes
// were all deleted and a decoded empty one differ only in a nil slice).
func requireSameTree(t testing.TB, want, got *Tree, msgAndArgs ...any) {
	t.Helper()
	require.Equal(t, want.Head(), got.Head(), msgAndArgs...)
	require.Equal(t, want.Next(), got.Next(), msgAndArgs...)
	require.Equal(t, want.LastRollback(), got.LastRollback(), msgAndArgs...)
	require.Equal(t, want.Len(), got.Len(), msgAndArgs...)
	if want.Len() > 0 {
		require.Equal(t, want.Nodes(), got.Nodes(), msgAndArgs...)
	}
}

func TestOpRoundTrip(t *testing.T) {
	for _, op := range []Op{
		{Kind: Create, ID: 1, Name: "s1", Created: at(0)},
		{Kind: Create, ID: math.MaxUint32 - 1, Parent: math.MaxUint32 - 2, Name: strings.Repeat("z", 128), Created: time.Unix(0, math.MinInt64).UTC()},
		{Kind: Create, ID: 7, Parent: 3, Name: "A.b_c-9", Created: time.Unix(0, -1).UTC()},
		{Kind: Delete, ID: 1},
		{Kind: Delete, ID: math.MaxUint32},
		{Kind: Rollback, ID: 42},
	} {
		t.Run(op.Kind.String(), func(t *testing.T) {
			b := EncodeOp(op)
			require.Len(t, b, opHeaderLen+len(op.Name))
			got, err := DecodeOp(b)
			require.NoError(t, err)
			require.Equal(t, op, got)
			rec := Record(op)
			h, p, err := segment.Decode(rec, 1) // as Append encodes it: not sealed yet
			require.NoError(t, err)
			require.Equal(t, segment.TypeMeta, h.Type)
			require.Equal(t, b, p[:h.PayloadLen])
		})
	}
}

// TestOpLayout pins the meta record payload byte for byte.
func TestOpLayout(t *testing.T) {
	created := time.Unix(0, 0x0102030405060708).UTC()
	require.Equal(t,
		"01000000"+"0a000000"+"03000000"+"00000000"+"0807060504030201"+"0200"+hex.EncodeToString([]byte("s1")),
		hex.EncodeToString(EncodeOp(Op{Kind: Create, ID: 10, Parent: 3, Name: "s1", Created: created})))
	require.Equal(t,
		"02000000"+"0a000000"+"00000000"+"00000000"+"0000000000000000"+"0000",
		hex.EncodeToString(EncodeOp(Op{Kind: Delete, ID: 10, Created: created})), "a delete carries no time")
	require.Equal(t,
		"03000000"+"0b000000"+"00000000"+"00000000"+"0000000000000000"+"0000",
		hex.EncodeToString(EncodeOp(Op{Kind: Rollback, ID: 11})))
}

func TestDecodeOpRejects(t *testing.T) {
	good := EncodeOp(Op{Kind: Create, ID: 2, Parent: 1, Name: "s2", Created: at(0)})
	withLen := func(b []byte, n uint16) []byte {
		b = append([]byte(nil), b...)
		binary.LittleEndian.PutUint16(b[24:], n)
		return b
	}
	kind := func(k byte, b []byte) []byte {
		b = append([]byte(nil), b...)
		b[0] = k
		return b
	}
	cases := map[string][]byte{
		"empty":                        nil,
		"one byte":                     {1},
		"header short by one":          good[:opHeaderLen-1],
		"name cut":                     good[:len(good)-1],
		"a byte after the name":        append(append([]byte(nil), good...), 'x'),
		"name length too large":        withLen(good, 3),
		"name length zero with a name": withLen(good, 0),
		"kind 0":                       kind(0, EncodeOp(Op{Kind: Delete, ID: 1})),
		"kind 4":                       kind(4, EncodeOp(Op{Kind: Delete, ID: 1})),
		"kind 255 shaped as a create":  kind(255, good),
		"create without a name":        EncodeOp(Op{Kind: Create, ID: 2, Parent: 1}),
		"create with a bad name":       EncodeOp(Op{Kind: Create, ID: 2, Name: "a b"}),
		"create with a long name":      EncodeOp(Op{Kind: Create, ID: 2, Name: strings.Repeat("n", 129)}),
		"create with id 0":             EncodeOp(Op{Kind: Create, ID: 0, Name: "s"}),
		"delete with a name":           EncodeOp(Op{Kind: Delete, ID: 2, Name: "s2"}),
		"delete with id 0":             EncodeOp(Op{Kind: Delete, ID: 0}),
		"rollback with a name":         EncodeOp(Op{Kind: Rollback, ID: 2, Name: "s2"}),
		"rollback with id 0":           EncodeOp(Op{Kind: Rollback}),
	}
	for name, b := range cases {
		t.Run(name, func(t *testing.T) {
			op, err := DecodeOp(b)
			require.ErrorIs(t, err, ErrCorrupt)
			require.Equal(t, Op{}, op)
		})
	}
}

func TestTreeRoundTrip(t *testing.T) {
	deletedAll := build(t, create(1, 0, "s1"), create(2, 1, "s2"), rollback(1), del(2), del(1))
	for name, tr := range map[string]*Tree{
		"new":         New(),
		"zero":        {},
		"sample":      sampleTree(t),
		"all deleted": deletedAll,
		"extremes": {next: math.MaxUint32, head: math.MaxUint32 - 1, rollback: segment.Pos{Seq: math.MaxUint64, Off: math.MaxInt64},
			nodes: []Node{
				{ID: 1, Name: strings.Repeat("a", 128), Created: time.Unix(0, math.MinInt64).UTC(), Pos: segment.Pos{Seq: math.MaxUint64, Off: -1}, Gen: math.MaxUint32},
				{ID: math.MaxUint32 - 1, Parent: 1, Name: "b", Created: time.Unix(0, math.MaxInt64).UTC()},
			}},
	} {
		t.Run(name, func(t *testing.T) {
			require.NoError(t, tr.Check())
			b := tr.Encode()
			require.Len(t, b, 12+16+4+38*tr.Len()+nameBytes(tr))
			got, err := DecodeTree(b, TreeVersion)
			require.NoError(t, err)
			requireSameTree(t, tr, got)
			require.Equal(t, b, got.Encode())
		})
	}
	require.Equal(t, ID(0), (&Tree{}).Next())
	empty, err := DecodeTree((&Tree{}).Encode(), TreeVersion)
	require.NoError(t, err)
	require.Equal(t, &Tree{}, empty, "the zero Tree (a map object's table) round-trips")
}

func nameBytes(t *Tree) int {
	n := 0
	for _, s := range t.nodes {
		n += len(s.Name)
	}
	return n
}

// TestTreeLayout pins the version 2 table of a one-snapshot tree.
func TestTreeLayout(t *testing.T) {
	tr := &Tree{next: 3, head: 2, rollback: segment.Pos{Seq: 5, Off: 6},
		nodes: []Node{{ID: 2, Name: "ab", Created: time.Unix(0, 0x1122).UTC(), Pos: segment.Pos{Seq: 7, Off: 8}, Gen: 9}}}
	body := "02000000" + "03000000" + "01000000" +
		"02000000" + "00000000" + "2211000000000000" + "0700000000000000" + "0800000000000000" + "09000000" + "0200" + "6162" +
		"0500000000000000" + "0600000000000000"
	raw, err := hex.DecodeString(body)
	require.NoError(t, err)
	require.Equal(t, hex.EncodeToString(withCRC(raw)), hex.EncodeToString(tr.Encode()))
}

// TestDecodeTreeV1: the version 1 layout decodes, without generations or a
// last rollback.
func TestDecodeTreeV1(t *testing.T) {
	tr := sampleTree(t)
	got, err := DecodeTree(encodeTreeV1(tr), 1)
	require.NoError(t, err)
	want := tr.Clone()
	want.rollback = segment.Pos{}
	for i := range want.nodes {
		want.nodes[i].Gen = 0
	}
	requireSameTree(t, want, got)
	require.NoError(t, got.Check())
	empty, err := DecodeTree(encodeTreeV1(New()), 1)
	require.NoError(t, err)
	requireSameTree(t, New(), empty)

	// Each layout is refused as the other.
	_, err = DecodeTree(encodeTreeV1(tr), 2)
	require.ErrorIs(t, err, ErrCorrupt)
	_, err = DecodeTree(tr.Encode(), 1)
	require.ErrorIs(t, err, ErrCorrupt)
}

// ckptTable returns the snapshot table section of a checkpoint object (the
// layout in lfs/checkpoint.go) and the checkpoint's version.
func ckptTable(b []byte) ([]byte, uint16, bool) {
	const headerLen, extentLen = 64, 32
	if len(b) < headerLen {
		return nil, 0, false
	}
	ver := binary.LittleEndian.Uint16(b[4:])
	n := binary.LittleEndian.Uint64(b[32:])
	off := uint64(headerLen)
	if n > uint64(len(b))/extentLen {
		return nil, 0, false
	}
	off += n*extentLen + 4
	if ver >= 2 { // space books: exact u8, count u32, count × 16 bytes, CRC
		if off+5 > uint64(len(b)) {
			return nil, 0, false
		}
		k := uint64(binary.LittleEndian.Uint32(b[off+1:]))
		off += 9 + 16*k
	}
	if off > uint64(len(b)) {
		return nil, 0, false
	}
	return b[off:], ver, true
}

// storeCkpts are the checkpoints of lfs's format 1 store (written by hlfs
// before map generations).
var storeCkpts, _ = filepath.Glob(filepath.Join("..", "lfs", "testdata", "v1store", "v1", "ckpt", "*"))

// TestDecodeTreeV1FromStore decodes the tables of checkpoints a format 1
// binary wrote: snapshot s1 of volume v1.
func TestDecodeTreeV1FromStore(t *testing.T) {
	if len(storeCkpts) == 0 {
		t.Skip("no lfs/testdata/v1store checkpoints")
	}
	for _, p := range storeCkpts {
		b, err := os.ReadFile(p)
		require.NoError(t, err)
		tab, ver, ok := ckptTable(b)
		require.True(t, ok, p)
		require.Equal(t, uint16(1), ver, p)
		tr, err := DecodeTree(tab, ver)
		require.NoError(t, err, p)
		require.Equal(t, ID(1), tr.Head())
		require.Equal(t, ID(2), tr.Next())
		require.Equal(t, segment.Pos{}, tr.LastRollback())
		require.Equal(t, []Node{{ID: 1, Name: "s1", Created: time.Unix(0, 0x18ea038473402bfd).UTC(), Pos: segment.Pos{Seq: 2, Off: 0x50}}}, tr.Nodes())
		require.Equal(t, tab, encodeTreeV1(tr), "the test's v1 encoder writes what format 1 wrote")
	}
}

func TestDecodeTreeRejects(t *testing.T) {
	tr := sampleTree(t)
	for _, ver := range []uint16{1, 2} {
		good := tr.Encode()
		if ver == 1 {
			good = encodeTreeV1(tr)
		}
		for i := range good {
			b := append([]byte(nil), good...)
			b[i] ^= 0x20
			_, err := DecodeTree(b, ver)
			require.ErrorIs(t, err, ErrCorrupt, "version %d, flipped byte %d", ver, i)
		}
		for n := 0; n < len(good); n++ {
			_, err := DecodeTree(good[:n], ver)
			require.ErrorIs(t, err, ErrCorrupt, "version %d, cut at %d", ver, n)
		}
		for n := 0; n < len(good)-4; n++ {
			_, err := DecodeTree(withCRC(append([]byte(nil), good[:n]...)), ver)
			require.ErrorIs(t, err, ErrCorrupt, "version %d, body cut at %d under a valid checksum", ver, n)
		}
		// Counts that disagree with the entries, under a valid checksum.
		for _, count := range []uint32{0, 3, 5, math.MaxUint32} {
			b := append([]byte(nil), good...)
			binary.LittleEndian.PutUint32(b[8:], count)
			_, err := DecodeTree(recrc(b), ver)
			require.ErrorIs(t, err, ErrCorrupt, "version %d, count %d", ver, count)
		}
		// A byte between the entries and the CRC (or the rollback tail).
		b := append([]byte(nil), good[:len(good)-4]...)
		_, err := DecodeTree(withCRC(append(b, 0)), ver)
		require.ErrorIs(t, err, ErrCorrupt, "version %d, a byte too many", ver)
	}
	for _, ver := range []uint16{TreeVersion + 1, math.MaxUint16} {
		_, err := DecodeTree(tr.Encode(), ver)
		require.ErrorIs(t, err, ErrNewerVersion, "version %d", ver)
	}
	_, err := DecodeTree(nil, 3)
	require.ErrorIs(t, err, ErrNewerVersion, "the version is checked first")
}
