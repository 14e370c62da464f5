package cliutil

import (
	"math"
	"strings"
	"testing"
)

func TestParseSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
	}{
		{"1", 1},
		{"4096", 4096},
		{"4096B", 4096},
		{"4K", 4 << 10},
		{"4k", 4 << 10},
		{"4KiB", 4 << 10},
		{"4kib", 4 << 10},
		{"512M", 512 << 20},
		{"512MiB", 512 << 20},
		{"10G", 10 << 30},
		{"10GiB", 10 << 30},
		{"1T", 1 << 40},
		{"1TiB", 1 << 40},
		{"2P", 2 << 50},
		{"1.5G", 3 << 29},
		{"0.5K", 512},
		{" 1G ", 1 << 30},
		{"+8M", 8 << 20},
		{"8 M", 8 << 20},
		{"8191P", 8191 << 50},
	} {
		got, err := ParseSize(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
		}
	}
}

func TestParseSizeErrors(t *testing.T) {
	for _, tc := range []struct {
		in, msg string
	}{
		{"", "empty size"},
		{"   ", "empty size"},
		{"0", "greater than zero"},
		{"0G", "greater than zero"},
		{"-1", "must be positive"},
		{"-1G", "must be positive"},
		{"abc", "want a number"},
		{"G", "want a number"},
		{"10X", "want a number"},
		{"10GB", "want a number"},
		{"1.2.3M", "want a number"},
		{"1-2", "want a number"},
		{"0.3", "whole number of bytes"},
		{"1.0001K", "whole number of bytes"},
		{"8192P", "too large"},
		{"99999999999999999999", "too large"},
	} {
		got, err := ParseSize(tc.in)
		if err == nil {
			t.Errorf("ParseSize(%q) = %d, want error", tc.in, got)
			continue
		}
		if !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("ParseSize(%q) error %q, want it to contain %q", tc.in, err, tc.msg)
		}
		if strings.Contains(err.Error(), "\n") {
			t.Errorf("ParseSize(%q) error has several lines: %q", tc.in, err)
		}
	}
}

func TestFormatSize(t *testing.T) {
	for _, tc := range []struct {
		in   int64
		want string
	}{
		{0, "0 B"},
		{1, "1 B"},
		{1023, "1023 B"},
		{1024, "1 KiB"},
		{1536, "1.5 KiB"},
		{4 << 10, "4 KiB"},
		{1<<20 - 1, "1023.9 KiB"},
		{512 << 20, "512 MiB"},
		{1 << 30, "1 GiB"},
		{3 << 29, "1.5 GiB"},
		{10 << 40, "10 TiB"},
		{1 << 50, "1 PiB"},
		{math.MaxInt64, "7.9 EiB"},
		{-2048, "-2 KiB"},
	} {
		if got := FormatSize(tc.in); got != tc.want {
			t.Errorf("FormatSize(%d) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// Every size FormatSize prints exactly parses back to the same value.
func TestFormatParseRoundTrip(t *testing.T) {
	for _, n := range []int64{1, 512, 4096, 1 << 20, 3 << 29, 10 << 30, 1 << 40} {
		s := strings.ReplaceAll(FormatSize(n), " ", "")
		got, err := ParseSize(s)
		if err != nil || got != n {
			t.Errorf("ParseSize(FormatSize(%d) = %q) = %d, %v", n, s, got, err)
		}
	}
}
