#!/usr/bin/env bash
# Observes every system call warden makes over a container lifetime (start-up,
# model loading, serving all bundled models, metrics, the healthcheck
# subcommand, SIGTERM drain) with strace -f, and compares the set with the
# container seccomp profile: every observed call must be allowed by it.
# This is how seccomp/container.json was derived; rerun it after a toolchain
# or dependency bump and review the difference.
#
# Usage: tests/container/trace-syscalls.sh [BINARY]   (default: the static build)
#   PROFILE=FILE compares with another profile; KEEP=DIR keeps the raw traces.
# Prints the observed names; exit 1 if the profile lacks any of them.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
bin=${1:-$root/target/static/x86_64-unknown-linux-gnu/release/warden}
py=$root/.venv/bin/python
work=$(mktemp -d /tmp/warden-trace.XXXXXX)
server_pid=
cleanup() {
    if [[ -n $server_pid ]] && kill -0 "$server_pid" 2>/dev/null; then kill -KILL "$server_pid" || true; fi
    if [[ -n ${KEEP:-} ]]; then mkdir -p "$KEEP" && cp "$work"/*.trace "$KEEP"/ 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

command -v strace >/dev/null || { echo "strace is required (apt-get install strace)" >&2; exit 2; }
[[ -x $bin ]] || { echo "no binary at $bin" >&2; exit 2; }

port=$("$py" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mport=$("$py" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')

# -qq: no attach/exit chatter; -f: every thread; the output is the raw log.
strace -f -qq -o "$work/serve.trace" "$bin" serve --model-repository "$root/models" \
    --http-address 127.0.0.1 --http-port "$port" --metrics-port "$mport" --log-format json \
    >"$work/serve.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 300); do
    grep -q '"HTTP listening; ready"' "$work/serve.log" && break
    kill -0 "$server_pid" 2>/dev/null || { cat "$work/serve.log" >&2; exit 1; }
    sleep 0.2
done
grep -q '"HTTP listening; ready"' "$work/serve.log" || { echo "server not ready" >&2; cat "$work/serve.log" >&2; exit 1; }

"$py" "$root/tests/container/check_serving.py" "127.0.0.1:$port" --metrics "127.0.0.1:$mport" >&2
strace -f -qq -o "$work/health.trace" "$bin" healthcheck --http-port "$port"
# SIGTERM goes to warden itself (the first PID in the trace), not to strace.
warden_pid=$(awk 'NR == 1 { print $1; exit }' "$work/serve.trace")
kill -TERM "$warden_pid"
rc=0
wait "$server_pid" || rc=$?
server_pid=
[[ $rc == 0 ]] || { echo "warden exited $rc after SIGTERM" >&2; cat "$work/serve.log" >&2; exit 1; }

"$py" - "${PROFILE:-$root/seccomp/container.json}" "$work/serve.trace" "$work/health.trace" <<'EOF'
import json, re, sys
profile = json.load(open(sys.argv[1]))
allowed = {n for group in profile["syscalls"] if group["action"] == "SCMP_ACT_ALLOW" for n in group["names"]}
# Answered ENOSYS on purpose (clone3): the caller falls back to another call.
enosys = {n for group in profile["syscalls"] if group.get("errnoRet") == 38 for n in group["names"]}
seen = {}
call = re.compile(r"^\d+\s+(?:<\.\.\. )?([a-z_0-9]+)[( ]")
for path in sys.argv[2:]:
    for line in open(path):
        m = call.match(line)
        if m and m.group(1) not in ("exited", "killed", "resumed"):
            seen.setdefault(m.group(1), set()).add(path.rsplit("/", 1)[1])
for name in sorted(seen):
    verdict = "allowed" if name in allowed else "ENOSYS" if name in enosys else "MISSING"
    print(f"{name:24} {verdict:8} ({', '.join(sorted(seen[name]))})")
missing = sorted(n for n in seen if n not in allowed and n not in enosys)
if missing:
    print("not in the container profile:", " ".join(missing), file=sys.stderr)
    sys.exit(1)
EOF
