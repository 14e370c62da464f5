package hdfsbackend

import (
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"
	"testing"

	"github.com/hlfs/hlfs/internal/objstore"
	"github.com/stretchr/testify/require"
)

// remoteErr is a NameNode exception as the library reports it.
type remoteErr struct{ class, msg string }

func (e remoteErr) Method() string    { return "create" }
func (e remoteErr) Desc() string      { return "ERROR_APPLICATION" }
func (e remoteErr) Exception() string { return e.class }
func (e remoteErr) Message() string   { return e.msg }
func (e remoteErr) Error() string {
	return "create call failed with ERROR_APPLICATION (" + e.class + ")"
}

func TestWrap(t *testing.T) {
	quota := remoteErr{"org.apache.hadoop.hdfs.protocol.DSQuotaExceededException", "The DiskSpace quota of /vols is exceeded: quota = 1 B\n\tat org.apache..."}
	for _, tc := range []struct {
		name     string
		err      error
		is       []error
		conn     bool
		wantText string
	}{
		{"not exist", &os.PathError{Op: "open", Path: "/r/a", Err: os.ErrNotExist},
			[]error{objstore.ErrNotExist}, false, "hdfsbackend: open a: objstore: object does not exist"},
		{"exist", &os.PathError{Op: "create", Path: "/r/a", Err: os.ErrExist},
			[]error{objstore.ErrExist}, false, "hdfsbackend: open a: objstore: object exists"},
		{"permission", &os.PathError{Op: "create", Path: "/r/a", Err: os.ErrPermission},
			[]error{os.ErrPermission}, false, "hdfsbackend: open a: permission denied"},
		{"quota, one line", &os.PathError{Op: "create", Path: "/r/a", Err: quota},
			[]error{quota}, false, "hdfsbackend: open a: DSQuotaExceededException: The DiskSpace quota of /vols is exceeded: quota = 1 B"},
		{"namenode down", fmt.Errorf("no available namenodes: %w", syscall.ECONNREFUSED),
			[]error{ErrUnavailable}, true, "hdfsbackend: open a: namenode unreachable: no available namenodes: connection refused"},
		{"connection lost", io.EOF, []error{ErrUnavailable, io.EOF}, true, "hdfsbackend: open a: namenode unreachable: connection closed by the peer (EOF)"},
		{"safe mode", &os.PathError{Op: "create", Path: "/r/a", Err: remoteErr{"org.apache.hadoop.hdfs.server.namenode.SafeModeException", "Name node is in safe mode."}},
			[]error{ErrNotReady, objstore.ErrTransient}, false, "hdfsbackend: open a: namenode not ready: SafeModeException: Name node is in safe mode."},
		{"pipeline is transient", &opError{op: "write", name: "a", kind: ErrPipeline},
			[]error{ErrPipeline, objstore.ErrTransient}, false, "hdfsbackend: write a: datanode write pipeline failed"},
		{"reset", &os.PathError{Op: "create", Path: "/r/a", Err: syscall.ECONNRESET},
			[]error{ErrUnavailable}, true, "hdfsbackend: open a: namenode unreachable: connection reset by peer"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.conn, isConnErr(tc.err))
			got := wrap("open", "a", tc.err)
			for _, target := range tc.is {
				require.True(t, errors.Is(got, target), "%v is not %v", got, target)
			}
			require.Equal(t, tc.wantText, got.Error())
			require.Equal(t, got, wrap("close", "b", got), "wrapping twice keeps the first")
		})
	}
	require.NoError(t, wrap("open", "a", nil))
	require.True(t, notSent(errors.New("no available namenodes: dial tcp 127.0.0.1:9000: connect: connection refused")))
	require.False(t, isConnErr(&os.PathError{Err: remoteErr{"org.apache.hadoop.hdfs.server.namenode.SafeModeException", "Name node is in safe mode."}}))
}
