#!/bin/sh
# Entrypoint of the sensor-simulator image.
#
# The default command is `sensorfleet run`; arguments that start with "-" are passed
# to it (`docker run sensor-simulator --seed 7`), any other command runs as given
# (`docker run sensor-simulator sensorfleet identities --preset demo`).
# BACKFILL=<duration> (for example 1d) makes `sensorfleet run` first write that much
# history, then follow live time.
#
# Started as root (the default), it makes the data directory writable and then drops
# to an unprivileged user: the owner of /app/data when that is not root, so files on
# a bind mount belong to whoever owns the host directory, otherwise the image's own
# "sensor" user. Started with `--user`, it runs the command as that user unchanged.
# /central, where a collector (`sensorfleet sync`) keeps a central SQLite, JSONL or CSV
# sink, is handed to the same user when a volume or folder is mounted there.
set -eu

data_dir=/app/data
central_dir=/central

if [ "$#" -eq 0 ] || [ "${1#-}" != "$1" ]; then
    set -- sensorfleet run "$@"
fi
if [ "$#" -ge 2 ] && [ "$1" = sensorfleet ] && [ "$2" = run ] && [ -n "${BACKFILL:-}" ]; then
    shift 2
    set -- sensorfleet run --backfill "$BACKFILL" --follow "$@"
fi

# Every program started here delays the node's first row, and a fleet starts hundreds of
# containers at once: what the shell can do itself (the ids below) it does.
while read -r key value _; do
    if [ "$key" = Uid: ]; then
        break
    fi
done </proc/self/status
if [ "$value" != 0 ]; then
    exec "$@"
fi

[ -d "$data_dir" ] || mkdir -p "$data_dir"
owner=$(stat -c %u:%g "$data_dir")
uid=${owner%:*}
gid=${owner#*:}
if [ "$uid" = 0 ]; then
    while IFS=: read -r name _ user_uid user_gid _; do
        if [ "$name" = sensor ]; then
            uid=$user_uid
            gid=$user_gid
            break
        fi
    done </etc/passwd
    if [ "$uid" = 0 ]; then
        echo "entrypoint: no user 'sensor' in /etc/passwd" >&2
        exit 1
    fi
fi
# Take over the directory and whatever an earlier run as another user left in it
# (a database written as root would be read-only to the node otherwise). Nodes of a
# fleet start together on one directory, so files may vanish under find: only the
# outcome counts.
find "$data_dir" -xdev ! -user "$uid" -exec chown -h "$uid:$gid" {} + 2>/dev/null || true
if mountpoint -q "$central_dir" 2>/dev/null; then
    find "$central_dir" -xdev ! -user "$uid" -exec chown -h "$uid:$gid" {} + 2>/dev/null || true
fi
if ! setpriv --reuid="$uid" --regid="$gid" --clear-groups -- test -w "$data_dir"; then
    echo "entrypoint: warning: $data_dir is not writable for uid $uid;" \
        "make it writable for that user or run with --user" >&2
fi
exec setpriv --reuid="$uid" --regid="$gid" --clear-groups -- "$@"
