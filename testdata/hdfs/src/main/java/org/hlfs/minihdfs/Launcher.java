package org.hlfs.minihdfs;

import java.io.BufferedReader;
import java.io.File;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.PrintWriter;
import java.io.Writer;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.StandardCopyOption;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.Map;

import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.hdfs.HdfsConfiguration;
import org.apache.hadoop.hdfs.MiniDFSCluster;
import org.apache.hadoop.hdfs.MiniDFSCluster.DataNodeProperties;

/**
 * Starts a real HDFS (one NameNode, N DataNodes) in this JVM for the hlfs
 * tests and lets a test stop and restart its parts through a line-based
 * control channel on a loopback TCP port. See testdata/hdfs/README.md.
 *
 * <p>Flags: --port P (NameNode RPC port, default 9000), --dir D (data, conf
 * and control.port go here; required), --datanodes N (default 3),
 * --block-size BYTES (default 4 MiB), --control-port P (default 0: any),
 * --lease-soft-limit-ms MS (default 0: Hadoop's 60 s), --http-port P
 * (NameNode HTTP port, which serves WebHDFS; default 0: a free port, picked
 * at start and kept across NameNode restarts).
 *
 * <p>Output on stdout, one line each: "CONF dir", "CONTROL host:port",
 * "HTTP http://127.0.0.1:P", "READY hdfs://127.0.0.1:P". The client
 * configuration written to dir/conf has fs.defaultFS and
 * dfs.namenode.http-address (the WebHDFS address hlfs locate uses). Commands (one per line; each answers one line
 * beginning "OK" or "ERR"): status, stop-datanode N [nomark],
 * restart-datanode N, stop-namenode, start-namenode, restart-namenode,
 * shutdown. DataNode numbers N are the slots 0..datanodes-1 assigned at
 * start; they stay stable across stops and restarts.
 */
public final class Launcher {
  private static final long WAIT_MS = 120_000;

  private final MiniDFSCluster cluster;
  /** slot -> DataNode transfer address ("127.0.0.1:port"), fixed at start. */
  private final String[] slots;
  /** slot -> properties of a stopped DataNode, for restarting it. */
  private final Map<Integer, DataNodeProperties> stopped = new HashMap<>();
  /** NameNode lease soft limit in ms (Hadoop's is 60 s), or 0 to keep it. */
  private final long leaseSoftLimitMs;
  private boolean nameNodeDown;

  private Launcher(MiniDFSCluster cluster, long leaseSoftLimitMs) {
    this.cluster = cluster;
    this.leaseSoftLimitMs = leaseSoftLimitMs;
    this.slots = new String[cluster.getDataNodes().size()];
    for (int i = 0; i < slots.length; i++) {
      slots[i] = cluster.getDataNodes().get(i).getDatanodeId().getXferAddr();
    }
  }

  public static void main(String[] args) throws Exception {
    Map<String, String> flags = parseFlags(args);
    int port = Integer.parseInt(flags.getOrDefault("port", "9000"));
    int datanodes = Integer.parseInt(flags.getOrDefault("datanodes", "3"));
    long blockSize = Long.parseLong(flags.getOrDefault("block-size", "4194304"));
    int controlPort = Integer.parseInt(flags.getOrDefault("control-port", "0"));
    int httpPort = Integer.parseInt(flags.getOrDefault("http-port", "0"));
    if (httpPort == 0) {
      httpPort = freePort();
    }
    long leaseSoftLimitMs = Long.parseLong(flags.getOrDefault("lease-soft-limit-ms", "0"));
    String dirFlag = flags.get("dir");
    if (dirFlag == null) {
      die("--dir is required");
    }
    File dir = new File(dirFlag).getAbsoluteFile();
    File confDir = new File(dir, "conf");
    File dataDir = new File(dir, "dfs");
    if (!confDir.isDirectory() && !confDir.mkdirs()) {
      die("cannot create " + confDir);
    }

    Configuration conf = new HdfsConfiguration();
    conf.setBoolean("dfs.permissions.enabled", false);
    conf.setInt("dfs.replication", Math.min(3, datanodes));
    conf.setInt("dfs.namenode.replication.min", 1);
    conf.setLong("dfs.blocksize", blockSize);
    // Notice a stopped DataNode quickly: dead after
    // 2 * recheck + 10 * heartbeat = 2 s + 10 s.
    conf.setLong("dfs.heartbeat.interval", 1);
    conf.setInt("dfs.namenode.heartbeat.recheck-interval", 1000);
    conf.setLong("dfs.namenode.stale.datanode.interval", 3000);
    // Writes go on with fewer DataNodes than the replication factor.
    conf.setBoolean("dfs.client.block.write.replace-datanode-on-failure.enable", false);
    conf.set("dfs.client.block.write.replace-datanode-on-failure.policy", "NEVER");
    // Leave safe mode as soon as the blocks are reported.
    conf.setInt("dfs.namenode.safemode.extension", 0);
    // WebHDFS (on by default; explicit because hlfs locate needs it) on a
    // fixed port, so a NameNode restart serves it at the same address.
    conf.setBoolean("dfs.webhdfs.enabled", true);
    // Quick DataNode reconnects after a NameNode restart.
    conf.setInt("ipc.client.connect.max.retries", 2);
    conf.setInt("ipc.client.connect.retry.interval", 500);

    long start = System.nanoTime();
    MiniDFSCluster cluster = new MiniDFSCluster.Builder(conf, dataDir)
        .nameNodePort(port)
        .nameNodeHttpPort(httpPort)
        .numDataNodes(datanodes)
        .format(true)
        .skipFsyncForTesting(false)
        .waitSafeMode(true)
        .build();
    cluster.waitActive();
    Launcher l = new Launcher(cluster, leaseSoftLimitMs);
    l.waitOutOfSafeMode();
    l.applyLeaseLimit();
    Runtime.getRuntime().addShutdownHook(new Thread(cluster::shutdown));

    String uri = "hdfs://127.0.0.1:" + cluster.getNameNodePort();
    String httpAddr = "127.0.0.1:" + cluster.getNameNode().getHttpAddress().getPort();
    writeConf(confDir, uri, httpAddr, conf);

    ServerSocket control = new ServerSocket(controlPort, 8, InetAddress.getLoopbackAddress());
    String controlAddr = "127.0.0.1:" + control.getLocalPort();
    writeAtomically(new File(dir, "control.port"), controlAddr + "\n");
    writeAtomically(new File(dir, "uri"), uri + "\n");
    System.out.println("CONF " + confDir);
    System.out.println("CONTROL " + controlAddr);
    System.out.println("HTTP http://" + httpAddr);
    System.out.printf("started in %.1f s%n", (System.nanoTime() - start) / 1e9);
    System.out.println("READY " + uri);
    System.out.flush();
    l.serve(control);
  }

  /** Answers control connections one at a time, so commands never overlap. */
  private void serve(ServerSocket control) {
    while (true) {
      try (Socket s = control.accept();
           BufferedReader in = new BufferedReader(
               new InputStreamReader(s.getInputStream(), StandardCharsets.UTF_8));
           PrintWriter out = new PrintWriter(s.getOutputStream(), true, StandardCharsets.UTF_8)) {
        String line;
        while ((line = in.readLine()) != null) {
          line = line.trim();
          if (line.isEmpty()) {
            continue;
          }
          log("command: " + line);
          String reply;
          try {
            reply = "OK" + handle(line);
          } catch (Exception e) {
            reply = "ERR " + String.valueOf(e.getMessage()).replace('\n', ' ');
          }
          log("reply: " + reply);
          out.println(reply);
          if (line.equals("shutdown")) {
            out.flush();
            s.close();
            cluster.shutdown();
            System.exit(0);
          }
        }
      } catch (IOException e) {
        log("control connection: " + e);
      }
    }
  }

  /** Runs one command; returns the text after "OK". */
  private String handle(String line) throws Exception {
    String[] w = line.split("\\s+");
    switch (w[0]) {
      case "status":
        return status();
      case "stop-datanode": {
        int n = slot(w);
        if (stopped.containsKey(n)) {
          throw new IllegalStateException("datanode " + n + " is already stopped");
        }
        DataNodeProperties p = cluster.stopDataNode(slots[n]);
        if (p == null) {
          throw new IllegalStateException("datanode " + n + " not found");
        }
        stopped.put(n, p);
        boolean mark = !(w.length > 2 && w[2].equals("nomark"));
        if (mark && !nameNodeDown) {
          // Tell the NameNode now instead of after the heartbeat expiry.
          cluster.setDataNodeDead(p.getDatanode().getDatanodeId());
        }
        return " datanode " + n + " stopped" + (mark ? ", marked dead" : "");
      }
      case "restart-datanode": {
        int n = slot(w);
        DataNodeProperties p = stopped.remove(n);
        if (p == null) {
          p = cluster.stopDataNode(slots[n]);
        }
        if (p == null || !cluster.restartDataNode(p, true)) {
          throw new IllegalStateException("datanode " + n + " did not restart");
        }
        if (!nameNodeDown) {
          cluster.waitActive();
        }
        return " datanode " + n + " running";
      }
      case "stop-namenode":
        cluster.shutdownNameNode(0);
        nameNodeDown = true;
        return " namenode stopped";
      case "start-namenode":
      case "restart-namenode":
        cluster.restartNameNode(0, true);
        nameNodeDown = false;
        waitOutOfSafeMode();
        applyLeaseLimit();
        return " namenode running on port " + cluster.getNameNodePort();
      case "shutdown":
        return " shutting down";
      default:
        throw new IllegalArgumentException("unknown command " + w[0]
            + " (status, stop-datanode N [nomark], restart-datanode N, stop-namenode,"
            + " start-namenode, restart-namenode, shutdown)");
    }
  }

  private int slot(String[] w) {
    if (w.length < 2) {
      throw new IllegalArgumentException(w[0] + " needs a datanode number 0.." + (slots.length - 1));
    }
    int n = Integer.parseInt(w[1]);
    if (n < 0 || n >= slots.length) {
      throw new IllegalArgumentException("datanode " + n + " out of range 0.." + (slots.length - 1));
    }
    return n;
  }

  private String status() {
    StringBuilder b = new StringBuilder();
    if (nameNodeDown) {
      b.append(" namenode=down");
    } else {
      b.append(" namenode=up safemode=").append(cluster.getNamesystem().isInSafeMode())
          .append(" live=").append(cluster.getNamesystem().getNumLiveDataNodes())
          .append(" dead=").append(cluster.getNamesystem().getNumDeadDataNodes());
    }
    for (int i = 0; i < slots.length; i++) {
      b.append(" dn").append(i).append('=').append(slots[i])
          .append(stopped.containsKey(i) ? ":stopped" : ":running");
    }
    return b.toString();
  }

  /**
   * Shortens the lease soft limit, after which another client's create,
   * append or truncate recovers the lease of a writer that stopped renewing
   * it (a crashed writer). The hard limit (20 min) stays.
   */
  private void applyLeaseLimit() {
    if (leaseSoftLimitMs > 0) {
      cluster.setLeasePeriod(leaseSoftLimitMs, 1_200_000L);
    }
  }

  private void waitOutOfSafeMode() throws InterruptedException {
    long deadline = System.currentTimeMillis() + WAIT_MS;
    while (cluster.getNamesystem().isInSafeMode()) {
      if (System.currentTimeMillis() > deadline) {
        throw new IllegalStateException("namenode still in safe mode after " + WAIT_MS + " ms");
      }
      Thread.sleep(100);
    }
  }

  /** Writes the client side of the configuration, for HADOOP_CONF_DIR. */
  private static void writeConf(File confDir, String uri, String httpAddr, Configuration conf)
      throws IOException {
    Map<String, String> core = new LinkedHashMap<>();
    core.put("fs.defaultFS", uri);
    Map<String, String> hdfs = new LinkedHashMap<>();
    for (String k : new String[] {
        "dfs.replication", "dfs.blocksize", "dfs.permissions.enabled",
        "dfs.client.block.write.replace-datanode-on-failure.enable",
        "dfs.client.block.write.replace-datanode-on-failure.policy"}) {
      hdfs.put(k, conf.get(k));
    }
    hdfs.put("dfs.namenode.http-address", httpAddr);
    writeAtomically(new File(confDir, "core-site.xml"), xml(core));
    writeAtomically(new File(confDir, "hdfs-site.xml"), xml(hdfs));
  }

  private static String xml(Map<String, String> props) {
    StringBuilder b = new StringBuilder("<?xml version=\"1.0\"?>\n<configuration>\n");
    for (Map.Entry<String, String> e : props.entrySet()) {
      b.append("  <property><name>").append(e.getKey()).append("</name><value>")
          .append(e.getValue()).append("</value></property>\n");
    }
    return b.append("</configuration>\n").toString();
  }

  private static void writeAtomically(File f, String text) throws IOException {
    File tmp = new File(f.getPath() + ".tmp");
    try (Writer w = Files.newBufferedWriter(tmp.toPath(), StandardCharsets.UTF_8)) {
      w.write(text);
    }
    Files.move(tmp.toPath(), f.toPath(), StandardCopyOption.REPLACE_EXISTING,
        StandardCopyOption.ATOMIC_MOVE);
  }

  /** Returns a loopback port that was free a moment ago. */
  private static int freePort() throws IOException {
    try (ServerSocket s = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
      return s.getLocalPort();
    }
  }

  private static Map<String, String> parseFlags(String[] args) {
    Map<String, String> m = new HashMap<>();
    for (int i = 0; i < args.length; i++) {
      if (!args[i].startsWith("--") || i + 1 >= args.length) {
        die("usage: Launcher --dir D [--port 9000] [--datanodes 3] [--block-size B]"
            + " [--control-port P] [--lease-soft-limit-ms MS] [--http-port P]");
      }
      m.put(args[i].substring(2), args[++i]);
    }
    return m;
  }

  private static void log(String msg) {
    System.err.println("[launcher] " + msg);
  }

  private static void die(String msg) {
    System.err.println("launcher: " + msg);
    System.exit(2);
  }
}
