#!/bin/bash
# The image's HEALTHCHECK: exit 0 when the container's process is doing its job.
#
# Docker runs this in every container every 15 s, so on a host with hundreds of sensor
# containers its cost adds up: a node is asked with bash alone (no interpreter to start),
# `GET /healthz` on MONITORING_PORT (8080) must answer 200. A collector (process 1 runs
# `sensorfleet sync`) is judged by its metrics, which healthcheck.py reads.
set -u

# Process 1 is the container's command, after the entrypoint's exec.
argv=()
mapfile -d '' -t argv </proc/1/cmdline 2>/dev/null
for ((i = 0; i + 1 < ${#argv[@]}; i++)); do
    if [[ ${argv[i]##*/} == sensorfleet && ${argv[i + 1]} == sync ]]; then
        exec python3 -I -S /usr/local/lib/sensorfleet-healthcheck.py
    fi
done

url="http://127.0.0.1:${MONITORING_PORT:-8080}/healthz"
if ! { exec 3<>"/dev/tcp/127.0.0.1/${MONITORING_PORT:-8080}"; } 2>/dev/null; then
    echo "healthcheck: $url unreachable" >&2
    exit 1
fi
printf 'GET /healthz HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' >&3
# Read the whole answer (the server closes the connection after it): closing with unread
# bytes would reset the connection while the node is still writing them.
answer=
IFS= read -r -d '' -t 4 answer <&3
status=${answer%%$'\r\n'*}
if [[ $status =~ ^HTTP/1\.[01]\ 200 ]]; then
    exit 0
fi
if [[ -z $answer ]]; then
    echo "healthcheck: $url did not answer within 4 s" >&2
    exit 1
fi
# The reasons are the JSON body after the headers.
body=${answer#*$'\r\n\r\n'}
echo "healthcheck: $url answered ${status#HTTP/1.? }: ${body:0:300}" >&2
exit 1
