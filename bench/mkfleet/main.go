// Command mkfleet fills a store with many empty volumes quickly, for
// bench/fleet.py: lfs.Create in one process with several workers, with the
// store index kept as `hlfs create` keeps it.
//
//	mkfleet -store DIR|hdfs://HOST:PORT/PATH -n 10000 [-prefix v] [-size 1G] [-workers 16] [-no-index]
//
// It prints the seconds it took on stdout.
package main

import (
	"flag"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hlfs/hlfs/hdfsbackend"
	"github.com/hlfs/hlfs/hdfsbackend/hdfstest"
	"github.com/hlfs/hlfs/internal/objstore"
	"github.com/hlfs/hlfs/lfs"
)

func main() {
	store := flag.String("store", "", "store: a directory or hdfs://host:port/path (created when missing)")
	n := flag.Int("n", 10000, "volumes to create")
	prefix := flag.String("prefix", "v", "volume names are PREFIX%05d")
	size := flag.Int64("size", 1<<30, "volume size in bytes")
	workers := flag.Int("workers", 16, "creates at once")
	noIndex := flag.Bool("no-index", false, "do not describe the volumes in the store index (as an older hlfs)")
	rm := flag.Bool("rm", false, "remove the whole store instead (every object and folder under it)")
	flag.Parse()
	var err error
	if *rm {
		err = removeStore(*store)
	} else {
		err = run(*store, *n, *prefix, *size, *workers, !*noIndex)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "mkfleet:", err)
		os.Exit(1)
	}
}

// open opens the store at uri, creating it when missing.
func open(uri string) (objstore.Store, error) {
	if strings.HasPrefix(uri, "hdfs://") {
		return hdfsbackend.Open(uri, hdfsbackend.Options{Create: true})
	}
	return objstore.NewDirStore(strings.TrimPrefix(uri, "file://"))
}

// removeStore removes everything under the store.
func removeStore(uri string) error {
	st, err := open(uri)
	if err != nil {
		return err
	}
	return hdfstest.RemoveAll(st, "")
}

func run(uri string, n int, prefix string, size int64, workers int, index bool) error {
	st, err := open(uri)
	if err != nil {
		return err
	}
	var x *lfs.Index
	if index {
		x = lfs.OpenIndex(st, lfs.IndexOptions{})
	}
	start := time.Now()
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				if err := lfs.Create(st, fmt.Sprintf("%s%05d", prefix, i), lfs.Config{Size: size}); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return err
	}
	if x != nil {
		if err := x.Close(); err != nil {
			return err
		}
	}
	fmt.Printf("%.3f\n", time.Since(start).Seconds())
	return nil
}
