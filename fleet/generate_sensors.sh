#!/usr/bin/env bash
# generate_sensors.sh - create sensor identities and run one container per sensor.
#
# Run from the directory holding config.yaml (the repository root):
#   ./fleet/generate_sensors.sh                    the original demo: 15 sensors
#   ./fleet/generate_sensors.sh --count 100        a generated mix of 100 sensors
#   ./fleet/generate_sensors.sh --types compressor=5,hvac=2   machines of those types
#   ./fleet/generate_sensors.sh --site site.yaml   the machines of a site file
#   ./fleet/generate_sensors.sh --site site.yaml --dry-run    write the identities, show the plan
#   ./fleet/generate_sensors.sh --backfill 1d      each node writes a day of history first
#   ./fleet/generate_sensors.sh --sync sqlite:///fleet.db   plus one collector: central/fleet.db
#   ./fleet/generate_sensors.sh --status           containers, row counts, unsynced rows
#   ./fleet/generate_sensors.sh --down             stop (flushing) and remove the fleet
#
# Every container is named <prefix><sensor id> (sensor_FACTORY_1_OLD) and mounts
# config.yaml, its identity file and the data directory, exactly like a single node.
# Re-running starts what is missing and leaves running sensors alone. Containers are
# started a few at a time (--parallel), so fleets of hundreds start quickly but safely.
set -euo pipefail

usage() {
    cat <<'EOF'
Usage: fleet/generate_sensors.sh [options]

Fleet:
  --count N             generated fleet of N sensors instead of the demo 15
  --seed S              seed of the generated mix (default: 0)
  --firmware-mix MIX    firmware weights of the generated mix (default: 1.3=0.5,1.4=0.5)
  --types TYPES         machines by type, TYPE=COUNT pairs (compressor=5,hvac=2); with
                        --count N the counts are proportions of N
  --site FILE           the machines of a site file: factories, lines, machines of
                        each type (docs/containers.md#site-files)
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
  --network MODE        network of every node (default: Docker's bridge); 'none'
                        suits nodes that need no network (--db-per-node, nobody
                        scraping their /metrics from outside), and starts faster
  --parallel N          docker run commands at once (default: 8)

Collection:
  --sync SINK           also run one collector container, <prefix>sync, that follows
                        the data directory and ships every row to SINK (a sync URL:
                        postgresql://..., mqtt://..., kafka://...; a relative file
                        sink such as sqlite:///fleet.db lands in --central-dir); it
                        uses the host's network, so localhost in SINK is this host
  --central-dir DIR     folder for file sinks of --sync (default: ./central)

Actions (default: create identities and start the fleet):
  --dry-run             write the identities with this host's sensorfleet command and
                        print the container each would run in; needs no Docker
  --status              list the fleet's containers with their rows and unsynced rows
  --down                stop the fleet (each node flushes; every one must exit 0),
                        let the collector ship the last rows, and remove the containers

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
types=
site=
seed=0
firmware_mix=
db_per_node=false
backfill=
run_time=
publish_faces=false
faces_ports=48400,50200
extra_env=()
network=
parallel=8
sync_sink=
central_dir=central

while [[ $# -gt 0 ]]; do
    case "$1" in
        --count) count=${2:?--count needs a number}; shift ;;
        --seed) seed=${2:?--seed needs a number}; shift ;;
        --types) types=${2:?--types needs TYPE=COUNT pairs}; shift ;;
        --site) site=${2:?--site needs a file}; shift ;;
        --dry-run) action=plan ;;
        --firmware-mix) firmware_mix=${2:?--firmware-mix needs a value}; shift ;;
        --db-per-node) db_per_node=true ;;
        --backfill) backfill=${2:?--backfill needs a duration}; shift ;;
        --run-time) run_time=${2:?--run-time needs seconds}; shift ;;
        --publish-faces) publish_faces=true ;;
        --faces-ports) faces_ports=${2:?--faces-ports needs OPCUA_BASE,MODBUS_BASE}; shift ;;
        -e | --env) extra_env+=(--env "${2:?--env needs KEY=VALUE}"); shift ;;
        --network) network=${2:?--network needs a mode}; shift ;;
        --parallel) parallel=${2:?--parallel needs a number}; shift ;;
        --sync) sync_sink=${2:?--sync needs a sink URL}; shift ;;
        --central-dir) central_dir=${2:?--central-dir needs a path}; shift ;;
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

if [[ $action != plan ]]; then
    command -v docker >/dev/null || die "docker is not installed or not on PATH"
    docker info >/dev/null 2>&1 || die "cannot reach the Docker engine (is it running, may this user use it?)"
fi

fleet_label=sensorfleet.fleet=$prefix
sync_name=${prefix}sync
sync_label=sensorfleet.sync=$prefix

[[ $parallel =~ ^[1-9][0-9]*$ ]] || die "--parallel: expected a number of 1 or more (got '$parallel')"

# Names of this fleet's containers, running or not.
fleet_containers() {
    docker ps -a --filter "label=$fleet_label" --format '{{.Names}}' | sort
}

# The collector container of this fleet, if there is one.
sync_container() {
    docker ps -a --filter "label=$sync_label" --format '{{.Names}}'
}

absolute() {
    mkdir -p "$1"
    (cd "$1" && pwd)
}

require_image() {
    docker image inspect "$image" >/dev/null 2>&1 \
        || die "image $image not found; build it first: docker build -t $image . (or docker/build-image.sh)"
}

# Rows and unsynced rows per sensor id over every database in the data directory, as
# "ID<TAB>ROWS<TAB>UNSYNCED" lines; one container reads them all.
row_counts() {
    local dir
    dir=$(absolute "$data_dir")
    docker run --rm -v "$dir:/app/data" "$image" sensorfleet-query --db /app/data --tsv \
        "SELECT sensor_id, COUNT(*), SUM(synced = 0) FROM sensor_readings GROUP BY sensor_id" \
        || true
}

show_status() {
    local names name sensor n unsynced_n
    names=$(fleet_containers)
    if [[ -z $names ]]; then
        echo "No containers in fleet '$prefix'."
        return
    fi
    require_image
    declare -A rows=() unsynced=()
    while IFS=$'\t' read -r sensor n unsynced_n; do
        [[ -n $sensor ]] || continue
        rows[$sensor]=$((${rows[$sensor]:-0} + n))
        unsynced[$sensor]=$((${unsynced[$sensor]:-0} + ${unsynced_n:-0}))
    done < <(row_counts)
    printf '%-32s %-10s %-10s %10s %10s\n' CONTAINER STATE HEALTH ROWS UNSYNCED
    # One docker inspect for the whole fleet: hundreds of containers answer in a second.
    # shellcheck disable=SC2086,SC2046  # one name per word
    docker inspect -f '{{.Name}} {{or (index .Config.Labels "sensorfleet.sensor_id") "-"}} {{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{else}}-{{end}}' \
        $names $(sync_container) \
        | while read -r name sensor state health; do
            if [[ $sensor == - ]]; then  # the collector
                printf '%-32s %-10s %-10s %10s %10s\n' "${name#/}" "$state" "$health" - -
            else
                printf '%-32s %-10s %-10s %10s %10s\n' "${name#/}" "$state" "$health" \
                    "${rows[$sensor]:-0}" "${unsynced[$sensor]:-0}"
            fi
        done
}

# Total unsynced rows in the data directory.
unsynced_total() {
    local sensor n unsynced_n total=0
    while IFS=$'\t' read -r sensor n unsynced_n; do
        [[ -n $sensor ]] && total=$((total + ${unsynced_n:-0}))
    done < <(row_counts)
    echo "$total"
}

take_down() {
    local names collector failed=() name code start
    names=$(fleet_containers)
    collector=$(sync_container)
    if [[ -z $names && -z $collector ]]; then
        echo "No containers in fleet '$prefix'."
        return
    fi
    if [[ -n $names ]]; then
        echo "Stopping $(wc -l <<<"$names") containers (each node flushes its rows first)..."
        # shellcheck disable=SC2086  # one name per word; docker stops them in parallel
        docker stop --time 60 $names >/dev/null
        # A node that flushed everything exits 0; anything else is kept for its logs.
        # shellcheck disable=SC2086
        while read -r name code; do
            [[ $code == 0 ]] || failed+=("${name#/}=$code")
        done < <(docker inspect -f '{{.Name}} {{.State.ExitCode}}' $names)
    fi
    if [[ -n $collector ]]; then
        if [[ $(docker inspect -f '{{.State.Running}}' "$collector") == true ]]; then
            echo "Waiting for $collector to ship the last rows..."
            start=$SECONDS
            while (($(unsynced_total) > 0)); do
                ((SECONDS - start < 120)) || {
                    echo "  rows are still unsynced after 120 s; they stay in $data_dir/ and ship when a collector runs again" >&2
                    break
                }
                sleep 2
            done
            docker stop --time 60 "$collector" >/dev/null
        fi
        code=$(docker inspect -f '{{.State.ExitCode}}' "$collector")
        [[ $code == 0 ]] || failed+=("$collector=$code")
    fi
    local remove=() keep=" ${failed[*]%%=*} "
    for name in $names $collector; do
        [[ $keep == *" $name "* ]] || remove+=("$name")
    done
    ((${#remove[@]} == 0)) || docker rm "${remove[@]}" >/dev/null
    if ((${#failed[@]})); then
        echo "generate_sensors: error: ${#failed[@]} container(s) did not exit 0 and were kept for 'docker logs':" >&2
        for name in "${failed[@]}"; do
            echo "  ${name%=*} (exit ${name##*=})" >&2
        done
        exit 1
    fi
    echo "Fleet '$prefix' removed: ${#remove[@]} containers, every one exited 0; the data stays in $data_dir/."
}

# Identity files via the image's own CLI, written as the invoking user. A site file is
# mounted at its own path, so a mistake in it is reported under the name the user gave.
# With --dry-run, this host's sensorfleet command writes them and no image is needed.
generate_identities() {
    local dir=$1 args=() mounts=()
    [[ -z $count ]] || args+=(--count "$count")
    [[ -z $types ]] || args+=(--types "$types")
    [[ -z $site ]] || args+=(--site "$site_path")
    if [[ -n $count$types$site ]]; then
        args+=(--seed "$seed")
        [[ -z $firmware_mix ]] || args+=(--firmware-mix "$firmware_mix")
    fi
    if [[ $action == plan ]]; then
        command -v sensorfleet >/dev/null \
            || die "--dry-run needs the sensorfleet command on PATH (pip install ., or . .venv/bin/activate)"
        sensorfleet identities --output-dir "$dir" "${args[@]}"
        return
    fi
    [[ -z $site ]] || mounts+=(-v "$site_path:$site_path:ro")
    docker run --rm --user "$(id -u):$(id -g)" --entrypoint sensorfleet \
        -v "$dir:/out" "${mounts[@]}" "$image" identities --output-dir /out "${args[@]}" \
        | sed "s|^/out/|$dir/|"
}

# What --dry-run prints for each identity: the container, its type, location and database.
show_plan() {
    local identity sensor_id type location db
    printf '%-40s %-22s %-28s %s\n' CONTAINER TYPE LOCATION DATABASE
    for identity in "$@"; do
        sensor_id=$(sed -n 's/.*"id": *"\([^"]*\)".*/\1/p' "$identity" | head -n 1)
        type=$(sed -n 's/.*"type": *"\([^"]*\)".*/\1/p' "$identity" | head -n 1)
        location=$(sed -n 's/.*"location": *"\([^"]*\)".*/\1/p' "$identity" | head -n 1)
        db=sensor_data.db
        ! $db_per_node || db=sensor_$sensor_id.db
        printf '%-40s %-22s %-28s %s\n' "$prefix$sensor_id" "$type" "$location" "$data_dir/$db"
    done
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
    local net=()
    [[ -z $network ]] || net=(--network "$network")
    docker run -d --name "$name" \
        --label "$fleet_label" \
        --label "sensorfleet.sensor_id=$sensor_id" \
        --label "sensorfleet.database=$db" \
        "${restart[@]}" "${net[@]}" "${ports[@]}" \
        -v "$config_path:/app/config.yaml:ro" \
        -v "$identity:/app/node_identity.json:ro" \
        -v "$data_path:/app/data" \
        "${env[@]}" "$image" >/dev/null
    [[ -n $backfill_now ]] || echo "  $name started"
    ! $publish_faces || echo "    OPC UA opc.tcp://localhost:$((opcua_base + position))/, Modbus TCP localhost:$((modbus_base + position)) unit 1"
    [[ -z $backfill_now ]] || echo "  $name started (writing $backfill_now of history first)"
}

# A TCP port nobody listens on at 127.0.0.1, from 9102 up (the collector's /metrics).
free_port() {
    local port
    for port in $(seq 9102 9199); do
        # shellcheck disable=SC2188  # a connection attempt, nothing to write
        if ! (: >"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            echo "$port"
            return
        fi
    done
    die "no free port for the collector's /metrics between 9102 and 9199"
}

# One collector for the whole data directory. It runs on the host's network, so a sink
# on this host is reached as localhost, and serves /metrics on 127.0.0.1, which the
# image's health check asks.
start_sync() {
    local central_path current port
    central_path=$(absolute "$central_dir")
    if docker container inspect "$sync_name" >/dev/null 2>&1; then
        current=$(docker inspect -f '{{range .Config.Env}}{{println .}}{{end}}' "$sync_name" \
            | sed -n 's/^SYNC_SINK=//p')
        if [[ $current == "$sync_sink" ]]; then
            if [[ $(docker inspect -f '{{.State.Running}}' "$sync_name") != true ]]; then
                docker start "$sync_name" >/dev/null
                echo "  $sync_name restarted"
            else
                echo "  $sync_name already running"
            fi
            return
        fi
        # Another sink: stop (the batch in flight is finished and marked) and recreate.
        docker stop --time 60 "$sync_name" >/dev/null
        docker rm "$sync_name" >/dev/null
    fi
    port=$(free_port)
    docker run -d --name "$sync_name" --label "$sync_label" \
        --restart on-failure:5 --network host \
        -v "$data_path:/app/data" -v "$central_path:/central" -w /central \
        --env "SYNC_SINK=$sync_sink" \
        "$image" sensorfleet sync /app/data --metrics-port "$port" >/dev/null
    echo "  $sync_name started: /app/data -> $sync_sink (metrics on 127.0.0.1:$port)"
}

case "$action" in
    status) show_status; exit 0 ;;
    down) take_down; exit 0 ;;
esac

[[ $action == plan ]] || require_image
if [[ -n $site ]]; then
    [[ -f $site ]] || die "--site: no site file at $site"
    site_path=$(cd "$(dirname "$site")" && pwd)/$(basename "$site")
fi
identities_path=$(absolute "$identities_dir")

echo "Generating sensor identities..."
# A mistake in the options or the site file was reported by the command: keep its status.
listing=$(generate_identities "$identities_path") || exit $?
mapfile -t identities <<<"$listing"
[[ -n $listing ]] || die "no identities were generated"
echo "Generated ${#identities[@]} sensor identities in $identities_dir/"
if [[ $action == plan ]]; then
    show_plan "${identities[@]}"
    exit 0
fi

[[ -f $config ]] || die "no config file at $config; run from the repository root or pass --config"
config_path=$(cd "$(dirname "$config")" && pwd)/$(basename "$config")
data_path=$(absolute "$data_dir")

echo "Starting one container per sensor, $parallel at a time..."
started_at=$SECONDS
failures=0
running=0
for position in "${!identities[@]}"; do
    if ((running >= parallel)); then
        wait -n || failures=$((failures + 1))
        running=$((running - 1))
    fi
    start_node "${identities[$position]}" "$position" &
    running=$((running + 1))
done
while ((running > 0)); do
    wait -n || failures=$((failures + 1))
    running=$((running - 1))
done
((failures == 0)) || die "$failures of ${#identities[@]} containers failed to start (see above)"
echo "Started ${#identities[@]} containers in $((SECONDS - started_at)) s."
[[ -z $sync_sink ]] || start_sync

echo "All sensors started. Data is written to $data_dir/."
[[ -z $sync_sink ]] || echo "  sync:    docker logs $sync_name"
echo "  status:  $0 --status"
echo "  logs:    docker logs ${prefix}<SENSOR_ID>"
echo "  stop:    $0 --down"
