package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"testing"

	"github.com/hlfs/hlfs/internal/objstore"
	"github.com/hlfs/hlfs/lfs"
	"github.com/hlfs/hlfs/nbdserver"
)

func TestHandOffTargets(t *testing.T) {
	owner := lfs.OwnerRecord{Host: "hv1", NBD: []string{
		"nbd://127.0.0.1:10809", "nbd+unix:///?socket=/run/hlfs.sock", "nbds://0.0.0.0:10810",
		"nbd://10.0.0.5:10811", "garbage", "nbd://[::]:10812"}}
	str := func(ts []handOffTarget) string { return fmt.Sprint(ts) }
	for _, c := range []struct {
		here string
		want []handOffTarget
	}{
		{"hv1", []handOffTarget{
			{"tcp", "127.0.0.1:10809", false, "127.0.0.1"},
			{"unix", "/run/hlfs.sock", false, "localhost"},
			{"tcp", "localhost:10810", true, "localhost"},
			{"tcp", "10.0.0.5:10811", false, "10.0.0.5"},
			{"tcp", "localhost:10812", false, "localhost"},
		}},
		{"hv2", []handOffTarget{
			{"tcp", "hv1:10810", true, "hv1"},
			{"tcp", "10.0.0.5:10811", false, "10.0.0.5"},
			{"tcp", "hv1:10812", false, "hv1"},
			{"tcp", "127.0.0.1:10809", false, "127.0.0.1"}, // last: loopback of another host
		}},
	} {
		if got := handOffTargets(owner, c.here); str(got) != str(c.want) {
			t.Errorf("from %s:\n got %v\nwant %v", c.here, got, c.want)
		}
	}
	if got := handOffTargets(lfs.OwnerRecord{Host: "hv1", NBD: []string{"nbd+unix:///?socket=/s"}}, "hv2"); len(got) != 0 {
		t.Errorf("a Unix socket on another host: %v", got)
	}
}

// TestRoamRegistryHandOff: a standby's askHandOff reaches the owner's
// nbdserver, whose registry routes the request to the owner's Roaming of
// that volume (and refuses one for a volume it does not have open).
func TestRoamRegistryHandOff(t *testing.T) {
	st, err := objstore.NewDirStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{"vm1", "vm2"} {
		if err := lfs.Create(st, v, lfs.Config{Size: 1 << 20}); err != nil {
			t.Fatal(err)
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	reg := newRoamRegistry(slog.New(slog.DiscardHandler))
	srv := nbdserver.New(emptyCatalog{}, nbdserver.Options{HandOff: reg.ServeHandOff})
	go srv.Serve(l)
	defer srv.Shutdown(context.Background())

	nbd := []string{"nbd://" + l.Addr().String()}
	owner, err := lfs.OpenRoaming(st, "vm1", lfs.Options{NBD: nbd}, lfs.RoamOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer owner.Close()
	reg.add(owner)
	standby, err := lfs.OpenRoaming(st, "vm1", lfs.Options{NBD: nbd}, lfs.RoamOptions{Ask: askHandOff("vm1", "here", "")})
	if err != nil {
		t.Fatal(err)
	}
	defer standby.Close()
	if !owner.Owner() || standby.Owner() {
		t.Fatalf("roles: owner %v, standby %v", owner.Owner(), standby.Owner())
	}
	if err := standby.WriteAt(make([]byte, 4096), 0, false); err != nil {
		t.Fatal(err)
	}
	if owner.Owner() || !standby.Owner() {
		t.Fatalf("after the standby's write: first %v, second %v", owner.Owner(), standby.Owner())
	}
	// A request for a volume this server does not have open.
	other, err := lfs.Open(st, "vm2", lfs.Options{NBD: nbd})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	var inUse *lfs.InUseError
	_, err = lfs.Open(st, "vm2", lfs.Options{})
	if !errors.As(err, &inUse) {
		t.Fatalf("second open of vm2: %v", err)
	}
	err = askHandOff("vm2", "here", "")(context.Background(), inUse.Owner)
	if err == nil || !strings.Contains(err.Error(), "vm2 is not open here") {
		t.Fatalf("hand-off of a volume the server does not roam: %v", err)
	}
	t.Logf("refused as expected: %v", err)
}

type emptyCatalog struct{}

func (emptyCatalog) Names() []string { return nil }
func (emptyCatalog) Lookup(name string) (nbdserver.Export, nbdserver.ExportInfo, error) {
	return nil, nbdserver.ExportInfo{}, nbdserver.ErrUnknownExport
}
