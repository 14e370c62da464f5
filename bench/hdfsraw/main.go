// Command hdfsraw is the raw-HDFS baseline of bench/hdfs.py: it writes
// -mib MiB sequentially in 1 MiB writes with github.com/colinmarc/hdfs/v2
// (the client hlfs uses), to files of -file-mib MiB each (closed when full,
// as hlfs closes its 32 MiB segments), and prints one JSON line with the
// throughput. Only Close is durable on HDFS, so the time includes every
// close; a close answered "replication in progress" is retried, as
// hdfsbackend does.
//
//	hdfsraw -uri hdfs://127.0.0.1:9000/dir [-mib 512] [-file-mib 32] [-replication 0] [-keep]
//
// The folder is created, and removed at the end unless -keep. The Hadoop
// configuration comes from $HADOOP_CONF_DIR, the user from
// $HADOOP_USER_NAME or the current user, as in hdfsbackend.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"math/rand"
	"net/url"
	"os"
	"os/user"
	"path"
	"strings"
	"time"

	"github.com/colinmarc/hdfs/v2"
	"github.com/colinmarc/hdfs/v2/hadoopconf"
)

func main() {
	uri := flag.String("uri", "", "hdfs://host:port/folder to write into (required)")
	mib := flag.Int("mib", 512, "MiB to write")
	fileMiB := flag.Int("file-mib", 32, "MiB per file (closed when full)")
	replication := flag.Int("replication", 0, "replication factor (0: the cluster's default)")
	keep := flag.Bool("keep", false, "keep the files")
	flag.Parse()
	if err := run(*uri, *mib, *fileMiB, *replication, *keep); err != nil {
		fmt.Fprintln(os.Stderr, "hdfsraw:", err)
		os.Exit(1)
	}
}

func connect(uri string) (*hdfs.Client, string, error) {
	u, err := url.Parse(uri)
	if err != nil || u.Scheme != "hdfs" {
		return nil, "", fmt.Errorf("bad -uri %q: want hdfs://host:port/folder", uri)
	}
	conf, err := hadoopconf.LoadFromEnvironment()
	if err != nil {
		return nil, "", err
	}
	opts := hdfs.ClientOptionsFromConf(conf)
	if u.Host != "" {
		opts.Addresses = strings.Split(u.Host, ",")
	}
	opts.User = os.Getenv("HADOOP_USER_NAME")
	if opts.User == "" {
		cur, err := user.Current()
		if err != nil {
			return nil, "", err
		}
		opts.User = cur.Username
	}
	c, err := hdfs.NewClient(opts)
	if err != nil {
		return nil, "", err
	}
	return c, path.Clean("/" + u.Path), nil
}

func run(uri string, mib, fileMiB, replication int, keep bool) error {
	if mib <= 0 || fileMiB <= 0 {
		return fmt.Errorf("-mib and -file-mib must be positive")
	}
	c, dir, err := connect(uri)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	defaults, err := c.ServerDefaults()
	if err != nil {
		return err
	}
	if replication <= 0 {
		replication = defaults.Replication
	}
	buf := make([]byte, 1<<20)
	rand.New(rand.NewSource(1)).Read(buf)

	var closeTime time.Duration
	files := 0
	start := time.Now()
	var f *hdfs.FileWriter
	for i := 0; i < mib; i++ {
		if f == nil {
			name := path.Join(dir, fmt.Sprintf("%016d", files))
			f, err = c.CreateFile(name, replication, defaults.BlockSize, 0o644)
			if err != nil {
				return err
			}
			files++
		}
		buf[0], buf[1] = byte(i), byte(i>>8) // no two MiB alike
		if _, err := f.Write(buf); err != nil {
			return err
		}
		if (i+1)%fileMiB == 0 || i == mib-1 {
			t0 := time.Now()
			if err := closeRetrying(f); err != nil {
				return err
			}
			closeTime += time.Since(t0)
			f = nil
		}
	}
	elapsed := time.Since(start)
	res := map[string]any{
		"mib": mib, "files": files, "file_mib": fileMiB, "replication": replication,
		"seconds": elapsed.Seconds(), "close_seconds": closeTime.Seconds(),
		"mbps": float64(mib) * (1 << 20) / 1e6 / elapsed.Seconds(),
	}
	if !keep {
		if err := c.RemoveAll(dir); err != nil {
			return err
		}
	}
	return json.NewEncoder(os.Stdout).Encode(res)
}

// closeRetrying closes f, retrying for up to 30 s while the NameNode answers
// that the last block is still replicating.
func closeRetrying(f *hdfs.FileWriter) error {
	deadline := time.Now().Add(30 * time.Second)
	pause := 50 * time.Millisecond
	for {
		err := f.Close()
		if err == nil || !hdfs.IsErrReplicating(err) || time.Now().After(deadline) {
			return err
		}
		time.Sleep(pause)
		pause = min(2*pause, 2*time.Second)
	}
}
