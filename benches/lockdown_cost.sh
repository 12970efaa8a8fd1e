#!/usr/bin/env bash
# Lockdown cost as server CPU time per request: two servers (default lockdown
# and --sandbox=off) take the same fixed number of iris requests, in rounds
# that alternate which goes first; the server's own user+system CPU time (from
# /proc/PID/stat, read from outside) is divided by the request count.
# CPU time counts only when the server runs, so it is far less sensitive to
# a busy machine than throughput; the seccomp filters run in the kernel on
# every system call and show up in system time.
# Usage: benches/lockdown_cost.sh [requests per round] [rounds]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
n=${1:-20000}
rounds=${2:-5}
bin=${WARDEN_BIN:-target/release/warden}
[ -x "$bin" ] || cargo build --release --locked
tick=$(getconf CLK_TCK)

start() { # $1 = extra flag, prints "pid port"
    local log; log=$(mktemp)
    "$bin" serve --model-repository models --http-address 127.0.0.1 --http-port 0 --allow-metrics=false --log-format json $1 >"$log" 2>&1 &
    local pid=$!
    for _ in $(seq 100); do
        local port; port=$(grep -o '"address":"127.0.0.1:[0-9]*","startup_ms' "$log" | grep -o '127.0.0.1:[0-9]*' | cut -d: -f2 || true)
        if [ -n "$port" ]; then echo "$pid $port"; return; fi
        sleep 0.1
    done
    echo "server did not start: $(cat "$log")" >&2; exit 1
}
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }

read -r on_pid on_port < <(start "--sandbox=enforce")
read -r off_pid off_port < <(start "--sandbox=off")
trap 'kill $on_pid $off_pid 2>/dev/null' EXIT
printf '| round | lockdown on µs CPU/request | off µs CPU/request | on/off |\n|---|---|---|---|\n'
ratios=()
for r in $(seq "$rounds"); do
    declare -A per
    order="on off"; [ $((r % 2)) = 0 ] && order="off on"
    for which in $order; do
        pid_var=${which}_pid; port_var=${which}_port
        before=$(cpu "${!pid_var}")
        "$bin" bench --url "http://127.0.0.1:${!port_var}" --model iris --concurrency 2 --iterations "$n" >/dev/null
        after=$(cpu "${!pid_var}")
        per[$which]=$(awk -v a="$after" -v b="$before" -v t="$tick" -v n="$n" 'BEGIN{printf "%.2f", (a-b)/t/n*1e6}')
    done
    ratios+=("$(awk -v a="${per[on]}" -v b="${per[off]}" 'BEGIN{printf "%.3f", a/b}')")
    printf '| %s | %s | %s | %s |\n' "$r" "${per[on]}" "${per[off]}" "${ratios[-1]}"
done
printf '\nmedian on/off %s (rounds %s to %s)\n' \
    "$(printf '%s\n' "${ratios[@]}" | sort -n | awk '{v[NR]=$1} END{print (NR%2 ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2)}')" \
    "$(printf '%s\n' "${ratios[@]}" | sort -n | head -1)" "$(printf '%s\n' "${ratios[@]}" | sort -n | tail -1)"
