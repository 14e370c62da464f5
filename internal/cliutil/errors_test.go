package cliutil

import (
	"errors"
	"fmt"
	"testing"
)

func TestExitCode(t *testing.T) {
	if got := ExitCode(nil); got != ExitOK {
		t.Errorf("ExitCode(nil) = %d", got)
	}
	if got := ExitCode(errors.New("boom")); got != ExitError {
		t.Errorf("ExitCode(plain) = %d", got)
	}
	if got := ExitCode(Usagef("missing %s", "VOLUME")); got != ExitUsage {
		t.Errorf("ExitCode(usage) = %d", got)
	}
	wrapped := fmt.Errorf("create: %w", Usagef("missing VOLUME"))
	if got := ExitCode(wrapped); got != ExitUsage {
		t.Errorf("ExitCode(wrapped usage) = %d", got)
	}
	if got := Usagef("missing %s", "VOLUME").Error(); got != "missing VOLUME" {
		t.Errorf("Usagef message = %q", got)
	}
}

func TestMessage(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{errors.New("lfs: volume \"x\" not found"), "volume \"x\" not found"},
		{errors.New("hlfs: lfs: bad"), "bad"},
		{errors.New("open demo: lfs: bad"), "open demo: lfs: bad"},
		{errors.New("objstore: cannot use /x: permission denied"), "cannot use /x: permission denied"},
		{errors.New("two\nlines\n"), "two; lines"},
		{errors.New("plain"), "plain"},
	} {
		if got := Message(tc.err); got != tc.want {
			t.Errorf("Message(%q) = %q, want %q", tc.err, got, tc.want)
		}
	}
}
