#!/usr/bin/env bash
# uv.lock: the exact versions and hashes that scripts/setup.sh, the image and CI install.
#   scripts/lock.sh             after editing pyproject.toml: re-resolve, keeping every pin
#                               that still fits (run scripts/setup.sh --test first for uv)
#   scripts/lock.sh --upgrade   refresh: the newest versions pyproject.toml's ranges allow
#   scripts/lock.sh --check     fail when uv.lock no longer matches pyproject.toml (CI)
# Commit uv.lock with the change; pyproject.toml keeps the compatible ranges for people
# who pip install the package into their own environment.
set -euo pipefail
cd "$(dirname "$0")/.."

uv=.venv/bin/uv
[[ -x $uv ]] || uv=$(command -v uv || true)
if [[ -z $uv ]]; then
  echo "lock: no uv; run scripts/setup.sh --test (it installs the locked uv into .venv)" >&2
  exit 2
fi
# Resolve for every platform and Python the project supports, never for a Python of uv's own.
export UV_PYTHON_DOWNLOADS=never

case "${1:-}" in
  "") exec "$uv" lock ;;
  --upgrade) exec "$uv" lock --upgrade ;;
  --check)
    if ! "$uv" lock --check --quiet; then
      echo "lock: uv.lock does not match pyproject.toml (a dependency or extra changed" \
        "without the lock). Run scripts/lock.sh and commit uv.lock." >&2
      exit 1
    fi
    echo "lock: uv.lock matches pyproject.toml"
    ;;
  *)
    echo "usage: scripts/lock.sh [--upgrade | --check]" >&2
    exit 2
    ;;
esac
