#!/usr/bin/env bash
# Build the sensor-simulator image, with or without access to a container registry.
#
# Online (a registry is reachable, or --online): plain `docker build`, the Dockerfile's
# default python:3.11-slim-bookworm base, dependencies from the package index.
#
# Offline (no registry, or --offline): the same Dockerfile, but
#   1. the base image is a minimal Debian bookworm root filesystem with python3,
#      made with debootstrap from the host's Debian mirror and `docker import`ed;
#   2. the Python dependencies come from a wheelhouse downloaded on the host
#      (manylinux wheels for CPython 3.11, the python3 of bookworm).
# Both are cached in build-cache/ and as a local image, so a second build only
# rebuilds the layers that changed.
set -euo pipefail

usage() {
    cat <<'EOF'
Usage: docker/build-image.sh [options] [-- extra docker build arguments]

Build the sensor-simulator image from this repository.

Options:
  --online            use the standard Python base image (pulled if missing)
  --offline           build the base image and wheelhouse locally (needs root,
                      debootstrap and a Debian mirror; pip on the host)
                      (default: online when the standard base image can be had,
                      offline otherwise)
  --tag NAME          image name to build (default: sensor-simulator)
  --extras LIST       extras of the package to install, comma-separated, or ""
                      for none (default: sync,faces: every sync sink's client
                      and the OPC UA and Modbus servers)
  --cache-dir DIR     where the root filesystem and wheelhouse are cached
                      (default: build-cache/ in the repository)
  --mirror URL        Debian mirror for debootstrap (default: the host's apt
                      sources for bookworm, or $DEBIAN_MIRROR)
  --rebuild-base      rebuild the offline base image and wheelhouse even if cached
  -h, --help          show this help
EOF
}

die() {
    echo "build-image: error: $*" >&2
    exit 1
}

log() {
    echo "build-image: $*" >&2
}

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
mode=auto
tag=sensor-simulator
cache_dir="$repo_root/build-cache"
mirror=${DEBIAN_MIRROR:-}
rebuild_base=false
extras=sync,faces
online_base=python:3.11-slim-bookworm
suite=bookworm
extra_args=()

while [[ $# -gt 0 ]]; do
    case "$1" in
        --online) mode=online ;;
        --offline) mode=offline ;;
        --tag) tag=${2:?--tag needs a value}; shift ;;
        --extras) extras=${2?--extras needs a value}; shift ;;
        --cache-dir) cache_dir=${2:?--cache-dir needs a value}; shift ;;
        --mirror) mirror=${2:?--mirror needs a value}; shift ;;
        --rebuild-base) rebuild_base=true ;;
        -h | --help) usage; exit 0 ;;
        --) shift; extra_args=("$@"); break ;;
        *) usage >&2; die "unknown option '$1'" ;;
    esac
    shift
done

command -v docker >/dev/null || die "docker is not installed or not on PATH"
docker info >/dev/null 2>&1 || die "cannot reach the Docker engine (is it running, may this user use it?)"

have_image() {
    docker image inspect "$1" >/dev/null 2>&1
}

if [[ $mode == auto ]]; then
    if have_image "$online_base" || docker pull "$online_base" >/dev/null 2>&1; then
        mode=online
    else
        log "base image $online_base cannot be pulled; building offline"
        mode=offline
    fi
fi

# The host's Debian mirror for the suite, read from apt's own view of its sources.
host_mirror() {
    command -v apt-get >/dev/null || return 0
    # shellcheck disable=SC2016  # $(REPO_URI) is apt's placeholder, not a shell expansion
    apt-get indextargets --format '$(REPO_URI)' "Release: $suite" 'Target-Of: deb' 2>/dev/null \
        | head -n 1
}

# A minimal bookworm with python3 and venv, as a tarball in the cache.
make_rootfs_tarball() {
    local tarball=$1 rootfs
    [[ $(id -u) == 0 ]] || die "debootstrap needs root; run as root or pass --online"
    command -v debootstrap >/dev/null \
        || die "debootstrap is not installed (apt-get install -y debootstrap)"
    [[ -n $mirror ]] || mirror=$(host_mirror)
    [[ -n $mirror ]] || die "no Debian mirror for $suite in the apt sources; pass --mirror URL"
    rootfs=$(mktemp -d "$cache_dir/rootfs.XXXXXX")
    # shellcheck disable=SC2064  # expand now: the trap must remove this very directory
    trap "rm -rf '$rootfs'" EXIT
    log "debootstrap $suite from $mirror (about a minute)"
    debootstrap --variant=minbase --include=python3,python3-venv \
        "$suite" "$rootfs" "$mirror" >"$cache_dir/debootstrap.log" 2>&1 \
        || die "debootstrap failed; see $cache_dir/debootstrap.log"
    # What an image does not need: package caches and lists, docs, translations.
    rm -rf "$rootfs"/var/cache/apt/* "$rootfs"/var/lib/apt/lists/* \
        "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* \
        "$rootfs"/usr/share/locale/* "$rootfs"/var/log/* "$rootfs"/tmp/* \
        "$rootfs"/root/.cache
    tar --numeric-owner -C "$rootfs" -cf "$tarball.part" .
    mv "$tarball.part" "$tarball"
    rm -rf "$rootfs"
    trap - EXIT
}

# The offline base image: imported once, reused while its tag exists.
ensure_base_image() {
    local image=$1 tarball="$cache_dir/rootfs-$suite.tar"
    if ! $rebuild_base && have_image "$image"; then
        log "base image $image is present"
        return
    fi
    if $rebuild_base || [[ ! -s $tarball ]]; then
        make_rootfs_tarball "$tarball"
    fi
    log "importing $tarball as $image"
    docker import \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'ENV LANG=C.UTF-8' \
        --change 'CMD ["/bin/bash"]' \
        "$tarball" "$image" >/dev/null
}

# Requirements of the image, pinned and hashed from uv.lock: the runtime dependencies and
# the extras the Dockerfile installs (EXTRAS, default sync,faces). The build backend is
# not in the lock; pyproject.toml's range for it is downloaded beside them.
locked_requirements() {
    python3 "$repo_root/docker/requirements.py" "$repo_root/uv.lock" "$extras"
}
build_requirements() {
    python3 "$repo_root/docker/requirements.py" --build-system "$repo_root/pyproject.toml"
}

# Wheels for bookworm's CPython 3.11 on x86_64, downloaded whatever the host runs.
ensure_wheelhouse() {
    local wheelhouse=$1 locked build wanted
    command -v python3 >/dev/null || die "python3 (3.11 or newer) is needed on the host"
    locked=$(locked_requirements) || die "cannot read the locked dependencies from uv.lock"
    build=$(build_requirements) || die "cannot read the build backend from pyproject.toml"
    wanted=$(printf '%s\n%s' "$locked" "$build")
    if ! $rebuild_base && [[ -f $wheelhouse/requirements.txt ]] \
        && [[ $(cat "$wheelhouse/requirements.txt") == "$wanted" ]]; then
        log "wheelhouse is up to date"
        return
    fi
    log "downloading wheels into $wheelhouse"
    rm -rf "$wheelhouse"
    mkdir -p "$wheelhouse"
    printf '%s\n' "$locked" >"$wheelhouse/locked.in"
    printf '%s\n' "$build" >"$wheelhouse/build.in"
    # pip takes platform tags literally: list every glibc from bookworm's (2.36) down.
    local platforms=() glibc
    for glibc in $(seq 36 -1 17); do
        platforms+=(--platform "manylinux_2_${glibc}_x86_64")
    done
    local download=(python3 -m pip download --quiet --dest "$wheelhouse"
        --only-binary=:all: --implementation cp --python-version 3.11
        --abi cp311 --abi abi3 --abi none
        "${platforms[@]}" --platform manylinux2014_x86_64 --platform any)
    # The locked set is checked against the lock's hashes (a requirement with a hash puts
    # pip in hash-checking mode), so it is downloaded apart from the unhashed backend.
    "${download[@]}" --requirement "$wheelhouse/locked.in" \
        || die "pip download of the locked requirements failed (is the package index reachable?)"
    "${download[@]}" --requirement "$wheelhouse/build.in" \
        || die "pip download of the build backend failed (is the package index reachable?)"
    # Written last: its presence means the wheelhouse is complete.
    printf '%s\n' "$wanted" >"$wheelhouse/requirements.txt"
}

build_args=(--build-arg "EXTRAS=$extras")
if [[ $mode == offline ]]; then
    mkdir -p "$cache_dir"
    cache_dir=$(cd "$cache_dir" && pwd)
    case "$cache_dir/" in
        "$repo_root"/*) ;;
        *) die "--cache-dir must be inside the repository (the wheelhouse is part of the build context)" ;;
    esac
    base_image=sensorfleet-base:$suite
    ensure_base_image "$base_image"
    ensure_wheelhouse "$cache_dir/wheelhouse"
    build_args+=(--build-arg "BASE_IMAGE=$base_image"
        --build-arg "WHEELHOUSE=${cache_dir#"$repo_root"/}/wheelhouse")
fi

log "building $tag ($mode)"
start=$(date +%s)
# The build stage gets a tag of its own: it is the cache of the dependency layers, and a
# tagged image is never taken for garbage below.
docker build --target build --tag "$tag-build-stage" "${build_args[@]}" "${extra_args[@]}" \
    "$repo_root"
docker build --tag "$tag" "${build_args[@]}" "${extra_args[@]}" "$repo_root"
log "built $tag in $(($(date +%s) - start)) s"
# Earlier builds of these stages that no tag points to any more (a replaced base image
# leaves a whole chain behind); only images this Dockerfile labelled are touched.
docker image prune --force --filter label=sensorfleet.stage >/dev/null
