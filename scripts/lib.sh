# Shared helpers for scripts/run.sh and scripts/test.sh: install what is missing, idempotently.
# Sourced, not executed.

set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
VENV="$ROOT/.venv"
log() { printf '\033[1m[twinline]\033[0m %s\n' "$*" >&2; }

APT_UPDATED=0
apt_install() {
    # apt_install <command-or-file-to-check> <package>...
    local check="$1"; shift
    if command -v "$check" >/dev/null 2>&1 || [ -e "$check" ]; then return 0; fi
    log "installing $* (apt)"
    local SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
    if [ "$APT_UPDATED" = 0 ]; then $SUDO apt-get update -qq >/dev/null; APT_UPDATED=1; fi
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

ensure_rust() {
    if ! command -v cargo >/dev/null 2>&1; then
        if [ -x "$HOME/.cargo/bin/cargo" ]; then export PATH="$HOME/.cargo/bin:$PATH"; else
            echo "Rust (cargo) is required: install it with rustup, then rerun." >&2; exit 1
        fi
    fi
}

# Python venv with the packages the project's scripts and tests use (ONNX Runtime's shared
# library for `ort` comes from the onnxruntime wheel installed here).
ensure_python() {
    if [ ! -x "$VENV/bin/python" ]; then
        log "creating Python venv in .venv"
        python3 -m venv "$VENV"
    fi
    local stamp="$VENV/.requirements.sha"
    local want; want="$(cat "$ROOT"/requirements*.txt 2>/dev/null | sha256sum | cut -d' ' -f1)"
    if [ -f "$ROOT/requirements.txt" ] && [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
        log "installing Python packages (requirements.txt)"
        "$VENV/bin/pip" install -q --disable-pip-version-check -r "$ROOT/requirements.txt"
        echo "$want" > "$stamp"
    fi
    local ort_lib
    ort_lib="$(ls "$VENV"/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so* 2>/dev/null | head -1 || true)"
    if [ -n "$ort_lib" ]; then export ORT_DYLIB_PATH="$ort_lib"; fi
}

# Build the dashboard (npm) if its sources are newer than the build.
ensure_web() {
    local web="$ROOT/queries/web"
    [ -f "$web/package.json" ] || return 0
    if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
        apt_install npm nodejs npm
    fi
    # Vite 8 needs Node 20.19+ (or 22.12+).
    if ! node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>22||(a===22&&b>=12)||(a===20&&b>=19)?0:1)'; then
        echo "Node.js $(node --version) is too old to build the dashboard: install Node 20.19+ or 22.12+ (https://nodejs.org), then rerun." >&2
        exit 1
    fi
    if [ ! -d "$web/node_modules" ] || [ "$web/package-lock.json" -nt "$web/node_modules/.package-lock.json" ]; then
        log "installing dashboard dependencies (npm ci)"
        (cd "$web" && npm ci --no-audit --no-fund --loglevel=error)
    fi
    if [ ! -f "$web/dist/index.html" ] || [ -n "$(find "$web/src" "$web/index.html" "$web/3d.html" "$web/package.json" "$web/vite.config.ts" "$web/tsconfig.json" -newer "$web/dist/index.html" 2>/dev/null | head -1)" ]; then
        log "building the dashboard (npm run build)"
        (cd "$web" && npm run build --silent)
    fi
}
