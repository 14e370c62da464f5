package hdfsbackend

import (
	"fmt"

	"github.com/colinmarc/hdfs/v2"
	"github.com/hlfs/hlfs/internal/objstore"
)

// FileInfoOf returns what the NameNode knows of name.
func FileInfoOf(s *Store, name string) (*hdfs.FileInfo, error) {
	p, err := s.path(name, false)
	if err != nil {
		return nil, err
	}
	var info *hdfs.FileInfo
	_, err = s.run("stat", name, true, false, func(c *hdfs.Client) error {
		fi, err := c.Stat(p)
		if err != nil {
			return err
		}
		var ok bool
		if info, ok = fi.(*hdfs.FileInfo); !ok {
			return fmt.Errorf("no file status for %s", p)
		}
		return nil
	})
	return info, err
}

// ReplicationOf returns the replication factor the NameNode keeps for name.
func ReplicationOf(s *Store, name string) (int, error) { return s.Replication(name) }

// CrashWriter makes w's writer look crashed to the NameNode: it closes the
// client w writes through (its lease is no longer renewed) without
// completing the file. w must not be used afterwards.
func CrashWriter(w objstore.Writer) {
	ww := w.(*writer)
	ww.s.pool.retire(ww.pc, fmt.Errorf("test crashes the writer of %s", ww.name))
	ww.pc.c.Close()
	ww.done = true
	ww.s.closed(ww.name)
}
