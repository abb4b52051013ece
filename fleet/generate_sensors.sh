#!/usr/bin/env bash
# generate_sensors.sh - create sensor identities and run one container per sensor.
#
# Run from the directory holding config.yaml (the repository root):
#   ./fleet/generate_sensors.sh                    the original demo: 15 sensors
#   ./fleet/generate_sensors.sh --count 100        a generated mix of 100 sensors
#   ./fleet/generate_sensors.sh --backfill 1d      each node writes a day of history first
#   ./fleet/generate_sensors.sh --status           containers and their row counts
#   ./fleet/generate_sensors.sh --down             stop (flushing) and remove the fleet
#
# Every container is named <prefix><sensor id> (sensor_FACTORY_1_OLD) and mounts
# config.yaml, its identity file and the data directory, exactly like a single node.
# Re-running starts what is missing and leaves running sensors alone.
set -euo pipefail

usage() {
    cat <<'EOF'
Usage: fleet/generate_sensors.sh [options]

Fleet:
  --count N             generated fleet of N sensors instead of the demo 15
  --seed S              seed of the generated mix (default: 0)
  --firmware-mix MIX    firmware weights of the generated mix (default: 1.3=0.5,1.4=0.5)
  --db-per-node         one database per sensor (data/sensor_<ID>.db) instead of
                        the shared data/sensor_data.db
  --backfill DURATION   each node first writes this much history (2h, 1d, ...),
                        then continues live
  --run-time SECONDS    how long each node runs (RUN_TIME_SECONDS; 0 = until stopped)
  --publish-faces       turn on each node's OPC UA and Modbus TCP servers and publish
                        them on the host: the Nth sensor (from 0) at OPC UA port
                        OPCUA_BASE+N and Modbus port MODBUS_BASE+N
  --faces-ports O,M     the base host ports for --publish-faces (default: 48400,50200)
  -e, --env KEY=VALUE   extra environment for every node (repeatable)

Actions (default: create identities and start the fleet):
  --status              list the fleet's containers with their row counts
  --down                stop the fleet (each node flushes) and remove its containers

Paths and names:
  --image NAME          image to run (default: sensor-simulator)
  --config PATH         config file to mount (default: ./config.yaml)
  --data-dir DIR        data directory to mount (default: ./data)
  --identities-dir DIR  where identity files are written (default: ./identities)
  --prefix PREFIX       container name prefix, also the fleet's label (default: sensor_)
  -h, --help            show this help
EOF
}

die() {
    echo "generate_sensors: error: $*" >&2
    exit 1
}

action=up
image="sensor-simulator"
config=config.yaml
data_dir=data
identities_dir=identities
prefix=sensor_
count=
seed=0
firmware_mix=
db_per_node=false
backfill=
run_time=
publish_faces=false
faces_ports=48400,50200
extra_env=()

while [[ $# -gt 0 ]]; do
    case "$1" in
        --count) count=${2:?--count needs a number}; shift ;;
        --seed) seed=${2:?--seed needs a number}; shift ;;
        --firmware-mix) firmware_mix=${2:?--firmware-mix needs a value}; shift ;;
        --db-per-node) db_per_node=true ;;
        --backfill) backfill=${2:?--backfill needs a duration}; shift ;;
        --run-time) run_time=${2:?--run-time needs seconds}; shift ;;
        --publish-faces) publish_faces=true ;;
        --faces-ports) faces_ports=${2:?--faces-ports needs OPCUA_BASE,MODBUS_BASE}; shift ;;
        -e | --env) extra_env+=(--env "${2:?--env needs KEY=VALUE}"); shift ;;
        --status) action=status ;;
        --down) action=down ;;
        --image) image=${2:?--image needs a name}; shift ;;
        --config) config=${2:?--config needs a path}; shift ;;
        --data-dir) data_dir=${2:?--data-dir needs a path}; shift ;;
        --identities-dir) identities_dir=${2:?--identities-dir needs a path}; shift ;;
        --prefix) prefix=${2:?--prefix needs a value}; shift ;;
        -h | --help) usage; exit 0 ;;
        *) usage >&2; die "unknown option '$1'" ;;
    esac
    shift
done

[[ $faces_ports =~ ^([0-9]+),([0-9]+)$ ]] \
    || die "--faces-ports: expected two base ports OPCUA_BASE,MODBUS_BASE (got '$faces_ports')"
opcua_base=${BASH_REMATCH[1]}
modbus_base=${BASH_REMATCH[2]}

command -v docker >/dev/null || die "docker is not installed or not on PATH"
docker info >/dev/null 2>&1 || die "cannot reach the Docker engine (is it running, may this user use it?)"

fleet_label=sensorfleet.fleet=$prefix

# Names of this fleet's containers, running or not.
fleet_containers() {
    docker ps -a --filter "label=$fleet_label" --format '{{.Names}}' | sort
}

absolute() {
    mkdir -p "$1"
    (cd "$1" && pwd)
}

require_image() {
    docker image inspect "$image" >/dev/null 2>&1 \
        || die "image $image not found; build it first: docker build -t $image . (or docker/build-image.sh)"
}

# Rows per sensor id over every database in the data directory, as "ID<TAB>COUNT" lines.
row_counts() {
    local dir
    dir=$(absolute "$data_dir")
    # shellcheck disable=SC2016  # expanded by the container's shell
    docker run --rm -v "$dir:/app/data" "$image" sh -c '
        for db in /app/data/*.db; do
            [ -f "$db" ] || continue
            sensorfleet-query --db "$db" --tsv \
                "SELECT sensor_id, COUNT(*) FROM sensor_readings GROUP BY sensor_id" || true
        done'
}

show_status() {
    local names name sensor state health
    names=$(fleet_containers)
    if [[ -z $names ]]; then
        echo "No containers in fleet '$prefix'."
        return
    fi
    require_image
    declare -A rows=()
    while IFS=$'\t' read -r sensor n; do
        [[ -n $sensor ]] && rows[$sensor]=$((${rows[$sensor]:-0} + n))
    done < <(row_counts)
    printf '%-32s %-10s %-10s %10s\n' CONTAINER STATE HEALTH ROWS
    while read -r name; do
        sensor=$(docker inspect -f '{{index .Config.Labels "sensorfleet.sensor_id"}}' "$name")
        state=$(docker inspect -f '{{.State.Status}}' "$name")
        health=$(docker inspect -f '{{if .State.Health}}{{.State.Health.Status}}{{else}}-{{end}}' "$name")
        printf '%-32s %-10s %-10s %10s\n' "$name" "$state" "$health" "${rows[$sensor]:-0}"
    done <<<"$names"
}

take_down() {
    local names
    names=$(fleet_containers)
    if [[ -z $names ]]; then
        echo "No containers in fleet '$prefix'."
        return
    fi
    echo "Stopping $(wc -l <<<"$names") containers (each node flushes its rows first)..."
    # shellcheck disable=SC2086  # one name per word; docker stops them in parallel
    docker stop --time 30 $names >/dev/null
    # shellcheck disable=SC2086
    docker rm $names >/dev/null
    echo "Fleet '$prefix' removed; the data stays in $data_dir/."
}

# Identity files via the image's own CLI, written as the invoking user.
generate_identities() {
    local dir=$1 args=(identities --output-dir /out)
    if [[ -n $count ]]; then
        args+=(--count "$count" --seed "$seed")
        [[ -z $firmware_mix ]] || args+=(--firmware-mix "$firmware_mix")
    fi
    docker run --rm --user "$(id -u):$(id -g)" --entrypoint sensorfleet \
        -v "$dir:/out" "$image" "${args[@]}" \
        | sed "s|^/out/|$dir/|"
}

start_node() {
    local identity=$1 position=$2 sensor_id name db
    sensor_id=$(sed -n 's/.*"id": *"\([^"]*\)".*/\1/p' "$identity" | head -n 1)
    [[ -n $sensor_id ]] || die "$identity has no \"id\""
    name=$prefix$sensor_id
    local backfill_now=$backfill
    if docker container inspect "$name" >/dev/null 2>&1; then
        if [[ $(docker inspect -f '{{.State.Running}}' "$name") == true ]]; then
            echo "  $name already running"
            return
        fi
        local created_env
        created_env=$(docker inspect -f '{{range .Config.Env}}{{println .}}{{end}}' "$name")
        if ! grep -q '^BACKFILL=' <<<"$created_env"; then
            docker start "$name" >/dev/null
            echo "  $name restarted"
            return
        fi
        # Starting it again would write its history a second time: recreate it live only.
        docker rm "$name" >/dev/null
        backfill_now=
        echo "  $name recreated without --backfill (its history is already written)"
    fi
    local env=("${extra_env[@]}") restart=(--restart on-failure:5)
    if [[ -n $backfill_now ]]; then
        env+=(--env "BACKFILL=$backfill_now")
        # A restart would write the history again; a failed node stays down instead.
        restart=()
    fi
    [[ -z $run_time ]] || env+=(--env "RUN_TIME_SECONDS=$run_time")
    local ports=()
    if $publish_faces; then
        env+=(--env OPCUA_ENABLED=true --env MODBUS_ENABLED=true)
        ports+=(--publish "$((opcua_base + position)):4840" --publish "$((modbus_base + position)):5020")
    fi
    db=sensor_data.db
    if $db_per_node; then
        db=sensor_$sensor_id.db
        env+=(--env "DATABASE_PATH=/app/data/$db")
    fi
    docker run -d --name "$name" \
        --label "$fleet_label" \
        --label "sensorfleet.sensor_id=$sensor_id" \
        --label "sensorfleet.database=$db" \
        "${restart[@]}" "${ports[@]}" \
        -v "$config_path:/app/config.yaml:ro" \
        -v "$identity:/app/node_identity.json:ro" \
        -v "$data_path:/app/data" \
        "${env[@]}" "$image" >/dev/null
    [[ -n $backfill_now ]] || echo "  $name started"
    ! $publish_faces || echo "    OPC UA opc.tcp://localhost:$((opcua_base + position))/, Modbus TCP localhost:$((modbus_base + position)) unit 1"
    [[ -z $backfill_now ]] || echo "  $name started (writing $backfill_now of history first)"
}

case "$action" in
    status) show_status; exit 0 ;;
    down) take_down; exit 0 ;;
esac

require_image
[[ -f $config ]] || die "no config file at $config; run from the repository root or pass --config"
config_path=$(cd "$(dirname "$config")" && pwd)/$(basename "$config")
data_path=$(absolute "$data_dir")
identities_path=$(absolute "$identities_dir")

echo "Generating sensor identities..."
mapfile -t identities < <(generate_identities "$identities_path")
((${#identities[@]} > 0)) || die "no identities were generated"
echo "Generated ${#identities[@]} sensor identities in $identities_dir/"

echo "Starting one container per sensor..."
for position in "${!identities[@]}"; do
    start_node "${identities[$position]}" "$position"
done

echo "All sensors started. Data is written to $data_dir/."
echo "  status:  $0 --status"
echo "  logs:    docker logs ${prefix}<SENSOR_ID>"
echo "  stop:    $0 --down"
