#!/usr/bin/env bash
# Set up a development environment: a virtualenv in .venv with sensorfleet installed,
# every package at the exact version and hash of uv.lock (scripts/lock.sh refreshes it).
#   scripts/setup.sh          runtime only (enough to run a sensor)
#   scripts/setup.sh --test   plus test tools and the real servers the tests talk to
#                             (PostgreSQL, Mosquitto, Chromium from Debian's packages;
#                             the tansu Kafka broker built with cargo when missing)
set -euo pipefail
cd "$(dirname "$0")/.."

want_test=0
[[ "${1:-}" == "--test" ]] && want_test=1

python=${PYTHON:-python3}
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "setup: Python 3.11 or newer is required (found $("$python" --version 2>&1))" >&2
  exit 2
fi
if [[ ! -x .venv/bin/python ]]; then
  "$python" -m venv .venv
fi
# uv installs the lock; it comes first, by pip, at the version and hashes the lock holds.
uv_pin=$("$python" docker/requirements.py --package uv uv.lock)
uv_version=${uv_pin%% *}
uv_version=${uv_version#*==}
if [[ "$(.venv/bin/uv --version 2>/dev/null)" != "uv $uv_version"* ]]; then
  pin_file=$(mktemp)
  printf '%s\n' "$uv_pin" >"$pin_file"
  .venv/bin/python -m pip install --quiet --disable-pip-version-check --require-hashes \
    --requirement "$pin_file"
  rm -f "$pin_file"
fi
# Exactly the lock's packages for the chosen extras (anything else in .venv goes), with
# sensorfleet itself editable; never a Python of uv's own: the one .venv was made with.
# The runtime set keeps packages it does not name (--inexact), uv among them.
sync=(.venv/bin/uv sync --locked --quiet --no-python-downloads)
if (( want_test )); then
  sync+=(--extra dev)
else
  sync+=(--inexact)
fi
if ! "${sync[@]}"; then
  echo "setup: installing from uv.lock failed (above). If pyproject.toml changed," \
    "refresh the lock with scripts/lock.sh and commit uv.lock." >&2
  exit 1
fi

if (( want_test )); then
  mapfile -t packages < <(grep -v '^\s*#' scripts/test-packages.txt | sed '/^\s*$/d')
  missing=()
  for pkg in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  if (( ${#missing[@]} )); then
    sudo_cmd=()
    (( EUID == 0 )) || sudo_cmd=(sudo)
    echo "setup: installing Debian packages: ${missing[*]}"
    "${sudo_cmd[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
fi
if (( want_test )); then
  # tansu: a Kafka-protocol broker for the Kafka sink's tests. An existing binary is reused.
  tansu_version=0.6.0
  tansu_bin=$(command -v tansu || true)
  [[ -z "$tansu_bin" && -x "$HOME/.cargo/bin/tansu" ]] && tansu_bin="$HOME/.cargo/bin/tansu"
  if [[ -z "$tansu_bin" ]]; then
    cargo_bin=$(command -v cargo || true)
    [[ -z "$cargo_bin" && -x "$HOME/.cargo/bin/cargo" ]] && cargo_bin="$HOME/.cargo/bin/cargo"
    # Without the broker the Kafka tests skip themselves (and fail under CI=true), so a
    # machine with no Rust toolchain can still set up and run everything else.
    if [[ -z "$cargo_bin" ]]; then
      echo "setup: warning: no cargo, so no tansu Kafka broker and the Kafka tests will be" \
        "skipped; install a current Rust toolchain and run scripts/setup.sh --test again" >&2
    else
      echo "setup: building the tansu Kafka broker $tansu_version (cargo install; about 10 minutes on 2 cores)"
      "$cargo_bin" install --locked tansu --version "$tansu_version" --features dynostore ||
        echo "setup: warning: building tansu failed (see above), so the Kafka tests will be" \
          "skipped; a current Rust toolchain builds it" >&2
    fi
  fi
fi
echo "setup: ready (.venv)"
