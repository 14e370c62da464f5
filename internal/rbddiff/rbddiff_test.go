package rbddiff

import (
	"bytes"
	"encoding/binary"
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

var update = flag.Bool("update", false, "rewrite testdata/rbddiff from the encoder")

// le builds little-endian fields by hand, independent of the encoder.
func le(parts ...any) []byte {
	var b []byte
	for _, p := range parts {
		switch v := p.(type) {
		case string:
			b = append(b, v...)
		case byte:
			b = append(b, v)
		case uint32:
			b = binary.LittleEndian.AppendUint32(b, v)
		case uint64:
			b = binary.LittleEndian.AppendUint64(b, v)
		case []byte:
			b = append(b, v...)
		}
	}
	return b
}

// pinnedV2 is the documented v2 layout of a diff from s1 to s2 of a 1 MiB
// image: a 3-byte write at 4096 and a 512-byte zero at 8192.
func pinnedV2() []byte {
	return le("rbd diff v2\n",
		byte('f'), uint64(6), uint32(2), "s1",
		byte('t'), uint64(6), uint32(2), "s2",
		byte('p'), uint64(1), byte(0),
		byte('s'), uint64(8), uint64(1<<20),
		byte('w'), uint64(19), uint64(4096), uint64(3), "abc",
		byte('z'), uint64(16), uint64(8192), uint64(512),
		byte('e'))
}

// pinnedV1 is the same diff in v1 (what `rbd export-diff` writes).
func pinnedV1() []byte {
	return le("rbd diff v1\n",
		byte('f'), uint32(2), "s1",
		byte('t'), uint32(2), "s2",
		byte('s'), uint64(1<<20),
		byte('w'), uint64(4096), uint64(3), "abc",
		byte('z'), uint64(8192), uint64(512),
		byte('e'))
}

func encode(t *testing.T, version int) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := NewWriter(&buf, Header{Version: version, From: "s1", To: "s2", Size: 1 << 20})
	require.NoError(t, err)
	require.NoError(t, w.Write(4096, []byte("abc")))
	require.NoError(t, w.Zero(8192, 512))
	require.NoError(t, w.Close())
	require.ErrorIs(t, w.Write(0, nil), ErrClosed)
	return buf.Bytes()
}

// TestPinnedLayouts checks the encoder against the layouts written out by
// hand from Ceph's documentation, and keeps them as fuzz seeds.
func TestPinnedLayouts(t *testing.T) {
	for _, tt := range []struct {
		version int
		want    []byte
		file    string
	}{{2, pinnedV2(), "diff-v2.bin"}, {1, pinnedV1(), "diff-v1.bin"}} {
		got := encode(t, tt.version)
		require.Equal(t, tt.want, got, "version %d", tt.version)
		path := filepath.Join("..", "..", "testdata", "rbddiff", tt.file)
		if *update {
			require.NoError(t, os.WriteFile(path, got, 0o644))
		}
		disk, err := os.ReadFile(path)
		require.NoError(t, err)
		require.Equal(t, got, disk, "%s differs from the encoder (go test -update)", path)
	}
}

// decodeAll reads a whole stream: header, records with their data.
func decodeAll(b []byte) (Header, []Record, [][]byte, error) {
	r, err := NewReader(bytes.NewReader(b))
	if err != nil {
		return Header{}, nil, nil, err
	}
	var recs []Record
	var datas [][]byte
	for {
		rec, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return r.Header(), recs, datas, err
		}
		var d []byte
		if rec.Kind == Write {
			d, err = io.ReadAll(readerFunc(r.Data))
			if err != nil {
				return r.Header(), recs, datas, err
			}
		}
		recs = append(recs, rec)
		datas = append(datas, d)
	}
	trailing, err := r.Trailing()
	if err == nil && trailing {
		err = errors.New("trailing bytes")
	}
	return r.Header(), recs, datas, err
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }

func TestRoundTrip(t *testing.T) {
	for _, v := range []int{1, 2} {
		h, recs, datas, err := decodeAll(encode(t, v))
		require.NoError(t, err)
		want := Header{Version: v, From: "s1", To: "s2", Size: 1 << 20}
		require.Equal(t, want, h)
		require.Equal(t, []Record{{Write, 4096, 3}, {Zero, 8192, 512}}, recs)
		require.Equal(t, []byte("abc"), datas[0])
	}
	// A full stream of the head: no from, no to.
	var buf bytes.Buffer
	w, err := NewWriter(&buf, Header{Version: 2, Size: 4096})
	require.NoError(t, err)
	require.NoError(t, w.Close())
	h, recs, _, err := decodeAll(buf.Bytes())
	require.NoError(t, err)
	require.Equal(t, Header{Version: 2, Size: 4096}, h)
	require.Empty(t, recs)
}

// TestPartialDataSkipped checks that Next skips data the caller left unread.
func TestPartialDataSkipped(t *testing.T) {
	r, err := NewReader(bytes.NewReader(pinnedV2()))
	require.NoError(t, err)
	rec, err := r.Next()
	require.NoError(t, err)
	require.Equal(t, Write, rec.Kind)
	var one [1]byte
	n, err := r.Data(one[:])
	require.NoError(t, err)
	require.Equal(t, 1, n)
	rec, err = r.Next()
	require.NoError(t, err)
	require.Equal(t, Record{Zero, 8192, 512}, rec)
	_, err = r.Next()
	require.Equal(t, io.EOF, err)
}

// TestUnknownTagSkippedInV2 checks that a v2 reader skips a record it does
// not know, as Ceph's does.
func TestUnknownTagSkippedInV2(t *testing.T) {
	b := le("rbd diff v2\n", byte('s'), uint64(8), uint64(4096), byte('X'), uint64(3), "xyz",
		byte('w'), uint64(17), uint64(0), uint64(1), "a", byte('X'), uint64(0), byte('e'))
	_, recs, _, err := decodeAll(b)
	require.NoError(t, err)
	require.Equal(t, []Record{{Write, 0, 1}}, recs)
}

func TestBadStreams(t *testing.T) {
	good := pinnedV2()
	flip := func(i int, mask byte) []byte {
		b := bytes.Clone(good)
		b[i] ^= mask
		return b
	}
	wOff := bytes.IndexByte(good[12:], 'w') + 12 // the write record's tag
	for _, tt := range []struct {
		name string
		b    []byte
		want error
	}{
		{"empty", nil, ErrTruncated},
		{"banner", le("rbd diff v3\n", byte('e')), ErrFormat},
		{"no end record", good[:len(good)-1], ErrTruncated},
		{"cut in data", good[:wOff+25+1], ErrTruncated},
		{"cut in header", good[:20], ErrTruncated},
		{"flipped record length", flip(wOff+1, 0x01), ErrFormat},
		{"flipped high byte of record length", flip(wOff+8, 0x80), ErrFormat},
		{"flipped data length", flip(wOff+17, 0x02), ErrFormat},
		{"huge data length", flip(wOff+24, 0x80), ErrFormat},
		{"offset past size", flip(wOff+11, 0x10), ErrOutOfBounds},
		{"offset overflows", flip(wOff+16, 0x80), ErrOutOfBounds},
		{"no size", le("rbd diff v2\n", byte('e')), ErrFormat},
		{"size twice", le("rbd diff v2\n", byte('s'), uint64(8), uint64(1), byte('s'), uint64(8), uint64(1), byte('e')), ErrFormat},
		{"metadata after data", le("rbd diff v2\n", byte('s'), uint64(8), uint64(8), byte('z'), uint64(16), uint64(0), uint64(1), byte('f'), uint64(5), uint32(1), "a", byte('e')), ErrFormat},
		{"empty name", le("rbd diff v2\n", byte('f'), uint64(4), uint32(0), byte('e')), ErrFormat},
		{"long name", le("rbd diff v2\n", byte('f'), uint64(4+5000), uint32(5000)), ErrFormat},
		{"name length mismatch", le("rbd diff v2\n", byte('f'), uint64(9), uint32(1), "a"), ErrFormat},
		{"size length mismatch", le("rbd diff v2\n", byte('s'), uint64(4), uint64(8), byte('e')), ErrFormat},
		{"unknown tag in v1", le("rbd diff v1\n", byte('s'), uint64(8), byte('X'), byte('e')), ErrFormat},
		{"protection flag 2", le("rbd diff v2\n", byte('p'), uint64(1), byte(2)), ErrFormat},
		{"unknown record cut", le("rbd diff v2\n", byte('s'), uint64(8), uint64(8), byte('X'), uint64(1<<40)), ErrTruncated},
		{"trailing bytes", append(bytes.Clone(good), 'x'), nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, _, _, err := decodeAll(tt.b)
			require.Error(t, err)
			if tt.want != nil {
				require.ErrorIs(t, err, tt.want)
			}
		})
	}
}

func FuzzDecode(f *testing.F) {
	seeds, _ := filepath.Glob("../../testdata/rbddiff/*")
	for _, s := range seeds {
		if b, err := os.ReadFile(s); err == nil {
			f.Add(b)
		}
	}
	f.Add(pinnedV1())
	f.Add(pinnedV2())
	f.Fuzz(func(t *testing.T, b []byte) {
		h, recs, datas, err := decodeAll(b)
		if err != nil {
			return
		}
		// What decodes re-encodes to a stream that decodes the same.
		var buf bytes.Buffer
		w, err := NewWriter(&buf, h)
		if err != nil {
			t.Fatalf("decoded header does not encode: %v", err)
		}
		for i, r := range recs {
			if r.Kind == Write {
				w.Write(r.Off, datas[i])
			} else {
				w.Zero(r.Off, r.Len)
			}
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		h2, recs2, _, err := decodeAll(buf.Bytes())
		if err != nil {
			t.Fatalf("re-encoded stream does not decode: %v", err)
		}
		if h2 != h || len(recs2) != len(recs) {
			t.Fatalf("round trip differs: %+v %d records, then %+v %d", h, len(recs), h2, len(recs2))
		}
		for i := range recs {
			if recs[i] != recs2[i] {
				t.Fatalf("record %d: %+v then %+v", i, recs[i], recs2[i])
			}
		}
	})
}
