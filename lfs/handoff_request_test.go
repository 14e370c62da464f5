package lfs

import (
	"bytes"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestHandOffRequest(t *testing.T) {
	owner := OwnerRecord{Epoch: 7, Token: "0123456789abcdef"}
	req := NewHandOffRequest("vm1", owner)
	b := req.Encode()
	require.Len(t, b, 40+len("vm1")+32)
	got, err := DecodeHandOffRequest(b)
	require.NoError(t, err)
	require.Equal(t, req.Volume, got.Volume)
	require.Equal(t, req.Epoch, got.Epoch)
	require.True(t, req.Time.Equal(got.Time))
	require.Equal(t, req.Nonce, got.Nonce)
	require.Equal(t, req.MAC, got.MAC)
	now := time.Now()
	require.NoError(t, got.verify("vm1", owner, now))

	for _, c := range []struct {
		what  string
		vol   string
		rec   OwnerRecord
		now   time.Time
		bytes func([]byte)
	}{
		{what: "another volume", vol: "vm2", rec: owner, now: now},
		{what: "a later ownership", vol: "vm1", rec: OwnerRecord{Epoch: 8, Token: owner.Token}, now: now},
		{what: "another token", vol: "vm1", rec: OwnerRecord{Epoch: 7, Token: "fedcba9876543210"}, now: now},
		{what: "no token", vol: "vm1", rec: OwnerRecord{Epoch: 7}, now: now},
		{what: "too old", vol: "vm1", rec: owner, now: now.Add(3 * time.Minute)},
		{what: "from the future", vol: "vm1", rec: owner, now: now.Add(-3 * time.Minute)},
		{what: "time changed", vol: "vm1", rec: owner, now: now, bytes: func(b []byte) { b[16]++ }},
		{what: "nonce changed", vol: "vm1", rec: owner, now: now, bytes: func(b []byte) { b[30]++ }},
		{what: "MAC changed", vol: "vm1", rec: owner, now: now, bytes: func(b []byte) { b[len(b)-1]++ }},
	} {
		bb := bytes.Clone(b)
		if c.bytes != nil {
			c.bytes(bb)
		}
		r, err := DecodeHandOffRequest(bb)
		require.NoError(t, err, c.what)
		require.ErrorIs(t, r.verify(c.vol, c.rec, c.now), ErrHandOffRefused, c.what)
	}
	for _, bad := range [][]byte{nil, b[:40], append(bytes.Clone(b), 0), append([]byte("XXXX"), b[4:]...),
		func() []byte { bb := bytes.Clone(b); bb[4] = 2; return bb }()} {
		_, err := DecodeHandOffRequest(bad)
		require.ErrorIs(t, err, ErrHandOffRefused, "%x", bad)
	}
}

func FuzzDecodeHandOffRequest(f *testing.F) {
	f.Add(NewHandOffRequest("vm1", OwnerRecord{Epoch: 1, Token: "t"}).Encode())
	f.Add([]byte("HLHO"))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := DecodeHandOffRequest(b)
		if err != nil {
			return
		}
		if !bytes.Equal(r.Encode(), b) {
			t.Fatalf("decode then encode changed the bytes")
		}
	})
}
