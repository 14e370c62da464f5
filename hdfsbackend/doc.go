// Package hdfsbackend is the HDFS objstore.Store: hlfs objects are files
// under one HDFS folder, written and read with github.com/colinmarc/hdfs/v2
// (a native Go client: no JVM, no libhdfs).
//
//	s, err := hdfsbackend.Open("hdfs://namenode:9000/hlfs", hdfsbackend.Options{Create: true})
//	...
//	defer s.Close()
//
// Open reads the Hadoop configuration from $HADOOP_CONF_DIR (or
// $HADOOP_HOME/conf) and acts as $HADOOP_USER_NAME, else the current user.
// A Store is safe for concurrent use; a Writer is used by one goroutine at
// a time; Reader.ReadAt is safe for concurrent use.
//
// # How the contract maps onto HDFS
//
//   - Create is an HDFS create without overwrite: the NameNode refuses an
//     existing name (ErrExist), also while another client still writes it,
//     so two hosts can never both create one object (the fencing
//     primitive). The NameNode logs the create durably before it answers.
//   - Writer.Write streams 64 KiB packets to a pipeline of DataNodes.
//     Writer.Sync returns objstore.ErrSyncUnsupported: the library's Flush
//     is no hflush/hsync (no acknowledgement, no durability), so only Close
//     makes an object durable. Close waits for the DataNodes'
//     acknowledgements and completes the file, retrying with backoff (at
//     most Options.CloseRetryTimeout) while the NameNode answers that the
//     last block is still replicating.
//   - The library has no pipeline recovery: when a DataNode of the pipeline
//     fails, the Writer fails for good (ErrPipeline, a sticky error) and the
//     caller writes a new object. The NameNode keeps choosing a dead
//     DataNode until it declares it dead (about 10.5 min after its last
//     heartbeat with default settings), so with a cluster as small as the
//     replication factor every write fails until then.
//   - Open shows the length the NameNode knows; for a file still being
//     written that is its completed blocks. Reads fail over between the
//     replicas of a block.
//   - Rename is the NameNode's rename2 with OVERWRITE: one atomic namespace
//     operation that replaces the target, logged durably before it returns.
//   - Persist has nothing to do for a closed file. For a file a crashed
//     writer left open it triggers the NameNode's lease recovery (the
//     library has no recoverLease; a truncate request serves, see Persist)
//     and waits until the file is closed, at most
//     Options.LeaseRecoveryTimeout. Recovery cannot begin before the
//     writer's lease soft limit (60 s) ran out, and it keeps what reached
//     the DataNodes, so the object can end up longer than an Open before
//     Persist showed. An object open by a live writer elsewhere yields
//     ErrLeaseHeld; one open by this Store is left alone (its completed
//     blocks are durable, the rest when it closes).
//   - List returns sorted names, and objstore.ErrNotFolder for a file;
//     Remove deletes a file or an empty folder. Folders are created as
//     needed by Create and Rename. The store's root folder is created only
//     with Options.Create: without it Open of a missing root fails with
//     objstore.ErrNoStore.
//
// # Failures
//
// Errors are one line, "hdfsbackend: <op> <object>: <reason>", and wrap
// objstore.ErrNotExist and objstore.ErrExist where they apply,
// ErrUnavailable when the NameNode could not be reached, ErrPipeline when a
// DataNode write failed, and os.ErrPermission for a denied access. A
// NameNode exception (quota, safe mode, ...) shows its class and the first
// line of its message.
//
// Calls are spread over Options.Clients NameNode connections. A connection
// that fails is dropped and the next call dials a new one, so a Store keeps
// working across a NameNode restart without being reopened. A failed call
// is repeated once on a new connection when that is safe: when the request
// never left (the NameNode was unreachable) or the call only reads. A
// mutation whose answer was lost is not repeated (a repeated Create would
// report ErrExist for its own object) and fails with ErrUnavailable.
// NameNode calls time out after Options.Timeout. DataNode connections have
// a connect timeout and TCP keepalives but no I/O deadline: an open Writer
// may sit idle for as long as its caller likes.
//
// # Block locations
//
// The library speaks only the NameNode's RPC protocol and has no
// getFileBlockLocations. Store.BlockLocations asks the NameNode's WebHDFS
// REST API instead (GETFILEBLOCKLOCATIONS over net/http, simple
// authentication with user.name): at a given address, or at the
// dfs.namenode.http-address of the Hadoop configuration (with HA, each
// NameNode's in turn, passing over a standby), else the NameNode's host at
// port 9870. ErrWebHDFS marks an address that cannot answer. hlfs locate
// adds the blocks up per DataNode.
//
// # Testing
//
// The tests run against a real HDFS: the mini-cluster of testdata/hdfs
// (Hadoop 3.5.0 MiniDFSCluster, one NameNode and three DataNodes in one
// JVM), started with scripts/hdfs-up.sh. Package hdfstest finds it, gives
// each test a fresh folder and stops and restarts nodes through the
// cluster's control channel. Without HLFS_HDFS_URI the HDFS tests fail,
// saying how to start the cluster, unless HLFS_SKIP_HDFS=1 skips them.
package hdfsbackend
