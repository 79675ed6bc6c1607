#!/usr/bin/env bash
# Calls per core, measured as the README says: the server pinned to core 0, the load
# generator to core 1, on loopback.
#
#   scripts/load-pinned.sh [BINARY] [CALLS] [DURATION_SECS] [-- extra env for serve ...]
#
# BINARY defaults to target/release/voxbridge (build it first: cargo build --release).
# Extra arguments after `--` are NAME=VALUE environment settings for the server, e.g.
#   scripts/load-pinned.sh target/release/voxbridge 1000 60 -- VOXBRIDGE_STORE_URL=
# Prints the load report; writes it as JSON to target/load-CALLS.json too.
set -euo pipefail
cd "$(dirname "$0")/.."

bin=${1:-target/release/voxbridge}
calls=${2:-1000}
duration=${3:-60}
shift $(( $# < 3 ? $# : 3 ))
[ "${1:-}" = "--" ] && shift
extra_env=("$@")

command -v taskset >/dev/null || { echo "taskset (util-linux) is needed" >&2; exit 2; }
[ -x "$bin" ] || { echo "no binary at $bin (cargo build --release)" >&2; exit 2; }
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
log=$(mktemp)

# Every simulated call comes from 127.0.0.1: lift the per-IP limits for the run.
env VOXBRIDGE_LIMITS_PER_IP_PER_MINUTE=0 VOXBRIDGE_LIMITS_MAX_CONNECTIONS_PER_IP=0 \
    VOXBRIDGE_LOG_LEVEL=warn "${extra_env[@]}" \
    taskset -c 0 "$bin" serve --listen "127.0.0.1:$port" >"$log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true; wait $server 2>/dev/null || true; rm -f "$log"' EXIT
for _ in $(seq 100); do
    curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
    sleep 0.1
done
mkdir -p target
taskset -c 1 "$bin" load "ws://127.0.0.1:$port/twilio/media" --calls "$calls" --ramp 10 \
    --duration "$duration" --pid "$server" --json "target/load-$calls.json"
if grep -qiE 'panic|error' "$log"; then
    echo "--- server log (errors) ---"
    grep -iE 'panic|error' "$log" | head -20
fi
