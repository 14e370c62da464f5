package hdfsbackend

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/user"
	"path"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/colinmarc/hdfs/v2"
	"github.com/colinmarc/hdfs/v2/hadoopconf"
	"github.com/hlfs/hlfs/internal/objstore"
)

// Options tunes a Store. The zero value is ready to use.
type Options struct {
	// Replication is the replication factor of new objects; 0 takes the
	// cluster's default (dfs.replication of the NameNode).
	Replication int
	// Logger receives reconnects and retries; nil discards.
	Logger *slog.Logger
	// Clients is how many NameNode connections the Store spreads its calls
	// over (one connection serializes its calls); 0 means 4.
	Clients int
	// Timeout bounds connecting to the NameNode and DataNodes and waiting
	// for one NameNode answer; 0 means 60 s.
	Timeout time.Duration
	// CloseRetryTimeout bounds how long Writer.Close keeps retrying while
	// the NameNode answers that the last block is still replicating
	// (hdfs.ErrReplicating); 0 means 30 s.
	CloseRetryTimeout time.Duration
	// Create makes the store's root folder (and its parents) when missing.
	// Without it Open fails with an error wrapping objstore.ErrNoStore on a
	// missing root: stores are created explicitly (hlfs init, the first hlfs
	// create), so a mistyped path is an error rather than a new store.
	Create bool
	// LeaseRecoveryTimeout bounds how long Persist waits for the NameNode to
	// recover the lease of an object left open by a crashed writer (the
	// lease soft limit is 60 s on a default cluster); 0 means 2 min.
	LeaseRecoveryTimeout time.Duration
}

func (o Options) withDefaults() Options {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Clients <= 0 {
		o.Clients = 4
	}
	if o.Timeout <= 0 {
		o.Timeout = 60 * time.Second
	}
	if o.CloseRetryTimeout <= 0 {
		o.CloseRetryTimeout = 30 * time.Second
	}
	if o.LeaseRecoveryTimeout <= 0 {
		o.LeaseRecoveryTimeout = 2 * time.Minute
	}
	return o
}

// Store keeps objects as files under one HDFS folder. It is safe for
// concurrent use.
type Store struct {
	uri  string
	root string // absolute HDFS path of the root folder, "/" or without trailing slash
	opts Options
	log  *slog.Logger
	pool *clientPool
	// sleep pauses between retries (time.Sleep; tests replace it).
	sleep func(time.Duration)
	// user is the HDFS user; webhdfs the WebHDFS base URLs to try
	// (locations.go).
	user    string
	webhdfs []string

	// mu guards open and replication; no I/O happens under it.
	mu struct {
		sync.Mutex
		open        map[string]int // names this Store is writing: open Writers per name
		replication map[string]int // top-level folder (volume) → replication factor
	}
}

// SetReplication sets the replication factor of objects created from now on
// under the top-level folder vol (a volume); n <= 0 goes back to the store's.
func (s *Store) SetReplication(vol string, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n <= 0 {
		delete(s.mu.replication, vol)
		return
	}
	s.mu.replication[vol] = n
}

var (
	_ objstore.Store      = (*Store)(nil)
	_ objstore.SizeLister = (*Store)(nil)
)

// Open connects to the HDFS named by uri, hdfs://host:port/path (several
// NameNodes as host1:port,host2:port; no host takes the NameNodes from the
// Hadoop configuration), and returns a store rooted at path, a folder that
// must exist unless opts.Create (then it is created if missing). The
// Hadoop configuration is read from $HADOOP_CONF_DIR or $HADOOP_HOME/conf;
// the HDFS user is $HADOOP_USER_NAME or else the current user. Kerberos is
// not supported.
func Open(uri string, opts Options) (*Store, error) {
	u, err := url.Parse(uri)
	if err != nil {
		return nil, fmt.Errorf("hdfsbackend: bad uri %q: %w", uri, err)
	}
	if u.Scheme != "hdfs" {
		return nil, fmt.Errorf("hdfsbackend: uri %q: scheme must be hdfs", uri)
	}
	conf, err := hadoopconf.LoadFromEnvironment()
	if err != nil {
		return nil, fmt.Errorf("hdfsbackend: reading the Hadoop configuration: %w", err)
	}
	copts := hdfs.ClientOptionsFromConf(conf)
	if copts.KerberosClient != nil {
		return nil, fmt.Errorf("hdfsbackend: %s: the Hadoop configuration asks for Kerberos, which hlfs does not support", uri)
	}
	if u.Host != "" {
		copts.Addresses = strings.Split(u.Host, ",")
	}
	if len(copts.Addresses) == 0 {
		return nil, fmt.Errorf("hdfsbackend: uri %q names no namenode and the Hadoop configuration (HADOOP_CONF_DIR) has no fs.defaultFS", uri)
	}
	copts.User = os.Getenv("HADOOP_USER_NAME")
	if copts.User == "" {
		cur, err := user.Current()
		if err != nil {
			return nil, fmt.Errorf("hdfsbackend: no HADOOP_USER_NAME and no current user: %w", err)
		}
		copts.User = cur.Username
	}
	opts = opts.withDefaults()
	nn := new(addrSet)
	copts.NamenodeDialFunc = namenodeDialer(opts.Timeout, nn)
	copts.DatanodeDialFunc = (&net.Dialer{Timeout: opts.Timeout, KeepAlive: 30 * time.Second}).DialContext

	root := path.Clean("/" + u.Path)
	s := &Store{
		uri:     uri,
		root:    root,
		opts:    opts,
		log:     opts.Logger,
		pool:    newClientPool(copts, opts.Clients, nn, opts.Logger),
		sleep:   time.Sleep,
		user:    copts.User,
		webhdfs: webHDFSAddrs(conf, copts.Addresses),
	}
	s.mu.open = make(map[string]int)
	s.mu.replication = make(map[string]int)
	_, err = s.run("open store", uri, true, false, func(c *hdfs.Client) error {
		if opts.Create {
			return c.MkdirAll(root, 0o755)
		}
		fi, err := c.Stat(root)
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("%w: %s does not exist", objstore.ErrNoStore, root)
		}
		if err == nil && !fi.IsDir() {
			return fmt.Errorf("%s is a file, not a folder", root)
		}
		return err
	})
	if err != nil {
		s.pool.close()
		return nil, err
	}
	return s, nil
}

// URI returns the uri the store was opened with.
func (s *Store) URI() string { return s.uri }

// Close closes the NameNode connections. Writers still open keep theirs
// until they close; every other call fails with ErrClosed.
func (s *Store) Close() error {
	s.pool.close()
	return nil
}

// path returns the absolute HDFS path of the object or folder name.
func (s *Store) path(name string, allowRoot bool) (string, error) {
	if err := objstore.CheckName(name, allowRoot); err != nil {
		return "", err
	}
	if name == "" {
		return s.root, nil
	}
	return path.Join(s.root, name), nil
}

// run calls f with a pooled client. After a connection failure the client
// is dropped and f repeated once on a new one if that is safe: when the
// request never left (the library could not connect) or f is idempotent.
// With keep, a successful run returns the client still referenced; the
// caller releases it with pool.put. Errors are wrapped for op on name.
func (s *Store) run(op, name string, idempotent, keep bool, f func(c *hdfs.Client) error) (*pooled, error) {
	var err error
	slot := -1
	for attempt := 0; attempt < 2; attempt++ {
		var pc *pooled
		if slot < 0 {
			pc, err = s.pool.get()
		} else {
			pc, err = s.pool.getSlot(slot) // a new connection
		}
		if err != nil {
			break
		}
		slot = pc.slot
		err = f(pc.c)
		if err == nil && keep {
			return pc, nil
		}
		if isConnErr(err) {
			s.pool.retire(pc, err)
			s.pool.put(pc)
			if idempotent || notSent(err) {
				continue
			}
			break
		}
		s.pool.put(pc)
		break
	}
	if errors.Is(err, ErrClosed) {
		return nil, &opError{op: op, name: name, kind: ErrClosed}
	}
	return nil, wrap(op, name, err)
}

// Create implements objstore.Store: an HDFS create without overwrite, which
// the NameNode has logged durably when it returns. Missing folders are
// created.
func (s *Store) Create(name string) (objstore.Writer, error) {
	p, err := s.path(name, false)
	if err != nil {
		return nil, err
	}
	var fw *hdfs.FileWriter
	pc, err := s.run("create", name, false, true, func(c *hdfs.Client) error {
		var err error
		fw, err = s.createFile(c, p)
		if errors.Is(err, os.ErrNotExist) {
			if err := c.MkdirAll(path.Dir(p), 0o755); err != nil {
				return err
			}
			fw, err = s.createFile(c, p)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.mu.open[name]++
	s.mu.Unlock()
	return &writer{s: s, name: name, pc: pc, f: fw}, nil
}

// writing reports whether a Writer of this Store has name open.
func (s *Store) writing(name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mu.open[name] > 0
}

// closed records that a Writer of name closed.
func (s *Store) closed(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mu.open[name]--; s.mu.open[name] <= 0 {
		delete(s.mu.open, name)
	}
}

func (s *Store) createFile(c *hdfs.Client, p string) (*hdfs.FileWriter, error) {
	d, err := c.ServerDefaults()
	if err != nil {
		return nil, err
	}
	rep := s.opts.Replication
	rel := strings.TrimPrefix(strings.TrimPrefix(p, s.root), "/")
	vol, _, _ := strings.Cut(rel, "/")
	s.mu.Lock()
	if n, ok := s.mu.replication[vol]; ok {
		rep = n
	}
	s.mu.Unlock()
	if rep <= 0 {
		rep = d.Replication
	}
	return c.CreateFile(p, rep, d.BlockSize, 0o644)
}

// Open implements objstore.Store. An object still being written shows the
// length the NameNode knows: its completed blocks.
func (s *Store) Open(name string) (objstore.Reader, error) {
	p, err := s.path(name, false)
	if err != nil {
		return nil, err
	}
	var fr *hdfs.FileReader
	pc, err := s.run("open", name, true, true, func(c *hdfs.Client) error {
		var err error
		fr, err = c.Open(p)
		if err == nil && fr.Stat().IsDir() {
			fr.Close()
			return fmt.Errorf("%w: a folder", os.ErrNotExist)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	r := &reader{s: s, name: name, path: p, size: fr.Stat().Size()}
	r.mu.idle = []*fileHandle{{pc: pc, f: fr}}
	return r, nil
}

// List implements objstore.Store.
func (s *Store) List(dir string) ([]string, error) {
	infos, err := s.readdir(dir)
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(infos))
	for _, fi := range infos {
		names = append(names, fi.Name())
	}
	sort.Strings(names)
	return names, nil
}

// ListSizes implements objstore.SizeLister: the NameNode returns the sizes
// with the names, so a folder costs one listing (paged by the NameNode, 1000
// entries a page by default), not one request per object. An object still
// being written shows the length the NameNode knows, as Open does.
func (s *Store) ListSizes(dir string) (map[string]int64, error) {
	infos, err := s.readdir(dir)
	if err != nil {
		return nil, err
	}
	sizes := make(map[string]int64, len(infos))
	for _, fi := range infos {
		if !fi.IsDir() {
			sizes[fi.Name()] = fi.Size()
		}
	}
	return sizes, nil
}

// readdir lists folder dir: nothing when it is missing, ErrNotFolder when
// it is an object.
func (s *Store) readdir(dir string) ([]os.FileInfo, error) {
	p, err := s.path(dir, true)
	if err != nil {
		return nil, err
	}
	var infos []os.FileInfo
	_, err = s.run("list", dir, true, false, func(c *hdfs.Client) error {
		f, err := c.Open(p)
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		defer f.Close()
		if !f.Stat().IsDir() {
			return fmt.Errorf("%w: %s", objstore.ErrNotFolder, dir)
		}
		infos, err = f.Readdir(0)
		return err
	})
	return infos, err
}

// Replication returns the replication factor the NameNode keeps for the
// object name (lfs reads it back when it rebuilds a damaged superblock).
func (s *Store) Replication(name string) (int, error) {
	p, err := s.path(name, false)
	if err != nil {
		return 0, err
	}
	n := 0
	_, err = s.run("stat", name, true, false, func(c *hdfs.Client) error {
		fi, err := c.Stat(p)
		if err != nil {
			return err
		}
		if st, ok := fi.Sys().(*hdfs.FileStatus); ok {
			n = int(st.GetBlockReplication())
		}
		return nil
	})
	return n, err
}

// Remove implements objstore.Store. A folder must be empty.
func (s *Store) Remove(name string) error {
	p, err := s.path(name, false)
	if err != nil {
		return err
	}
	_, err = s.run("remove", name, false, false, func(c *hdfs.Client) error {
		return c.Remove(p)
	})
	return err
}

// Rename implements objstore.Store with the NameNode's rename2 and its
// OVERWRITE option: the replacement is one atomic namespace operation,
// logged durably before the call returns. Missing folders of to are
// created.
func (s *Store) Rename(from, to string) error {
	pf, err := s.path(from, false)
	if err != nil {
		return err
	}
	pt, err := s.path(to, false)
	if err != nil {
		return err
	}
	_, err = s.run("rename", from+" to "+to, false, false, func(c *hdfs.Client) error {
		err := c.Rename(pf, pt)
		if !errors.Is(err, os.ErrNotExist) {
			return err
		}
		// Either from is missing or the folder of to is.
		if _, serr := c.Stat(pf); serr != nil {
			return serr
		}
		if err := c.MkdirAll(path.Dir(pt), 0o755); err != nil {
			return err
		}
		return c.Rename(pf, pt)
	})
	return err
}
