package segment

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/stretchr/testify/require"
)

// sealed encodes a record as Append does and seals it for segment seq.
func sealed(dst []byte, seq uint64, h Header, payload []byte) []byte {
	start := len(dst)
	dst = Append(dst, h, payload)
	Seal(dst[start:], seq)
	return dst
}

// TestSealRoundTrip: every record type sealed for a segment decodes as
// version 4 in that segment only, with its layout unchanged; sealing again
// for another segment moves it there.
func TestSealRoundTrip(t *testing.T) {
	big := make([]byte, 2*ChecksumBlock+7)
	for i := range big {
		big[i] = byte(i * 13)
	}
	cases := []struct {
		name    string
		h       Header
		payload []byte
	}{
		{"data", Header{Type: TypeData, Addr: 4096, LogicalLen: 5}, []byte("hello")},
		{"data of three blocks", Header{Type: TypeData, Addr: 1 << 20, LogicalLen: uint32(len(big))}, big},
		{"compressed", Header{Type: TypeData, Flags: FlagSnappy, Addr: 1, LogicalLen: 100}, []byte{1, 2, 3}},
		{"copy", Header{Type: TypeCopy, Addr: 8192, LogicalLen: 4}, []byte("copy")},
		{"hole", Header{Type: TypeHole, Addr: 1 << 40, LogicalLen: 1 << 30}, nil},
		{"meta", Header{Type: TypeMeta}, []byte{1, 0, 0, 0, 7}},
	}
	const seq = 0x0102030405060708
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			plain := Append(nil, tc.h, tc.payload)
			b := bytes.Clone(plain)
			Seal(b, seq)
			require.Len(t, b, len(plain), "sealing keeps the layout")
			require.Equal(t, plain[5:24], b[5:24], "only the version byte, the seq hint and the checksum change")
			require.Equal(t, uint32(seq&0xffffffff), binary.LittleEndian.Uint32(b[24:]), "the seq hint")
			require.Equal(t, plain[32:], b[32:])
			h, p, err := Decode(b, seq)
			require.NoError(t, err)
			want := tc.h
			want.Version, want.PayloadLen = VersionSeeded, uint32(len(tc.payload))
			require.Equal(t, want, h)
			require.Equal(t, h.RecordLen(), len(b))
			require.Equal(t, string(tc.payload), string(p))
			for _, other := range []uint64{0, seq - 1, seq + 1, seq ^ 1<<63} {
				_, _, err := Decode(b, other)
				require.ErrorIs(t, err, ErrCorrupt, "seq %#x", other)
			}
			again := bytes.Clone(b)
			Seal(again, seq+1)
			_, _, err = Decode(again, seq+1)
			require.NoError(t, err, "a sealed record sealed again for another segment")
			_, _, err = Decode(again, seq)
			require.ErrorIs(t, err, ErrCorrupt)
			Seal(again, seq)
			require.Equal(t, b, again)
		})
	}
	t.Run("segment header", func(t *testing.T) {
		sh := SegmentHeader{VolumeUID: 0xabc, Seq: 9, Epoch: 3, PrevSeq: 8, PrevEnd: 4242, Created: 99}
		b := AppendSegmentHeader(nil, sh)
		Seal(b, 9)
		got, err := DecodeSegmentHeader(b, 9)
		require.NoError(t, err)
		require.Equal(t, sh, got)
		h, err := DecodeHeader(b)
		require.NoError(t, err)
		require.EqualValues(t, VersionSeeded, h.Version, "the cleaner reads the version with DecodeHeader")
		for _, other := range []uint64{8, 10} {
			_, err := DecodeSegmentHeader(b, other)
			require.ErrorIs(t, err, ErrCorrupt, "a header read as segment %d's", other)
		}
	})
}

func TestSealDamage(t *testing.T) {
	good := sealed(nil, 5, Header{Type: TypeData, Addr: 8, LogicalLen: 4}, []byte("abcd"))
	for i := range good {
		b := bytes.Clone(good)
		b[i] ^= 0x01
		_, _, err := Decode(b, 5)
		require.Error(t, err, "flipped byte %d", i)
	}
	for n := 0; n < len(good); n++ {
		_, _, err := Decode(good[:n], 5)
		require.ErrorIs(t, err, ErrTorn, "cut at %d", n)
	}
}

// TestSealRefusesOtherEncodings: Seal takes only what Append produces (or
// a sealed record): anything else is a bug of the caller.
func TestSealRefusesOtherEncodings(t *testing.T) {
	data := Append(nil, Header{Type: TypeData, Addr: 8, LogicalLen: 4}, []byte("abcd"))
	for name, b := range map[string][]byte{
		"short":             data[:HeaderSize-1],
		"no magic":          append([]byte{0}, data[1:]...),
		"version 1 data":    appendOld(nil, 1, Header{Type: TypeData, Addr: 8, LogicalLen: 4}, []byte("abcd")),
		"version 2 copy":    appendOld(nil, 2, Header{Type: TypeCopy, Addr: 8, LogicalLen: 4}, []byte("abcd")),
		"two records":       Append(bytes.Clone(data), Header{Type: TypeHole, LogicalLen: 1}, nil),
		"cut before sums":   data[:len(data)-4],
		"version 3 of hole": func() []byte { b := Append(nil, Header{Type: TypeHole, LogicalLen: 1}, nil); b[4] = 3; return b }(),
	} {
		require.Panics(t, func() { Seal(bytes.Clone(b), 1) }, name)
	}
}

// TestOldVersionsIgnoreSeq: records of versions 1 to 3 are not seeded: they
// decode in any segment, as they did.
func TestOldVersionsIgnoreSeq(t *testing.T) {
	recs := map[string][]byte{
		"v1 data":   appendOld(nil, 1, Header{Type: TypeData, Addr: 4096, LogicalLen: 3}, []byte("abc")),
		"v2 copy":   appendOld(nil, 2, Header{Type: TypeCopy, Addr: 4096, LogicalLen: 3}, []byte("abc")),
		"v3 data":   Append(nil, Header{Type: TypeData, Addr: 4096, LogicalLen: 3}, []byte("abc")),
		"v1 hole":   Append(nil, Header{Type: TypeHole, Addr: 4096, LogicalLen: 3}, nil),
		"v1 header": AppendSegmentHeader(nil, SegmentHeader{Seq: 3}),
	}
	for name, b := range recs {
		for _, seq := range []uint64{0, 1, 3, 1 << 63} {
			h, _, err := Decode(b, seq)
			require.NoError(t, err, "%s in segment %d", name, seq)
			require.Less(t, h.Version, uint8(VersionSeeded))
		}
	}
	sh, err := DecodeSegmentHeader(recs["v1 header"], 4)
	require.NoError(t, err, "an unseeded header decodes; the caller compares its seq")
	require.EqualValues(t, 3, sh.Seq)
}

// TestStaleTail is what a reused segment file holds after a crash: the new
// segment's records (seq n), then bytes of the segment the file held
// before (seq m). The stale records, though valid in their own segment,
// end the scan like a torn tail, and do not count as valid records after
// it; a stale header at offset 0 is no header of segment n.
func TestStaleTail(t *testing.T) {
	const n, m = 12, 5
	old := AppendSegmentHeader(nil, SegmentHeader{VolumeUID: 1, Seq: m})
	Seal(old, m)
	for i := range 6 {
		old = sealed(old, m, Header{Type: TypeData, Addr: uint64(i) * 4096, LogicalLen: 5}, []byte("stale"))
	}
	old = sealed(old, m, Header{Type: TypeHole, Addr: 1 << 20, LogicalLen: 4096}, nil)
	sc := NewScanner(old, SegmentHeaderLen, m)
	for sc.Next() {
	}
	require.NoError(t, sc.Err(), "the old segment is valid as segment m")

	cur := AppendSegmentHeader(nil, SegmentHeader{VolumeUID: 1, Seq: n, PrevSeq: n - 1})
	Seal(cur, n)
	for i := range 2 {
		cur = sealed(cur, n, Header{Type: TypeData, Addr: uint64(i) * 512, LogicalLen: 3}, []byte("new"))
	}
	end := len(cur)
	recLen := HeaderSize + 5 + 4
	for name, tail := range map[string][]byte{
		"at a record boundary":  old[SegmentHeaderLen+recLen:],
		"inside a record":       old[SegmentHeaderLen+recLen+7:],
		"a whole stale segment": old,
	} {
		buf := append(bytes.Clone(cur), tail...)
		sc := NewScanner(buf, SegmentHeaderLen, n)
		k := 0
		for sc.Next() {
			require.Equal(t, "new", string(sc.Payload()), name)
			k++
		}
		require.Equal(t, 2, k, name)
		require.Equal(t, end, sc.Offset(), name)
		require.Error(t, sc.Err(), name)
		require.False(t, ValidRecordAfter(buf, end, n), "%s: nothing valid for segment n after the end", name)
		require.True(t, ValidRecordAfter(buf, end, m), "%s: the stale records are valid in segment m", name)
	}
	// A record boundary: the first stale record fails its checksum.
	buf := append(bytes.Clone(cur), old[SegmentHeaderLen:]...)
	sc = NewScanner(buf, SegmentHeaderLen, n)
	for sc.Next() {
	}
	require.ErrorIs(t, sc.Err(), ErrCorrupt)
	require.Equal(t, end, sc.Offset())

	// The crash came before the new header reached the disk: the file
	// still starts with the stale segment.
	_, err := DecodeSegmentHeader(old, n)
	require.ErrorIs(t, err, ErrCorrupt)
	require.False(t, ValidRecordAfter(old, -1, n))
	// The new header landed over the stale one and nothing after it.
	buf = append(bytes.Clone(cur[:SegmentHeaderLen]), old[SegmentHeaderLen:]...)
	_, err = DecodeSegmentHeader(buf, n)
	require.NoError(t, err)
	require.False(t, ValidRecordAfter(buf, SegmentHeaderLen-1, n))
}

// TestStaleSeq: a sealed record names the earlier segment it belongs to
// through its seq hint, across a wrap of the hint's 32 bits; records of
// this or a later segment, unsealed ones and damaged ones are not stale.
func TestStaleSeq(t *testing.T) {
	rec := func(seq uint64) []byte {
		b := Append(nil, Header{Type: TypeData, Addr: 4096, LogicalLen: 5}, []byte("stale"))
		Seal(b, seq)
		return b
	}
	for _, tc := range []struct {
		recSeq, seq uint64
		stale       bool
	}{
		{5, 12, true}, {1<<32 + 5, 1<<32 + 9, true}, {1<<32 - 1, 1<<32 + 2, true}, {5, 1<<32 + 9, false},
		{12, 12, false}, {13, 12, false}, {7, 3, false},
	} {
		got, ok := StaleSeq(rec(tc.recSeq), tc.seq)
		require.Equal(t, tc.stale, ok, "record of %d in segment %d", tc.recSeq, tc.seq)
		if ok {
			require.Equal(t, tc.recSeq, got)
		}
	}
	unsealed := Append(nil, Header{Type: TypeData, Addr: 4096, LogicalLen: 5}, []byte("stale"))
	_, ok := StaleSeq(unsealed, 12)
	require.False(t, ok, "an unseeded record names no segment")
	damaged := rec(5)
	damaged[HeaderSize] ^= 1 // the payload: its block checksum fails, the header's does not cover it
	damaged[16] ^= 1         // the logical length: the header checksum fails
	_, ok = StaleSeq(damaged, 12)
	require.False(t, ok)
	_, ok = StaleSeq(rec(5)[:HeaderSize+2], 12)
	require.False(t, ok, "a cut record")
}

// TestSplitRecordEqualsWhole: a data or copy record encoded without its
// payload (AppendSplit) and sealed in parts (SealSplit) is, laid out as
// header, payload, checksums, byte for byte the record Append and Seal
// make; the other types are refused.
func TestSplitRecordEqualsWhole(t *testing.T) {
	payload := bytes.Repeat([]byte("0123456789abcdef"), 600) // three checksum blocks
	for _, h := range []Header{
		{Type: TypeData, Addr: 8192, LogicalLen: uint32(len(payload))},
		{Type: TypeCopy, Addr: 4096, LogicalLen: uint32(len(payload))},
		{Type: TypeData, Flags: FlagSnappy, Addr: 0, LogicalLen: 65536},
	} {
		whole := Append(nil, h, payload)
		Seal(whole, 77)
		split := AppendSplit([]byte("prefix"), h, payload)[len("prefix"):]
		require.Len(t, split, len(whole)-len(payload))
		hdr, sums := split[:HeaderSize], split[HeaderSize:]
		SealSplit(hdr, sums, 77)
		got := append(append(append([]byte(nil), hdr...), payload...), sums...)
		require.Equal(t, whole, got)
		_, p, err := Decode(got, 77)
		require.NoError(t, err)
		require.Equal(t, payload, p)
	}
	require.Panics(t, func() { AppendSplit(nil, Header{Type: TypeHole, LogicalLen: 1}, nil) })
	hole := Append(nil, Header{Type: TypeHole, LogicalLen: 1}, nil)
	require.Panics(t, func() { SealSplit(hole[:HeaderSize], nil, 1) })
	data := AppendSplit(nil, Header{Type: TypeData, LogicalLen: 5}, []byte("hello"))
	require.Panics(t, func() { SealSplit(data[:HeaderSize], nil, 1) }, "checksums of the wrong length")
}
