# docker/local/lib.sh: settings and helpers shared by up, down and restart-kafka.
# Sourced, not run. Owns: where jars and data live, the ports, fetching classpaths from
# Maven Central, starting/stopping one server by PID file, and the readiness probes.
# Every human-facing line goes to stderr: stdout of `up` is reserved for the env lines.

set -euo pipefail

LOCAL_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CONF_DIR="$LOCAL_DIR/conf"

CACHE="${TWINLINE_CACHE:-$HOME/.cache/twinline}/servers"
RUN="${TWINLINE_RUN:-$CACHE/run}"
M2="$CACHE/m2"

KAFKA_VERSION="${TWINLINE_KAFKA_VERSION:-4.4.0}"
# log4j-slf4j-impl must match the log4j-core that kafka's POMs bring in.
KAFKA_LOG4J_VERSION="${TWINLINE_KAFKA_LOG4J_VERSION:-2.25.5}"
CASSANDRA_VERSION="${TWINLINE_CASSANDRA_VERSION:-5.0.9}"

KAFKA_PORT="${TWINLINE_KAFKA_PORT:-19092}"
KAFKA_CONTROLLER_PORT="${TWINLINE_KAFKA_CONTROLLER_PORT:-19093}"
CASSANDRA_PORT="${TWINLINE_CASSANDRA_PORT:-19042}"
CASSANDRA_STORAGE_PORT="${TWINLINE_CASSANDRA_STORAGE_PORT:-17000}"
REGISTRY_PORT="${TWINLINE_REGISTRY_PORT:-18081}"

KAFKA_HEAP="${TWINLINE_KAFKA_HEAP:--Xms128m -Xmx512m}"
CASSANDRA_HEAP="${TWINLINE_CASSANDRA_HEAP:--Xms256m -Xmx1g}"
# C1 only: on a shared 2-core machine, C2 compiling the servers' hot paths competes with the
# startup itself; measured, Kafka then answers in half the time. Tests push little data, so
# C2's peak throughput is not needed. Set these to "" for production-like JIT.
KAFKA_JVM_OPTS="${TWINLINE_KAFKA_JVM_OPTS--XX:TieredStopAtLevel=1}"
CASSANDRA_JVM_OPTS="${TWINLINE_CASSANDRA_JVM_OPTS--XX:TieredStopAtLevel=1}"

# Seconds each server gets to answer before `up` gives up and shows its log.
KAFKA_TIMEOUT="${TWINLINE_KAFKA_TIMEOUT:-120}"
CASSANDRA_TIMEOUT="${TWINLINE_CASSANDRA_TIMEOUT:-240}"
STOP_TIMEOUT="${TWINLINE_STOP_TIMEOUT:-30}"

# A fixed KRaft cluster id (base64url of the 16 bytes "twinline-local-1"): formatting is
# then reproducible and a restarted broker finds the same cluster in its log dirs.
KAFKA_CLUSTER_ID="dHdpbmxpbmUtbG9jYWwtMQ"

KAFKA_LIB="$CACHE/kafka-$KAFKA_VERSION/lib"
CASSANDRA_LIB="$CACHE/cassandra-$CASSANDRA_VERSION/lib"

log() { printf '[twinline-servers] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

need() { command -v "$1" >/dev/null 2>&1 || die "'$1' is required but not installed"; }

# fetch_classpath NAME POM DEST -Dprop=value...: resolve the POM's full transitive runtime
# classpath from Maven Central into DEST once; a `.complete` marker makes reruns free.
fetch_classpath() {
  local name=$1 pom=$2 dest=$3
  shift 3
  if [[ -f "$dest/.complete" ]]; then
    return 0
  fi
  need mvn
  local t0 mvnlog="$CACHE/fetch-$name.log"
  t0=$(now)
  log "fetching $name from Maven Central (once; log: $mvnlog)"
  mkdir -p "$CACHE"
  rm -rf "$dest"
  if ! mvn -B -q -f "$pom" -s "$CONF_DIR/maven-settings.xml" -Dmaven.repo.local="$M2" "$@" \
      dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$dest" \
      >"$mvnlog" 2>&1; then
    tail -n 30 "$mvnlog" >&2
    die "could not fetch $name"
  fi
  touch "$dest/.complete"
  log "fetched $name: $(find "$dest" -name '*.jar' | wc -l) jars, $(du -sh "$dest" | cut -f1) in $(since "$t0")s"
}

classpath_of() { find "$1" -name '*.jar' | sort | paste -sd: -; }

# pid_alive PIDFILE: true when the file names a live process of ours: a java process whose
# command line has the server's main class, so a recycled PID is never taken for a server.
pid_alive() {
  local pidfile=$1 pid
  [[ -f "$pidfile" ]] || return 1
  pid=$(cat "$pidfile")
  [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null || return 1
  local cmd
  cmd=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
  case "$pidfile" in
    */kafka.pid) [[ $cmd == *"kafka.Kafka "* ]] ;;
    */cassandra.pid) [[ $cmd == *CassandraDaemon* ]] ;;
    *) return 0 ;;
  esac
}

# pid_running PIDFILE: the process we just launched still exists. Used while waiting for a
# start: for a moment after `&` the PID is still the forked shell, not yet java.
pid_running() {
  [[ -f "$1" ]] && kill -0 "$(cat "$1")" 2>/dev/null
}

# port_free NAME PORT: refuse to start a server whose port another process holds. Waits up
# to 10 s first: a server that was just stopped may still be closing its sockets.
port_free() {
  local i
  for ((i = 0; i < 50; i++)); do
    port_open "$2" || return 0
    sleep 0.2
  done
  die "127.0.0.1:$2 (for $1) is already in use by another process; set TWINLINE_*_PORT"
}

# proc_gone PID: exited (a zombie that nobody reaped yet counts as exited).
proc_gone() {
  kill -0 "$1" 2>/dev/null || return 0
  [[ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" == Z ]]
}

# stop_pid NAME PIDFILE: SIGTERM, wait up to STOP_TIMEOUT seconds, then SIGKILL.
stop_pid() {
  local name=$1 pidfile=$2 pid i
  if ! pid_alive "$pidfile"; then
    rm -f "$pidfile"
    return 0
  fi
  pid=$(cat "$pidfile")
  log "stopping $name (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < STOP_TIMEOUT * 10; i++)); do
    proc_gone "$pid" && break
    sleep 0.1
  done
  if ! proc_gone "$pid"; then
    log "$name did not stop within ${STOP_TIMEOUT}s: killing it"
    kill -KILL "$pid" 2>/dev/null || true
    until proc_gone "$pid"; do sleep 0.1; done
  fi
  rm -f "$pidfile"
}

show_log_tail() {
  local name=$1 file=$2
  log "---- last lines of $name log ($file) ----"
  if [[ -f "$file" ]]; then tail -n 40 "$file" >&2; else log "(no log written)"; fi
  log "---- end of $name log ----"
}

# port_open PORT: a TCP connect to 127.0.0.1:PORT succeeds.
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# ---------------------------------------------------------------- Kafka

kafka_dir() { echo "$RUN/kafka"; }

kafka_write_config() {
  local dir
  dir=$(kafka_dir)
  mkdir -p "$dir/data" "$dir/logs"
  cat >"$dir/server.properties" <<EOF
# Written by docker/local/up: one KRaft node that is both broker and controller.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$dir/data
num.partitions=1
default.replication.factor=1
min.insync.replicas=1
# One node: every internal topic has one replica. Fewer partitions than the defaults (50)
# make the first consumer group and the first transaction start in well under a second.
offsets.topic.replication.factor=1
offsets.topic.num.partitions=8
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=8
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
num.network.threads=2
num.io.threads=4
log.cleaner.threads=1
# No controlled shutdown on a single node: it takes every partition's leadership away while the
# transaction coordinator is still completing transactions, and the coordinator then skips the
# markers of leaderless partitions ("likely deleted already"), which leaves hanging
# transactions behind (a read_committed reader stops there for good). Without it, the node stops
# with its leadership intact and completes pending transactions from its log when it is back.
controlled.shutdown.enable=false
EOF
}

kafka_format_if_needed() {
  local dir
  dir=$(kafka_dir)
  if [[ -f "$dir/data/meta.properties" ]]; then
    return 0
  fi
  log "formatting Kafka storage in $dir/data"
  if ! java -Xmx256m -Dlog4j2.configurationFile="$CONF_DIR/kafka-log4j2.properties" \
      -Dkafka.logs.dir="$dir/logs" -cp "$(classpath_of "$KAFKA_LIB")" \
      kafka.tools.StorageTool format -t "$KAFKA_CLUSTER_ID" -c "$dir/server.properties" \
      >"$dir/logs/format.log" 2>&1; then
    show_log_tail "kafka-storage format" "$dir/logs/format.log"
    die "kafka-storage format failed"
  fi
}

kafka_start() {
  local dir
  dir=$(kafka_dir)
  if pid_alive "$RUN/kafka.pid"; then
    log "Kafka already running (pid $(cat "$RUN/kafka.pid"))"
    return 0
  fi
  port_free Kafka "$KAFKA_PORT"
  port_free "the Kafka controller" "$KAFKA_CONTROLLER_PORT"
  kafka_write_config
  kafka_format_if_needed
  log "starting Kafka $KAFKA_VERSION on 127.0.0.1:$KAFKA_PORT"
  KAFKA_T0=$(now)
  nohup java $KAFKA_HEAP $KAFKA_JVM_OPTS -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$CONF_DIR/kafka-log4j2.properties" -Dkafka.logs.dir="$dir/logs" \
    -cp "$(classpath_of "$KAFKA_LIB")" kafka.Kafka "$dir/server.properties" \
    >"$dir/logs/stdout.log" 2>&1 </dev/null &
  echo $! >"$RUN/kafka.pid"
}

# A Metadata request (v4, all topics) answered with this broker in the broker list: the
# broker is registered and unfenced, so clients can use it. Plain python3, no client
# library and no extra JVM, so the probe costs milliseconds.
kafka_probe() {
  python3 - "$1" <<'PY'
import socket, struct, sys
port = int(sys.argv[1])
client = b"twinline-up"
body = struct.pack(">hhih", 3, 4, 7, len(client)) + client + struct.pack(">i?", -1, False)
s = socket.create_connection(("127.0.0.1", port), timeout=5)
s.sendall(struct.pack(">i", len(body)) + body)
def read(n):
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            sys.exit("connection closed")
        buf += chunk
    return buf
size, = struct.unpack(">i", read(4))
resp = read(size)
corr, _throttle, brokers = struct.unpack(">iii", resp[:12])
if corr != 7 or brokers < 1:
    sys.exit(f"no broker registered yet (correlation {corr}, brokers {brokers})")
node, hlen = struct.unpack(">ih", resp[12:18])
host = resp[18:18 + hlen].decode()
bport, = struct.unpack(">i", resp[18 + hlen:22 + hlen])
if bport != port:
    sys.exit(f"broker advertises {host}:{bport}, expected port {port}")
print(f"broker {node} at {host}:{bport}")
PY
}

# The broker is ready when it answers a metadata request listing itself.
kafka_wait() {
  local dir deadline
  dir=$(kafka_dir)
  deadline=$((SECONDS + KAFKA_TIMEOUT))
  until port_open "$KAFKA_PORT"; do
    if ! pid_running "$RUN/kafka.pid"; then
      show_log_tail kafka "$dir/logs/server.log"; show_log_tail "kafka stdout" "$dir/logs/stdout.log"
      die "Kafka exited during startup"
    fi
    if ((SECONDS > deadline)); then
      show_log_tail kafka "$dir/logs/server.log"
      die "Kafka did not open 127.0.0.1:$KAFKA_PORT within ${KAFKA_TIMEOUT}s"
    fi
    sleep 0.2
  done
  until kafka_probe "$KAFKA_PORT" >"$dir/logs/probe.log" 2>&1; do
    if ((SECONDS > deadline)); then
      show_log_tail "kafka probe" "$dir/logs/probe.log"; show_log_tail kafka "$dir/logs/server.log"
      die "Kafka did not answer a metadata request within ${KAFKA_TIMEOUT}s"
    fi
    sleep 0.5
  done
  if [[ -n "${KAFKA_T0:-}" ]]; then log "Kafka ready in $(since "$KAFKA_T0")s"; else log "Kafka ready"; fi
}

# ---------------------------------------------------------------- Cassandra

cassandra_dir() { echo "$RUN/cassandra"; }

cassandra_start() {
  local dir cp
  dir=$(cassandra_dir)
  if pid_alive "$RUN/cassandra.pid"; then
    log "Cassandra already running (pid $(cat "$RUN/cassandra.pid"))"
    return 0
  fi
  port_free Cassandra "$CASSANDRA_PORT"
  port_free "Cassandra's storage port" "$CASSANDRA_STORAGE_PORT"
  mkdir -p "$dir/logs"
  sed -e "s#@DATA@#$dir#g" -e "s#@NATIVE_PORT@#$CASSANDRA_PORT#g" \
    -e "s#@STORAGE_PORT@#$CASSANDRA_STORAGE_PORT#g" \
    "$CONF_DIR/cassandra.yaml.in" >"$dir/cassandra.yaml"
  cp=$(classpath_of "$CASSANDRA_LIB")
  local jamm
  jamm=$(find "$CASSANDRA_LIB" -name 'jamm-*.jar' | head -n 1)
  log "starting Cassandra $CASSANDRA_VERSION on 127.0.0.1:$CASSANDRA_PORT"
  CASSANDRA_T0=$(now)
  # The JPMS flags are those of Cassandra's conf/jvm17-server.options; the -D flags skip
  # the waits that only matter in a multi-node ring (gossip settling, ring delay, the
  # default superuser's setup delay), and row_overhead_size is the value this node
  # measures itself at every start (4 s of a loaded 2-core machine's time otherwise).
  nohup java $CASSANDRA_HEAP $CASSANDRA_JVM_OPTS -Xss512k -XX:+UseG1GC -XX:+ParallelRefProcEnabled \
    -XX:MaxTenuringThreshold=1 -XX:G1RSetUpdatingPauseTimePercent=5 -XX:MaxGCPauseMillis=300 \
    -XX:+HeapDumpOnOutOfMemoryError -XX:HeapDumpPath="$dir" -XX:+ExitOnOutOfMemoryError \
    ${jamm:+-javaagent:$jamm} \
    -Djdk.attach.allowAttachSelf=true \
    --add-exports java.base/jdk.internal.misc=ALL-UNNAMED \
    --add-exports java.management.rmi/com.sun.jmx.remote.internal.rmi=ALL-UNNAMED \
    --add-exports java.rmi/sun.rmi.registry=ALL-UNNAMED \
    --add-exports java.rmi/sun.rmi.server=ALL-UNNAMED \
    --add-exports java.sql/java.sql=ALL-UNNAMED \
    --add-exports java.base/java.lang.ref=ALL-UNNAMED \
    --add-exports jdk.unsupported/sun.misc=ALL-UNNAMED \
    --add-exports jdk.compiler/com.sun.tools.javac.file=ALL-UNNAMED \
    --add-exports jdk.attach/sun.tools.attach=ALL-UNNAMED \
    --add-opens java.base/java.lang.module=ALL-UNNAMED \
    --add-opens java.base/jdk.internal.loader=ALL-UNNAMED \
    --add-opens java.base/jdk.internal.ref=ALL-UNNAMED \
    --add-opens java.base/jdk.internal.reflect=ALL-UNNAMED \
    --add-opens java.base/jdk.internal.math=ALL-UNNAMED \
    --add-opens java.base/jdk.internal.module=ALL-UNNAMED \
    --add-opens java.base/jdk.internal.util.jar=ALL-UNNAMED \
    --add-opens jdk.management/com.sun.management.internal=ALL-UNNAMED \
    --add-opens java.base/sun.nio.ch=ALL-UNNAMED \
    --add-opens java.base/java.io=ALL-UNNAMED \
    --add-opens java.base/java.lang.reflect=ALL-UNNAMED \
    --add-opens jdk.compiler/com.sun.tools.javac=ALL-UNNAMED \
    --add-opens java.base/java.lang=ALL-UNNAMED \
    --add-opens java.base/java.util=ALL-UNNAMED \
    -Dio.netty.tryReflectionSetAccessible=true \
    -Dio.netty.allocator.useCacheForAllThreads=true -Dio.netty.allocator.maxOrder=11 \
    -Djava.net.preferIPv4Stack=true \
    -Dcassandra.config="file://$dir/cassandra.yaml" \
    -Dcassandra.storagedir="$dir" -Dcassandra.logdir="$dir/logs" \
    -Dlogback.configurationFile="$CONF_DIR/cassandra-logback.xml" \
    -Dcassandra-foreground=no -Dcassandra-pidfile="$RUN/cassandra.pid" \
    -Dcassandra.skip_wait_for_gossip_to_settle=0 -Dcassandra.ring_delay_ms=1000 \
    -Dcassandra.superuser_setup_delay_ms=0 -Dcassandra.memtable.row_overhead_size=180 \
    -cp "$cp" org.apache.cassandra.service.CassandraDaemon \
    >"$dir/logs/stdout.log" 2>&1 </dev/null &
  echo $! >"$RUN/cassandra.pid"
}

# CQL OPTIONS frame (protocol v4) answered by SUPPORTED: the native transport serves
# requests. It is the last thing CassandraDaemon starts, so the node is up.
cql_probe() {
  python3 - "$1" <<'PY'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=2)
s.sendall(bytes([0x04, 0, 0, 0, 0x05, 0, 0, 0, 0]))
head = s.recv(9)
sys.exit(0 if len(head) >= 5 and head[0] == 0x84 and head[4] == 0x06 else 1)
PY
}

cassandra_wait() {
  local dir deadline
  dir=$(cassandra_dir)
  deadline=$((SECONDS + CASSANDRA_TIMEOUT))
  until port_open "$CASSANDRA_PORT" && cql_probe "$CASSANDRA_PORT" 2>/dev/null; do
    if ! pid_running "$RUN/cassandra.pid"; then
      show_log_tail cassandra "$dir/logs/system.log"; show_log_tail "cassandra stdout" "$dir/logs/stdout.log"
      die "Cassandra exited during startup"
    fi
    if ((SECONDS > deadline)); then
      show_log_tail cassandra "$dir/logs/system.log"
      die "Cassandra did not answer CQL on 127.0.0.1:$CASSANDRA_PORT within ${CASSANDRA_TIMEOUT}s"
    fi
    sleep 0.5
  done
  if [[ -n "${CASSANDRA_T0:-}" ]]; then log "Cassandra ready in $(since "$CASSANDRA_T0")s"; else log "Cassandra ready"; fi
}
