#!/usr/bin/env bash
# test_container.sh - build the sensor-simulator image and check a node end to end.
#
#   ./test_container.sh               build (docker/build-image.sh), then test
#   ./test_container.sh --no-build    test the image as it is
#
# 1. Builds the image and clears data/test_container/.
# 2. Runs the documented command (nothing mounted, SENSOR_ID/SENSOR_LOCATION set) for
#    30 seconds, checks that the database exists and holds 30 s x readings_per_second
#    rows, written by a non-root user.
# 3. Runs a node with a mounted config.yaml and node_identity.json, waits for it to
#    report healthy, edits both files while it runs and checks that new rows follow
#    the edit (new rate, new location).
# 4. Runs a node that buffers everything in memory, `docker stop`s it and checks that
#    every row it generated is in the database.
# 5. Prints statistics and sample rows. Exits non-zero on the first failed check.
set -euo pipefail

image=${IMAGE:-sensor-simulator}
run_seconds=${RUN_SECONDS:-30}
build=true

while [[ $# -gt 0 ]]; do
    case "$1" in
        --no-build) build=false ;;
        --image) image=${2:?--image needs a value}; shift ;;
        -h | --help) sed -n '2,16s/^# \{0,1\}//p' "$0"; exit 0 ;;
        *) echo "test_container: unknown option '$1' (try --help)" >&2; exit 2 ;;
    esac
    shift
done

cd "$(dirname "${BASH_SOURCE[0]}")"
work=$PWD/data/test_container
data=$work/data
prefix=sftest_container_$$

step() { printf '\n== %s\n' "$*"; }
pass() { printf 'ok: %s\n' "$*"; }
fail() {
    printf 'FAIL: %s\n' "$*" >&2
    exit 1
}

cleanup() {
    local ids
    ids=$(docker ps -aq --filter "name=^${prefix}_") || return 0
    if [[ -n $ids ]]; then
        # shellcheck disable=SC2086  # one id per word
        docker rm -f $ids >/dev/null 2>&1 || true
    fi
}
trap cleanup EXIT

# SQL on the test database with the image's own Python and SQLite, as the data owner.
query() {
    docker run --rm -v "$data:/app/data" "$image" sensorfleet-query --tsv "$1"
}
show() {
    docker run --rm -v "$data:/app/data" "$image" sensorfleet-query "$1"
}
# The same inside a running container (quicker for polling).
query_in() {
    docker exec --user "$(stat -c %u:%g "$data")" "$1" sensorfleet-query --tsv "$2" 2>/dev/null
}

# A numeric field of a JSON log event (the node logs JSON lines in containers).
log_field() {
    local container=$1 event=$2 field=$3 line
    line=$(docker logs "$container" 2>&1 | grep -F "\"event\": \"$event\"" | tail -n 1) || true
    [[ -n $line ]] || fail "$container logged no '$event' event"
    sed -n "s/.*\"$field\": \([0-9.]*\).*/\1/p" <<<"$line"
}

# Wait up to $1 seconds for a command to succeed.
wait_for() {
    local timeout=$1 start=$SECONDS
    shift
    until "$@"; do
        ((SECONDS - start < timeout)) || return 1
        sleep 1
    done
}

rows_of() {
    query_in "$1" "SELECT COUNT(*) FROM sensor_readings WHERE sensor_id = '$2'${3:+ AND $3}"
}

# Every row the node generated was committed, and the log agrees with the database.
check_summary() {
    local container=$1 sensor=$2 written generated unwritten in_db
    written=$(log_field "$container" "run summary" rows_written)
    generated=$(log_field "$container" "run summary" readings_generated)
    unwritten=$(log_field "$container" "run summary" rows_unwritten)
    in_db=$(query "SELECT COUNT(*) FROM sensor_readings WHERE sensor_id = '$sensor'")
    [[ $unwritten == 0 ]] || fail "$container left $unwritten rows unwritten"
    [[ $written == "$generated" ]] || fail "$container generated $generated rows, wrote $written"
    [[ $written == "$in_db" ]] || fail "$container says it wrote $written rows, database has $in_db"
    if docker logs "$container" 2>&1 | grep -q -e '"rows dropped"' -e '"rows not written at exit"'; then
        fail "$container logged lost rows"
    fi
    pass "$container: $written rows generated, written and in the database"
}

if $build; then
    step "Building $image"
    docker/build-image.sh --tag "$image"
fi
docker image inspect "$image" >/dev/null 2>&1 \
    || fail "image $image not found; build it with docker/build-image.sh or drop --no-build"

step "Clearing $work"
rm -rf "$work"
mkdir -p "$data"

step "Running the documented command for $run_seconds s"
container=${prefix}_run
docker run --name "$container" -v "$data:/app/data" \
    -e SENSOR_ID=CUSTOM001 -e SENSOR_LOCATION="Custom Location" \
    -e RUN_TIME_SECONDS="$run_seconds" "$image" >/dev/null 2>&1 \
    || {
        docker logs --tail 20 "$container" >&2
        fail "the container exited with status $(docker inspect -f '{{.State.ExitCode}}' "$container")"
    }
[[ -s $data/sensor_data.db ]] || fail "no database at $data/sensor_data.db"
pass "database created: $data/sensor_data.db"
owner=$(stat -c %u "$data/sensor_data.db")
[[ $owner != 0 ]] || fail "the database was written by root; the node must run unprivileged"
pass "written by uid $owner, not root"
rate=$(log_field "$container" "node starting" readings_per_second)
rows=$(query "SELECT COUNT(*) FROM sensor_readings WHERE sensor_id = 'CUSTOM001'")
expected=$(awk -v s="$run_seconds" -v r="$rate" 'BEGIN { printf "%d", s * r }')
slack=$(awk -v e="$expected" 'BEGIN { s = int(e * 0.05); printf "%d", (s < 3 ? 3 : s) }')
((rows >= expected - slack && rows <= expected + slack)) \
    || fail "expected $expected ± $slack rows ($run_seconds s x $rate/s), found $rows"
pass "$rows rows for $run_seconds s at $rate readings/s"
location=$(query "SELECT DISTINCT location FROM sensor_readings WHERE sensor_id = 'CUSTOM001'")
[[ $location == "Custom Location" ]] || fail "SENSOR_LOCATION not applied (location: $location)"
pass "environment overrides applied (CUSTOM001 at Custom Location)"
check_summary "$container" CUSTOM001

step "Mounted config and identity, edited while the node runs"
write_live_config() {
    cat >"$work/config.yaml.new" <<EOF
simulation:
  readings_per_second: $1
  run_time_seconds: 0
database:
  path: data/sensor_data.db
logging:
  file: data/sensor_simulator.log
config_reload:
  enabled: true
  check_interval_seconds: 2
EOF
    # Rewrite in place: a bind-mounted file keeps its inode, a renamed one would not.
    cat "$work/config.yaml.new" >"$work/config.yaml"
}
write_live_identity() {
    cat >"$work/node_identity.json.new" <<EOF
{
  "id": "LIVE001",
  "type": "temperature_vibration",
  "location": "$1",
  "manufacturer": "SensorTech",
  "model": "TempVibe-2000",
  "firmware_version": "1.4"
}
EOF
    cat "$work/node_identity.json.new" >"$work/node_identity.json"
}
write_live_config 2
write_live_identity "Test Bench"
container=${prefix}_live
docker run -d --name "$container" \
    -v "$work/config.yaml:/app/config.yaml" \
    -v "$work/node_identity.json:/app/node_identity.json" \
    -v "$data:/app/data" "$image" >/dev/null
has_rows() { (($(rows_of "$container" LIVE001 "$@") > 0)); }
wait_for 30 has_rows || fail "no rows from LIVE001 after 30 s"
pass "rows arriving from the mounted identity (LIVE001)"
# Real, effective, saved and file-system uid of the node (PID 1, exec'd by the entrypoint).
uids=$(docker exec "$container" sed -n 's/^Uid:[[:space:]]*//p' /proc/1/status)
[[ -n $uids && ! $uids =~ (^|[[:space:]])0($|[[:space:]]) ]] || fail "the node runs as root (uids: $uids)"
pass "node runs unprivileged (uids: $uids)"
is_healthy() { [[ $(docker inspect -f '{{.State.Health.Status}}' "$container") == healthy ]]; }
wait_for 60 is_healthy || fail "container not healthy after 60 s: $(docker inspect \
    -f '{{range .State.Health.Log}}{{.Output}}{{end}}' "$container" | tail -n 3)"
pass "HEALTHCHECK (/healthz) reports healthy"

write_live_config 10
write_live_identity "Test Bench (moved)"
moved="location = 'Test Bench (moved)'"
wait_for 30 has_rows "$moved" || fail "no row with the edited location 30 s after the edit"
pass "identity edit applied live (new location on new rows)"
before=$(rows_of "$container" LIVE001 "$moved")
sleep 10
after=$(rows_of "$container" LIVE001 "$moved")
((after - before >= 70 && after - before <= 130)) \
    || fail "expected about 100 rows in 10 s at the edited 10 readings/s, got $((after - before))"
pass "config edit applied live: $((after - before)) rows in 10 s at 10 readings/s (was 2/s)"
docker stop "$container" >/dev/null
status=$(docker inspect -f '{{.State.ExitCode}}' "$container")
[[ $status == 0 ]] || fail "node exited with status $status after docker stop"
check_summary "$container" LIVE001

step "docker stop flushes every buffered row"
cat >"$work/buffered.yaml" <<'EOF'
simulation:
  readings_per_second: 50
  run_time_seconds: 0
database:
  path: data/sensor_data.db
  flush_interval_seconds: 3600
  batch_size: 1000000
  max_buffered_rows: 1000000
logging:
  file: null
EOF
container=${prefix}_stop
docker run -d --name "$container" -e SENSOR_ID=STOP001 \
    -v "$work/buffered.yaml:/app/config.yaml" -v "$data:/app/data" "$image" >/dev/null
# A node writes its first rows at once; everything after them waits in the buffer.
sleep 5
first=$(rows_of "$container" STOP001)
((first < 40)) || fail "expected only the first rows in the file, found $first"
sleep 3
in_db=$(rows_of "$container" STOP001)
[[ $in_db == "$first" ]] ||
    fail "expected nothing flushed after the first rows before the stop, found $first then $in_db rows"
docker stop "$container" >/dev/null
status=$(docker inspect -f '{{.State.ExitCode}}' "$container")
[[ $status == 0 ]] || fail "node exited with status $status after docker stop"
written=$(log_field "$container" "run summary" rows_written)
((written >= 250)) || fail "expected at least 250 buffered rows after 8 s at 50/s, got $written"
check_summary "$container" STOP001

step "Statistics"
show "SELECT sensor_id, COUNT(*) AS readings,
             SUM(anomaly_flag) AS anomalies,
             ROUND(100.0 * SUM(anomaly_flag) / COUNT(*), 2) AS anomaly_pct,
             MIN(timestamp) AS first, MAX(timestamp) AS last
      FROM sensor_readings GROUP BY sensor_id ORDER BY sensor_id"
show "SELECT COUNT(*) AS total_readings,
             SUM(CASE WHEN synced = 1 THEN 1 ELSE 0 END) AS synced_readings,
             SUM(CASE WHEN synced = 0 THEN 1 ELSE 0 END) AS unsynced_readings
      FROM sensor_readings"

step "Sample rows"
show "SELECT id, timestamp, sensor_id, temperature, vibration, voltage, anomaly_flag,
             anomaly_type, firmware_version, location
      FROM sensor_readings ORDER BY id DESC LIMIT 5"

printf '\nAll container checks passed.\n'
