#!/usr/bin/env bash
# docker/check.sh: validate the container and cluster files without a Docker engine.
#  1. docker/docker-compose.yml with Docker Compose's own loader (`docker compose config -q`:
#     schema, interpolation, anchors/merge keys, depends_on targets). Uses the docker CLI's
#     compose plugin when present; otherwise a `docker-compose` binary built once from the
#     Compose Go module (Go module proxy) into the tools cache.
#  2. docker/k8s/*.yaml against the Kubernetes OpenAPI schemas, strict (unknown fields are
#     errors), with `kubernetes-validate` from PyPI, which ships the schemas (no network
#     needed at validation time).
#  3. docker/Dockerfile's stages reference only stages that exist (a cheap parse).
# Prints one line per check and 'N passed, N failed'; exits 1 if anything failed.

set -euo pipefail
DOCKER_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
TOOLS="${TWINLINE_CACHE:-$HOME/.cache/twinline}/tools"
COMPOSE_VERSION="${TWINLINE_COMPOSE_VERSION:-v2.40.3}"
K8S_VERSION="${TWINLINE_K8S_VERSION:-1.33.0}"

log() { printf '[docker-check] %s\n' "$*" >&2; }
passed=0
failed=0
# The built twinline binary, to check the command lines the files run.
bin="${TWINLINE_BIN:-${CARGO_TARGET_DIR:-$(cd "$DOCKER_DIR/.." && pwd)/target}/debug/twinline}"
ok() { printf 'ok   %s\n' "$1"; passed=$((passed + 1)); }
fail() { printf 'FAIL %s\n' "$1"; failed=$((failed + 1)); }

# ---- the compose CLI ----
compose_cmd() {
  if docker compose version >/dev/null 2>&1; then
    echo "docker compose"
    return 0
  fi
  if command -v docker-compose >/dev/null 2>&1 && docker-compose version 2>/dev/null | grep -q 'v2\.'; then
    echo "docker-compose"
    return 0
  fi
  local bin="$TOOLS/docker-compose-$COMPOSE_VERSION"
  if [[ ! -x "$bin" ]]; then
    command -v go >/dev/null 2>&1 || { log "no docker compose and no Go to build it"; return 1; }
    log "building docker-compose $COMPOSE_VERSION from its Go module (once, several minutes)"
    local dir
    # `go install` refuses modules whose go.mod has exclude directives (Compose's has), so
    # build inside the downloaded module, where its go.mod is the main module's.
    dir=$(go mod download -json "github.com/docker/compose/v2@$COMPOSE_VERSION" |
      python3 -c 'import json, sys; print(json.load(sys.stdin)["Dir"])')
    mkdir -p "$TOOLS"
    (cd "$dir" && nice go build -trimpath -ldflags "-s -w" -o "$bin.tmp" ./cmd) >&2
    mv "$bin.tmp" "$bin"
  fi
  echo "$bin"
}

if compose=$(compose_cmd); then
  log "compose: $compose"
  # config -q needs no engine: it only loads, validates and interpolates the model.
  if out=$($compose -f "$DOCKER_DIR/docker-compose.yml" config -q 2>&1); then
    ok "docker-compose.yml (compose config -q)"
  else
    printf '%s\n' "$out"
    fail "docker-compose.yml (compose config -q)"
  fi
  # Every twinline service must run a command line twinline accepts: each is parsed by the
  # built binary's own argument parser (`<command> --help` fails on an unknown flag).
  if [[ -x "$bin" ]]; then
    cmds=$($compose -f "$DOCKER_DIR/docker-compose.yml" config --format json 2>/dev/null |
      python3 -c 'import json, sys
for name, s in sorted(json.load(sys.stdin)["services"].items()):
    if s.get("image") == "twinline:dev":
        print(name + "\t" + json.dumps(s.get("command") or []))')
    while IFS=$'\t' read -r name argv; do
      [[ -n "$name" ]] || continue
      mapfile -t args < <(python3 -c 'import json, sys; print("\n".join(json.loads(sys.argv[1])))' "$argv")
      if "$bin" "${args[@]}" --help >/dev/null 2>&1; then
        ok "docker-compose.yml: $name runs \`twinline ${args[*]}\` (accepted by the CLI)"
      else
        fail "docker-compose.yml: $name's command is not a valid twinline command line: ${args[*]}"
      fi
    done <<<"$cmds"
  else
    echo "skip docker-compose.yml commands: no twinline binary at $bin (build it or set TWINLINE_BIN)"
  fi
else
  fail "docker-compose.yml: no compose CLI available"
fi

# ---- Kubernetes manifests ----
venv="$TOOLS/venv"
if [[ ! -x "$venv/bin/kubernetes-validate" ]]; then
  log "installing kubernetes-validate and PyYAML into $venv (once)"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check pyyaml kubernetes-validate >&2
fi
for f in "$DOCKER_DIR"/k8s/*.yaml; do
  name="k8s/$(basename "$f")"
  if out=$("$venv/bin/kubernetes-validate" --strict --quiet --no-warn -k "$K8S_VERSION" "$f" 2>&1); then
    ok "$name (kubernetes $K8S_VERSION schemas, strict)"
  else
    printf '%s\n' "$out"
    fail "$name"
  fi
done

# Every twinline container in the manifests must run a command line twinline accepts, as in
# the compose file ($(VAR) references are Kubernetes' and stand for any value).
if [[ -x "$bin" ]]; then
  while IFS=$'\t' read -r name argv; do
    [[ -n "$name" ]] || continue
    mapfile -t args < <(python3 -c 'import json, sys; print("\n".join(json.loads(sys.argv[1])))' "$argv")
    if "$bin" "${args[@]}" --help >/dev/null 2>&1; then
      ok "$name runs \`twinline ${args[*]}\` (accepted by the CLI)"
    else
      fail "$name's args are not a valid twinline command line: ${args[*]}"
    fi
  done < <("$venv/bin/python" - "$DOCKER_DIR"/k8s/*.yaml <<'PY'
import json, re, sys, yaml
for path in sys.argv[1:]:
    for doc in yaml.safe_load_all(open(path)):
        spec = ((doc or {}).get("spec") or {}).get("template", {}).get("spec", {})
        for c in spec.get("containers", []):
            if c.get("image") == "twinline:dev":
                args = [re.sub(r"\$\(\w+\)", "x", a) for a in c.get("args", [])]
                print(f"k8s/{path.rsplit('/', 1)[-1]}: {c['name']}\t{json.dumps(args)}")
PY
)
fi

# ---- Dockerfile stage references ----
if out=$(python3 - "$DOCKER_DIR/Dockerfile" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
stages = re.findall(r"(?im)^FROM\s+\S+\s+AS\s+(\S+)", text)
refs = re.findall(r"(?im)--from=(\S+)", text)
missing = [r for r in refs if r not in stages]
if not stages or missing:
    sys.exit(f"stages {stages}, unknown --from targets {missing}")
PY
); then
  ok "Dockerfile stage references"
else
  printf '%s\n' "$out"
  fail "Dockerfile stage references"
fi

echo "$passed passed, $failed failed"
((failed == 0))
