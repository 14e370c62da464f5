package snapshot

import (
	"errors"
	"math"
	"path"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestValidateName(t *testing.T) {
	for _, name := range []string{"a", "0", "Z", "s1", "A.b_c-9", "a..", "a--", strings.Repeat("x", 128)} {
		require.NoError(t, ValidateName(name), name)
		require.NoError(t, ValidateVolumeName(name), name)
	}
	for _, name := range []string{"", ".", "..", ".a", "-a", "_a", "a b", "a/b", "a@b", "a\n", "\na", "é", "a\x00",
		strings.Repeat("x", 129)} {
		err := ValidateName(name)
		require.ErrorIs(t, err, ErrInvalidName, "%q", name)
		var ne *NameError
		require.True(t, errors.As(err, &ne))
		require.Equal(t, &NameError{Kind: "snapshot", Name: name}, ne)
		err = ValidateVolumeName(name)
		require.True(t, errors.As(err, &ne))
		require.Equal(t, &NameError{Kind: "volume", Name: name}, ne)
		require.Contains(t, err.Error(), "invalid volume name")
	}
}

func TestParseRef(t *testing.T) {
	vol, snap, err := ParseRef("vm1@s1")
	require.NoError(t, err)
	require.Equal(t, "vm1", vol)
	require.Equal(t, "s1", snap)

	for _, tc := range []struct {
		ref  string
		kind string // the *NameError's Kind; "" when there is none
	}{
		{"vm1", ""},
		{"", ""},
		{"@", "volume"},
		{"@s1", "volume"},
		{"vm1@", "snapshot"},
		{"vm 1@s1", "volume"},
		{"vm1@s 1", "snapshot"},
		{"vm1@s1@s2", "snapshot"},
		{"vm1@-s", "snapshot"},
		{".vm@s", "volume"},
	} {
		vol, snap, err := ParseRef(tc.ref)
		require.ErrorIs(t, err, ErrInvalidName, "%q", tc.ref)
		require.Empty(t, vol+snap, "%q", tc.ref)
		var ne *NameError
		if tc.kind == "" {
			require.False(t, errors.As(err, &ne), "%q", tc.ref)
			require.ErrorContains(t, err, "VOLUME@SNAPSHOT")
			continue
		}
		require.True(t, errors.As(err, &ne), "%q", tc.ref)
		require.Equal(t, tc.kind, ne.Kind, "%q", tc.ref)
	}
}

func TestObjectNames(t *testing.T) {
	require.Equal(t, "vm1/snap", Dir("vm1"))
	for _, tc := range []struct {
		id   ID
		gen  Gen
		name string
	}{
		{1, 0, "vm1/snap/00000001"},
		{0xabcdef12, 0, "vm1/snap/abcdef12"},
		{1, 1, "vm1/snap/00000001.1"},
		{0x10, 12, "vm1/snap/00000010.12"},
		{math.MaxUint32, math.MaxUint32, "vm1/snap/ffffffff.4294967295"},
		{0, 0, "vm1/snap/00000000"},
	} {
		require.Equal(t, tc.name, ObjectName("vm1", tc.id, tc.gen))
		dir, base := path.Split(tc.name)
		require.Equal(t, Dir("vm1")+"/", dir)
		o, ok := ParseObjectName(base)
		require.True(t, ok, base)
		require.Equal(t, ObjectID{tc.id, tc.gen}, o)
	}
	for _, n := range []string{
		"", ".", "00000001.tmp-abc", "00000001.tmp-12345678", "00000001.1.tmp-abc", "00000001.", "00000001.0",
		"00000001.01", "00000001.+1", "00000001.-1", "00000001. 1", "00000001.4294967296", "00000001.1e3",
		"0000001", "000000001", "0000001.1", "000000001.1", "0000000g", "+0000001", "-0000001", "0x000001",
		"lineage", "snap", "00000001/x",
	} {
		o, ok := ParseObjectName(n)
		require.False(t, ok, "%q parsed as %+v", n, o)
	}
}

// TestParseObjectNameIsExact: a name ParseObjectName accepts is the name
// ObjectName gives the object; anything else is foreign.
func TestParseObjectNameIsExact(t *testing.T) {
	for _, n := range []string{"0000000A", "ABCDEF12.3"} {
		o, ok := ParseObjectName(n)
		if ok {
			require.Equal(t, ObjectName("v", o.ID, o.Gen), path.Join(Dir("v"), n))
		}
	}
}
