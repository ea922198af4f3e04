#!/usr/bin/env bash
# Prints the distributed-mode figures on this machine: builds the release binary, starts the
# local Kafka (docker/local/up --only kafka) and a twinline registry on it, then runs
# `twinline bench --kafka` (one instance against a bare rdkafka consumer, event-to-view
# freshness, recovery after kill -9 and after a broker restart). Extra arguments go to
# `twinline bench` (e.g. --events 1000000 --machines 50).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
ensure_rust
ensure_python
log "building the release binary"
cargo build --release -p twinline --quiet
bin="$CARGO_TARGET_DIR/release/twinline"
kafka=$(bash "$ROOT/docker/local/up" --only kafka | sed -n 's/^TWINLINE_KAFKA=//p')
[[ -n "$kafka" ]] || { log "docker/local/up printed no TWINLINE_KAFKA"; exit 1; }
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$bin" --log warn registry --kafka "$kafka" --listen "127.0.0.1:$port" \
  --topic "_schemas-bench-$$" --register-builtin &
registry=$!
trap 'kill $registry 2>/dev/null || true' EXIT
for _ in $(seq 1 300); do
  curl -fsS "http://127.0.0.1:$port/subjects" 2>/dev/null | grep -q twin-state && break
  sleep 0.2
done
"$bin" --log warn bench --kafka "$kafka" --schema-registry "http://127.0.0.1:$port" \
  --restart-broker "$ROOT/docker/local/restart-kafka" "$@"
