package segment

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestRecordRoundTrip(t *testing.T) {
	cases := []struct {
		name    string
		h       Header
		payload []byte
	}{
		{"data", Header{Type: TypeData, Addr: 4096, LogicalLen: 5}, []byte("hello")},
		{"compressed", Header{Type: TypeData, Flags: FlagSnappy, Addr: 1, LogicalLen: 100}, []byte{1, 2, 3}},
		{"hole", Header{Type: TypeHole, Addr: 1 << 40, LogicalLen: 1 << 30}, nil},
		{"meta", Header{Type: TypeMeta}, []byte{1, 0, 0, 0, 7}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := Append(nil, tc.h, tc.payload)
			tc.h.PayloadLen, tc.h.Version = uint32(len(tc.payload)), VersionOf(tc.h.Type)
			require.Len(t, b, tc.h.RecordLen())
			if tc.h.Type == TypeData {
				require.Len(t, b, HeaderSize+len(tc.payload)+4, "one block checksum")
			}
			h, p, err := Decode(b, 1)
			require.NoError(t, err)
			require.Equal(t, tc.h, h)
			require.Equal(t, tc.payload, append([]byte(nil), p...)[:len(tc.payload)])
		})
	}
}

func TestDecodeRejectsDamage(t *testing.T) {
	good := Append(nil, Header{Type: TypeData, Addr: 8, LogicalLen: 4}, []byte("abcd"))
	for i := range good {
		b := append([]byte(nil), good...)
		b[i] ^= 0x01
		_, _, err := Decode(b, 1)
		require.Error(t, err, "flipped byte %d", i)
	}
	for n := 0; n < len(good); n++ {
		_, _, err := Decode(good[:n], 1)
		require.True(t, errors.Is(err, ErrTorn), "cut at %d: %v", n, err)
	}
	newer := append([]byte(nil), good...)
	newer[4] = Version + 1
	_, _, err := Decode(newer, 1)
	require.ErrorIs(t, err, ErrNewerVersion)
}

func TestSegmentHeaderRoundTrip(t *testing.T) {
	sh := SegmentHeader{VolumeUID: 0xabc, Seq: 7, Epoch: 3, PrevSeq: 6, PrevEnd: 12345, Created: 99}
	b := AppendSegmentHeader(nil, sh)
	require.Len(t, b, SegmentHeaderLen)
	got, err := DecodeSegmentHeader(b, 7)
	require.NoError(t, err)
	require.Equal(t, sh, got)
	_, err = DecodeSegmentHeader(Append(nil, Header{Type: TypeHole, LogicalLen: 1}, nil), 7)
	require.ErrorIs(t, err, ErrCorrupt)
}

func TestScannerAndValidRecordAfter(t *testing.T) {
	var buf []byte
	buf = AppendSegmentHeader(buf, SegmentHeader{Seq: 1})
	for i := 0; i < 3; i++ {
		buf = Append(buf, Header{Type: TypeData, Addr: uint64(i) * 10, LogicalLen: 3}, []byte("xyz"))
	}
	sc := NewScanner(buf, SegmentHeaderLen, 1)
	n := 0
	for sc.Next() {
		require.EqualValues(t, n*10, sc.Header().Addr)
		n++
	}
	require.NoError(t, sc.Err())
	require.Equal(t, 3, n)

	torn := buf[:len(buf)-2]
	sc = NewScanner(torn, SegmentHeaderLen, 1)
	for sc.Next() {
	}
	require.ErrorIs(t, sc.Err(), ErrTorn)
	require.False(t, ValidRecordAfter(torn, sc.Offset(), 1))

	mid := append([]byte(nil), buf...)
	second := SegmentHeaderLen + HeaderSize + 3 + 4
	mid[second+30] ^= 1 // damage the second record's checksum
	sc = NewScanner(mid, SegmentHeaderLen, 1)
	for sc.Next() {
	}
	require.ErrorIs(t, sc.Err(), ErrCorrupt)
	require.Equal(t, second, sc.Offset())
	require.True(t, ValidRecordAfter(mid, sc.Offset(), 1), "the third record is intact")
}

// FuzzDecode feeds arbitrary bytes to the decoder and scanner: no panics,
// and whatever decodes re-encodes to the same bytes.
func FuzzDecode(f *testing.F) {
	seeds, _ := filepath.Glob("../testdata/segment/*")
	for _, s := range seeds {
		b, err := os.ReadFile(s)
		if err == nil {
			f.Add(b)
		}
	}
	f.Add(Append(nil, Header{Type: TypeData, Addr: 1, LogicalLen: 2}, []byte("hi")))
	f.Add(AppendSegmentHeader(nil, SegmentHeader{Seq: 1}))
	sealed := Append(nil, Header{Type: TypeData, Addr: 1, LogicalLen: 2}, []byte("hi"))
	Seal(sealed, 7)
	f.Add(sealed)
	sealedHdr := AppendSegmentHeader(nil, SegmentHeader{Seq: 7})
	Seal(sealedHdr, 7)
	f.Add(sealedHdr)
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, seq := range []uint64{0, 1, 7} {
			h, p, err := Decode(b, seq)
			if err == nil && (h.Version == VersionOf(h.Type) || h.Version == VersionSeeded) {
				again := Append(nil, h, p)
				if h.Version == VersionSeeded {
					Seal(again, seq)
				}
				if !bytes.Equal(again, b[:h.RecordLen()]) {
					t.Fatalf("re-encoding differs")
				}
			}
			sc := NewScanner(b, 0, seq)
			for sc.Next() {
			}
			_ = ValidRecordAfter(b, 0, seq)
			_, _ = DecodeSegmentHeader(b, seq)
		}
	})
}

// appendOld encodes a record as versions 1 and 2 did: no block checksums,
// one CRC over header and payload.
func appendOld(dst []byte, version uint8, h Header, payload []byte) []byte {
	start := len(dst)
	dst = append(dst, make([]byte, HeaderSize)...)
	hdr := dst[start:]
	binary.LittleEndian.PutUint32(hdr[0:], Magic)
	hdr[4], hdr[5], hdr[6] = version, byte(h.Type), h.Flags
	binary.LittleEndian.PutUint64(hdr[8:], h.Addr)
	binary.LittleEndian.PutUint32(hdr[16:], h.LogicalLen)
	binary.LittleEndian.PutUint32(hdr[20:], uint32(len(payload)))
	crc := crc32.Update(0, castagnoli, hdr[:28])
	binary.LittleEndian.PutUint32(hdr[28:], crc32.Update(crc, castagnoli, payload))
	return append(dst, payload...)
}

// TestBlockChecksums: a version 3 data record carries one CRC-32C per 4 KiB
// of payload after it; a flipped byte anywhere in the record fails Decode,
// and VerifyBlocks names the block of the payload that was hit. Records of
// versions 1 and 2 still decode.
func TestBlockChecksums(t *testing.T) {
	payload := make([]byte, 3*ChecksumBlock+100)
	for i := range payload {
		payload[i] = byte(i * 7)
	}
	b := Append(nil, Header{Type: TypeData, Addr: 8192, LogicalLen: uint32(len(payload))}, payload)
	require.Len(t, b, HeaderSize+len(payload)+4*4)
	h, p, err := Decode(b, 1)
	require.NoError(t, err)
	require.True(t, h.HasBlockSums())
	require.Equal(t, payload, p)
	sums := b[HeaderSize+len(payload):]
	for _, off := range []int{0, 5, 28, HeaderSize, HeaderSize + ChecksumBlock + 9, HeaderSize + 3*ChecksumBlock + 99, len(b) - 1, len(b) - 16} {
		bad := bytes.Clone(b)
		bad[off] ^= 0x20
		_, _, err := Decode(bad, 1)
		require.Error(t, err, "flipped byte %d", off)
		if off >= HeaderSize && off < HeaderSize+len(payload) {
			block := (off - HeaderSize) / ChecksumBlock
			require.Equal(t, block, VerifyBlocks(bad[HeaderSize:HeaderSize+len(payload)], sums), "flipped byte %d", off)
			// A read of the other blocks alone verifies.
			for i := 0; i < 4; i++ {
				lo, hi := i*ChecksumBlock, min((i+1)*ChecksumBlock, len(payload))
				got := VerifyBlocks(bad[HeaderSize+lo:HeaderSize+hi], sums[4*i:4*i+4])
				if i == block {
					require.Equal(t, 0, got)
				} else {
					require.Equal(t, -1, got)
				}
			}
		}
	}
	for _, v := range []uint8{1, 2} {
		typ := TypeData
		if v == 2 {
			typ = TypeCopy
		}
		old := appendOld(nil, v, Header{Type: typ, Addr: 4096, LogicalLen: uint32(len(payload))}, payload)
		h, p, err := Decode(old, 1)
		require.NoError(t, err, "version %d", v)
		require.False(t, h.HasBlockSums())
		require.Equal(t, HeaderSize+len(payload), h.RecordLen())
		require.Equal(t, payload, p)
		old[HeaderSize+10] ^= 1
		_, _, err = Decode(old, 1)
		require.ErrorIs(t, err, ErrCorrupt, "version %d", v)
	}
}
