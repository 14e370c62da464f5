package hdfsbackend

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"path"
	"sort"
	"strings"
	"time"

	"github.com/colinmarc/hdfs/v2/hadoopconf"
	"github.com/hlfs/hlfs/internal/objstore"
)

// Block locations come from the NameNode's WebHDFS REST API (HDFS-11156,
// Hadoop 2.9/3.0 and later): the Go client speaks only the RPC protocol
// and has no getFileBlockLocations, so
//
//	GET http://NAMENODE:HTTPPORT/webhdfs/v1/PATH?op=GETFILEBLOCKLOCATIONS&user.name=USER
//
// answers a "BlockLocations" JSON object (BlockLocation has offset, length,
// names = the DataNodes' transfer addresses ip:port, hosts = their host
// names, corrupt). WebHDFS must be on (dfs.webhdfs.enabled, the default)
// and its HTTP address reachable; only simple authentication (user.name)
// is supported, as for RPC.

// DefaultWebHDFSPort is the NameNode HTTP port of Hadoop 3
// (dfs.namenode.http-address), used when the configuration names none.
const DefaultWebHDFSPort = "9870"

// ErrWebHDFS is wrapped by BlockLocations errors that mean the NameNode's
// WebHDFS cannot answer: unreachable, switched off, or not a NameNode.
var ErrWebHDFS = errors.New("hdfsbackend: WebHDFS unavailable")

// BlockLocation is where HDFS keeps one block of a file: a WebHDFS
// BlockLocation JSON object (the fields hlfs uses).
type BlockLocation struct {
	// Offset and Length place the block in the file.
	Offset int64 `json:"offset"`
	Length int64 `json:"length"`
	// Names are the transfer addresses (ip:port) of the DataNodes holding
	// a replica: unique per DataNode, even for several on one host.
	Names []string `json:"names"`
	// Hosts are the same DataNodes' host names, in the same order.
	Hosts []string `json:"hosts"`
	// Corrupt is true when every replica is corrupt.
	Corrupt bool `json:"corrupt"`
}

// ParseBlockLocations decodes the body of a GETFILEBLOCKLOCATIONS answer.
func ParseBlockLocations(body []byte) ([]BlockLocation, error) {
	var v struct {
		BlockLocations *struct {
			BlockLocation []BlockLocation `json:"BlockLocation"`
		} `json:"BlockLocations"`
	}
	if err := json.Unmarshal(body, &v); err != nil {
		return nil, fmt.Errorf("hdfsbackend: GETFILEBLOCKLOCATIONS answer: %w", err)
	}
	if v.BlockLocations == nil {
		return nil, errors.New("hdfsbackend: GETFILEBLOCKLOCATIONS answer has no BlockLocations object")
	}
	for i, b := range v.BlockLocations.BlockLocation {
		if b.Offset < 0 || b.Length < 0 || len(b.Hosts) > 0 && len(b.Hosts) != len(b.Names) {
			return nil, fmt.Errorf("hdfsbackend: GETFILEBLOCKLOCATIONS answer: block %d: offset %d, length %d, %d names, %d hosts",
				i, b.Offset, b.Length, len(b.Names), len(b.Hosts))
		}
	}
	return v.BlockLocations.BlockLocation, nil
}

// webHDFSException is WebHDFS's error object (RemoteException).
type webHDFSException struct {
	Exception string `json:"exception"`
	Message   string `json:"message"`
}

// parseRemoteException decodes a WebHDFS error body; ok is false when body
// is not one (not a WebHDFS answer).
func parseRemoteException(body []byte) (webHDFSException, bool) {
	var v struct {
		RemoteException *webHDFSException `json:"RemoteException"`
	}
	if json.Unmarshal(body, &v) != nil || v.RemoteException == nil || v.RemoteException.Exception == "" {
		return webHDFSException{}, false
	}
	return *v.RemoteException, true
}

// webHDFSAddrs returns the WebHDFS base URLs to try, in order: the
// dfs.namenode.http-address of the Hadoop configuration (with HA, every
// dfs.namenode.http-address.NS.NN), else each NameNode's host at
// DefaultWebHDFSPort. A wildcard host (0.0.0.0) is replaced by the
// NameNode's RPC host.
func webHDFSAddrs(conf hadoopconf.HadoopConf, namenodes []string) []string {
	var addrs []string
	if a := conf["dfs.namenode.http-address"]; a != "" {
		addrs = append(addrs, a)
	}
	var ha []string
	for k, a := range conf {
		if strings.HasPrefix(k, "dfs.namenode.http-address.") && a != "" {
			ha = append(ha, a)
		}
	}
	sort.Strings(ha)
	addrs = append(addrs, ha...)
	rpcHost := ""
	if len(namenodes) > 0 {
		rpcHost, _, _ = net.SplitHostPort(namenodes[0])
	}
	if len(addrs) == 0 {
		for _, nn := range namenodes {
			if h, _, err := net.SplitHostPort(nn); err == nil {
				addrs = append(addrs, net.JoinHostPort(h, DefaultWebHDFSPort))
			}
		}
	}
	out := make([]string, 0, len(addrs))
	for _, a := range addrs {
		if h, p, err := net.SplitHostPort(a); err == nil && (h == "0.0.0.0" || h == "::" || h == "") && rpcHost != "" {
			a = net.JoinHostPort(rpcHost, p)
		}
		out = append(out, "http://"+a)
	}
	return out
}

// WebHDFS returns the WebHDFS base URLs BlockLocations tries when given
// none (webHDFSAddrs): from the Hadoop configuration, else the NameNodes'
// hosts at DefaultWebHDFSPort.
func (s *Store) WebHDFS() []string { return s.webhdfs }

// BlockLocations returns where HDFS keeps the blocks of object name, asking
// WebHDFS at base (http://host:port), or, when base is "", at each address
// of WebHDFS() in turn until one answers as the active NameNode. A missing
// object is an error wrapping objstore.ErrNotExist; an address that cannot
// answer (unreachable, WebHDFS off, not a NameNode) one wrapping
// ErrWebHDFS.
func (s *Store) BlockLocations(ctx context.Context, base, name string) ([]BlockLocation, error) {
	p, err := s.path(name, false)
	if err != nil {
		return nil, err
	}
	bases := []string{base}
	if base == "" {
		bases = s.webhdfs
	}
	if len(bases) == 0 {
		return nil, fmt.Errorf("%w: no WebHDFS address known for %s", ErrWebHDFS, s.uri)
	}
	for i, b := range bases {
		locs, err := s.blockLocationsAt(ctx, b, p)
		// A standby NameNode of an HA pair answers StandbyException: try
		// the next one.
		if err == nil || i == len(bases)-1 || !errors.Is(err, ErrWebHDFS) {
			return locs, err
		}
	}
	panic("unreachable")
}

// webHDFSClient is shared by all Stores: it keeps connections for reuse.
var webHDFSClient = &http.Client{
	Timeout: time.Minute,
	Transport: &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 10 * time.Second}).DialContext,
		MaxIdleConnsPerHost: 8,
	},
}

func (s *Store) blockLocationsAt(ctx context.Context, base, p string) ([]BlockLocation, error) {
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("%w: %q is not a WebHDFS address (want http://host:port)", ErrWebHDFS, base)
	}
	u.Path = path.Join(u.Path, "/webhdfs/v1", p)
	u.RawQuery = url.Values{"op": {"GETFILEBLOCKLOCATIONS"}, "user.name": {s.user}}.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, err
	}
	resp, err := webHDFSClient.Do(req)
	if err != nil {
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err // the URL is in our message already
		}
		return nil, fmt.Errorf("%w: %s is unreachable: %v", ErrWebHDFS, base, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("%w: reading the answer of %s: %v", ErrWebHDFS, base, err)
	}
	if resp.StatusCode == http.StatusOK {
		return ParseBlockLocations(body)
	}
	re, ok := parseRemoteException(body)
	switch {
	case !ok:
		return nil, fmt.Errorf("%w: %s answered %s without a WebHDFS reply: WebHDFS is off there, or it is not the NameNode's HTTP address",
			ErrWebHDFS, base, resp.Status)
	case re.Exception == "FileNotFoundException":
		return nil, fmt.Errorf("%w: %s", objstore.ErrNotExist, re.Message)
	case re.Exception == "StandbyException":
		return nil, fmt.Errorf("%w: %s is a standby NameNode", ErrWebHDFS, base)
	}
	return nil, fmt.Errorf("hdfsbackend: WebHDFS at %s: %s: %s: %s", base, resp.Status, re.Exception, re.Message)
}
