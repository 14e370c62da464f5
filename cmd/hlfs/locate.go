package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"

	"github.com/hlfs/hlfs/hdfsbackend"
	"github.com/hlfs/hlfs/internal/cliutil"
	"github.com/hlfs/hlfs/internal/objstore"
	"github.com/hlfs/hlfs/lfs"
	"github.com/spf13/cobra"
)

// locateCmd returns "hlfs locate".
func (c *cli) locateCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "locate VOLUME [--json] [--webhdfs URL]",
		Short: "show which hosts hold a volume's data",
		Long: `
Locate shows which hosts hold the data of VOLUME, best first: for each, the
bytes of the volume's log segments it keeps and their share of the
volume's stored segment bytes. A scheduler places a VM on the host that
holds most of its disk, so that reads stay local.

On HDFS a host is a DataNode, named by its transfer address IP:PORT (the
"names" of WebHDFS block locations: unique even for several DataNodes on
one machine), with its host name beside it. Every replica counts, so the
bytes of all hosts add up to the replication factor times the stored
bytes. The locations come from the NameNode's WebHDFS REST API
(GETFILEBLOCKLOCATIONS), which must be on (dfs.webhdfs.enabled, Hadoop's
default); its address is --webhdfs, else $HLFS_WEBHDFS, else
dfs.namenode.http-address in $HADOOP_CONF_DIR/hdfs-site.xml, else the
NameNode's host at port 9870.

On a local store the one host is this one ($HLFS_HOSTNAME, else the
system's host name), holding everything.

Only the volume's own segments count: checkpoints and snapshot maps are
metadata read once at open, and the data a clone reads from its source's
segments is its source's (locate the source too).`,
		Args: positional("VOLUME"),
	}
	fs := cmd.Flags()
	asJSON := fs.Bool("json", false, "print JSON (sizes in bytes, shares as fractions)")
	webhdfs := fs.String("webhdfs", "", "the NameNode's WebHDFS `URL`, http://HOST:PORT (env HLFS_WEBHDFS)")
	cmd.RunE = func(_ *cobra.Command, args []string) error {
		if *webhdfs == "" {
			*webhdfs = c.getenv("HLFS_WEBHDFS")
		}
		return c.locate(args[0], *webhdfs, *asJSON)
	}
	return cmd
}

// locateReport is what hlfs locate prints (--json: as is).
type locateReport struct {
	Volume string `json:"volume"`
	// Objects and StoredBytes count the volume's segment objects.
	Objects     int   `json:"objects"`
	StoredBytes int64 `json:"stored_bytes"`
	// UnlocatedBytes are stored bytes no host holds a replica of (HDFS
	// blocks whose DataNodes are all gone).
	UnlocatedBytes int64       `json:"unlocated_bytes"`
	Hosts          []hostBytes `json:"hosts"`
}

// hostBytes is one host's part of a volume.
type hostBytes struct {
	// Host is the DataNode's transfer address IP:PORT, or this host's
	// name for a local store.
	Host string `json:"host"`
	// Hostname is the DataNode's host name (HDFS only).
	Hostname string `json:"hostname,omitempty"`
	Bytes    int64  `json:"bytes"`
	// Share is Bytes / StoredBytes.
	Share float64 `json:"share"`
}

func (c *cli) locate(arg, webhdfs string, asJSON bool) error {
	name, st, err := c.volumeInStore(arg)
	if err != nil {
		return err
	}
	objs, err := lfs.DataObjects(st, name)
	if err != nil {
		return c.volumeError(name, err)
	}
	rep := locateReport{Volume: name, Objects: len(objs), Hosts: []hostBytes{}}
	if hs, ok := st.(*hdfsbackend.Store); ok {
		err = locateHDFS(c.ctx, hs, webhdfs, objs, &rep)
	} else {
		err = c.locateLocal(st, objs, &rep)
	}
	if err != nil {
		return fmt.Errorf("locate %s: %w", name, err)
	}
	for i := range rep.Hosts {
		if rep.StoredBytes > 0 {
			rep.Hosts[i].Share = float64(rep.Hosts[i].Bytes) / float64(rep.StoredBytes)
		}
	}
	slices.SortFunc(rep.Hosts, func(a, b hostBytes) int {
		return cmp.Or(cmp.Compare(b.Bytes, a.Bytes), cmp.Compare(a.Host, b.Host))
	})
	if asJSON {
		enc := json.NewEncoder(c.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	fmt.Fprintf(c.stdout, "%s: %s in %s\n", name, sizeString(rep.StoredBytes), plural(rep.Objects, "segment"))
	if rep.UnlocatedBytes > 0 {
		fmt.Fprintf(c.stdout, "no replica known: %s\n", sizeString(rep.UnlocatedBytes))
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "HOST\tHOSTNAME\tBYTES\tSHARE")
	for _, h := range rep.Hosts {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%.1f%%\n", h.Host, cmp.Or(h.Hostname, "-"), cliutil.FormatSize(h.Bytes), 100*h.Share)
	}
	return tw.Flush()
}

// locateLocal reports a local store: this host holds every byte.
func (c *cli) locateLocal(st objstore.Store, objs []string, rep *locateReport) error {
	for _, name := range objs {
		r, err := st.Open(name)
		if errors.Is(err, objstore.ErrNotExist) {
			continue // removed by the cleaner meanwhile
		}
		if err != nil {
			return err
		}
		rep.StoredBytes += r.Size()
		r.Close()
	}
	host := c.getenv("HLFS_HOSTNAME")
	if host == "" {
		host, _ = os.Hostname()
	}
	rep.Hosts = append(rep.Hosts, hostBytes{Host: host, Bytes: rep.StoredBytes})
	return nil
}

// locateParallel is how many WebHDFS requests locate keeps in flight.
const locateParallel = 8

// locateHDFS asks WebHDFS (at base, or the store's default addresses)
// where each object's blocks are and adds them up per DataNode.
func locateHDFS(ctx context.Context, st *hdfsbackend.Store, base string, objs []string, rep *locateReport) error {
	type result struct {
		locs []hdfsbackend.BlockLocation
		err  error
	}
	results := make([]result, len(objs))
	parent := ctx
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg       sync.WaitGroup
		failOnce sync.Once
		failed   error
	)
	next := make(chan int)
	for w := 0; w < min(locateParallel, len(objs)); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				locs, err := st.BlockLocations(ctx, base, objs[i])
				if err != nil && !errors.Is(err, objstore.ErrNotExist) {
					// One failure is the answer (not the "context
					// canceled" of the requests it stops).
					failOnce.Do(func() { failed = err })
					cancel()
				}
				results[i] = result{locs, err}
			}
		}()
	}
feed:
	for i := range objs {
		select {
		case next <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	if failed != nil {
		return webHDFSError(failed)
	}
	hosts := map[string]*hostBytes{}
	for _, r := range results {
		if errors.Is(r.err, objstore.ErrNotExist) {
			continue // removed by the cleaner meanwhile
		}
		if r.err != nil {
			return webHDFSError(r.err)
		}
		for _, b := range r.locs {
			rep.StoredBytes += b.Length
			if len(b.Names) == 0 {
				rep.UnlocatedBytes += b.Length
			}
			for k, n := range b.Names {
				h := hosts[n]
				if h == nil {
					h = &hostBytes{Host: n}
					if k < len(b.Hosts) {
						h.Hostname = b.Hosts[k]
					}
					hosts[n] = h
				}
				h.Bytes += b.Length
			}
		}
	}
	if err := parent.Err(); err != nil {
		return err // interrupted: the counts are incomplete
	}
	for _, h := range hosts {
		rep.Hosts = append(rep.Hosts, *h)
	}
	return nil
}

// webHDFSError says what must be enabled when WebHDFS could not answer.
func webHDFSError(err error) error {
	msg := cliutil.Message(err)
	if !errors.Is(err, hdfsbackend.ErrWebHDFS) {
		return fmt.Errorf("cannot get block locations: %s", msg)
	}
	msg = strings.TrimPrefix(msg, cliutil.Message(hdfsbackend.ErrWebHDFS)+": ")
	return fmt.Errorf("the NameNode's WebHDFS cannot answer: %s; locate needs WebHDFS on (dfs.webhdfs.enabled) at the address of --webhdfs, HLFS_WEBHDFS or dfs.namenode.http-address in $HADOOP_CONF_DIR/hdfs-site.xml", msg)
}
