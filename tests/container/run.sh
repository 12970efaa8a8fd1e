#!/usr/bin/env bash
# The real container run. No image can be pulled here, so:
#   1. build the static binary on this machine with the Dockerfile's flags
#      (glibc crt-static, release, --locked) in its own target dir;
#   2. build the Dockerfile's runtime stage, unmodified, with podman:
#      `--target runtime --build-context builder=DIR` replaces the `builder`
#      stage by DIR/out/warden (see the Dockerfile's header);
#   3. run it the strict way: read-only, no capabilities, no-new-privileges,
#      the container seccomp profile, uid 65532, pids and memory limits;
#   4. check: image size and contents, health check healthy, the real Triton
#      client gets the reference answers from every bundled model, PID 1 has
#      no capabilities / NoNewPrivs 1 / stacked seccomp filters, and SIGTERM
#      stops it with exit code 0 within the grace period;
#   5. clean up (container, image, temp files), also on failure.
# Needs root (rootful podman). Usage: tests/container/run.sh
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
arch=$(uname -m)
triple=$arch-unknown-linux-gnu
bin=$root/target/static/$triple/release/warden
image=localhost/warden-ct:$$
name=warden-ct-$$
grace=10
max_bytes=$((30 * 1000 * 1000))
py=$root/.venv/bin/python
podman=(podman --runtime runc)
# Without systemd, podman logs an error about healthcheck timers on every
# create/rm; the health check itself is run explicitly below.
work=$(mktemp -d /tmp/warden-ct.XXXXXX)

cleanup() {
    "${podman[@]}" rm -f -t 0 "$name" >/dev/null 2>&1 || true
    "${podman[@]}" rmi -f "$image" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; "${podman[@]}" logs "$name" 2>&1 | tail -n 30 >&2 || true; exit 1; }
ok() { echo "ok   $*"; }

[[ $(id -u) == 0 ]] || { echo "run as root (rootful podman, /proc of the container's PID)" >&2; exit 2; }
if ! command -v podman >/dev/null || ! command -v runc >/dev/null; then
    echo "== installing podman and runc (Debian)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends podman runc >/dev/null
fi
[[ -x $py ]] || { echo "no test venv at $root/.venv (run .ci/setup-venv.sh)" >&2; exit 2; }

echo "== static binary ($triple, crt-static)"
# Same flags as the Dockerfile's builder stage. cargo is a no-op when it is
# up to date; the separate target dir keeps the shared debug build intact.
CARGO_TARGET_DIR=$root/target/static RUSTFLAGS="-C target-feature=+crt-static" \
    cargo build --release --locked --target "$triple"
ldd_out=$(ldd "$bin" 2>&1 || true)
grep -Eq 'not a dynamic executable|statically linked' <<<"$ldd_out" || fail "binary is not static: $ldd_out"
ok "static: ldd says '$ldd_out'"

echo "== image: the Dockerfile's runtime stage"
mkdir -p "$work/builder/out"
# The same install step as the builder stage: stripped, 0555.
install -D -s -m 0555 "$bin" "$work/builder/out/warden"
# --format docker: the OCI image format has no HEALTHCHECK field.
"${podman[@]}" build --quiet --format docker --target runtime --build-context "builder=$work/builder" \
    -f "$root/Dockerfile" -t "$image" "$root" >/dev/null
size=$("${podman[@]}" image inspect --format '{{.Size}}' "$image")
((size <= max_bytes)) || fail "image is $size bytes, more than $max_bytes"
ok "image size $((size / 1000)) kB (limit 30 MB)"
cfg=$("${podman[@]}" image inspect --format '{{json .Config}}' "$image")
"$py" - "$cfg" <<'EOF' || fail "image configuration"
import json, sys
c = json.loads(sys.argv[1])
want = {"User": "65532:65532", "Entrypoint": ["/warden"], "Cmd": ["serve"]}
bad = [f"{k}={c.get(k)!r}, expected {v!r}" for k, v in want.items() if c.get(k) != v]
labels = c.get("Labels") or {}
bad += [f"label {l} missing" for l in ("org.opencontainers.image.title", "org.opencontainers.image.licenses", "org.opencontainers.image.version") if l not in labels]
for b in bad:
    print("     " + b)
sys.exit(1 if bad else 0)
EOF
ok "image config: user 65532:65532, exec-form entrypoint, OCI labels"
# The files: the binary (root-owned, 0555) and the models, nothing else.
cid=$("${podman[@]}" create "$image")
"${podman[@]}" export "$cid" | tar -tvf - >"$work/files.txt"
"${podman[@]}" rm "$cid" >/dev/null
grep -Eq '^-r-xr-xr-x 0/0 .* warden$' "$work/files.txt" || fail "/warden is not root-owned 0555: $(grep warden$ "$work/files.txt")"
others=$(awk '{print $NF}' "$work/files.txt" | grep -Ev '^(warden|models/.*|models/?)$' | grep -Ev '^(dev|proc|sys|etc|run)(/.*)?$' || true)
[[ -z $others ]] || fail "unexpected files in the image: $others"
if awk '$2 != "0/0" { bad = 1 } END { exit !bad }' "$work/files.txt"; then fail "files not owned by root"; fi
ok "image holds /warden (0555, root) and /models only"

echo "== run: read-only, no capabilities, no-new-privileges, container seccomp profile"
# The ulimits are lowered because root here lacks CAP_SYS_RESOURCE, so runc
# cannot raise them to podman's defaults; they are not part of the hardening.
"${podman[@]}" run -d --name "$name" \
    --read-only --cap-drop=ALL --security-opt no-new-privileges \
    --security-opt "seccomp=$root/seccomp/container.json" \
    --user 65532:65532 --pids-limit 64 --memory 256m \
    --ulimit nofile=1024:1024 --ulimit nproc=1024:1024 \
    -p 127.0.0.1::8000 -p 127.0.0.1::8002 "$image" >/dev/null
http=$("${podman[@]}" port "$name" 8000/tcp | head -n1)
metrics=$("${podman[@]}" port "$name" 8002/tcp | head -n1)
healthy=
for _ in $(seq 1 120); do
    # `podman healthcheck run` execs the image's HEALTHCHECK command
    # (/warden healthcheck) inside the container, under the same profile.
    if "${podman[@]}" healthcheck run "$name" >/dev/null 2>&1; then healthy=1; break; fi
    [[ $("${podman[@]}" inspect --format '{{.State.Running}}' "$name") == true ]] || fail "container exited"
    sleep 0.5
done
[[ -n $healthy ]] || fail "health check never passed"
status=$("${podman[@]}" inspect --format '{{.State.Healthcheck.Status}}' "$name" 2>/dev/null ||
    "${podman[@]}" inspect --format '{{.State.Health.Status}}' "$name")
[[ $status == healthy ]] || fail "health status is '$status'"
ok "HEALTHCHECK (/warden healthcheck): $status"

echo "== serving through the published port (tritonclient)"
"$py" "$root/tests/container/check_serving.py" "$http" --metrics "$metrics" || fail "serving check"

echo "== PID 1 as the kernel sees it"
pid=$("${podman[@]}" inspect --format '{{.State.Pid}}' "$name")
status_file=$(cat "/proc/$pid/status")
"$py" - "$status_file" <<'EOF' || fail "/proc/$pid/status"
import sys
st = dict(l.split(":", 1) for l in sys.argv[1].splitlines() if ":" in l)
st = {k: v.strip() for k, v in st.items()}
bad = []
for cap in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
    if int(st[cap], 16) != 0:
        bad.append(f"{cap} {st[cap]}")
if st["NoNewPrivs"] != "1":
    bad.append(f"NoNewPrivs {st['NoNewPrivs']}")
if st["Seccomp"] != "2":
    bad.append(f"Seccomp mode {st['Seccomp']} (2 = filter)")
# The container profile (1) stacked with warden's own filters.
if int(st.get("Seccomp_filters", "0")) < 2:
    bad.append(f"Seccomp_filters {st.get('Seccomp_filters')}")
if st["Uid"].split() != ["65532"] * 4 or st["Gid"].split() != ["65532"] * 4:
    bad.append(f"Uid {st['Uid']} Gid {st['Gid']}")
print(f"     caps all 0, NoNewPrivs {st['NoNewPrivs']}, Seccomp {st['Seccomp']}, "
      f"Seccomp_filters {st.get('Seccomp_filters')}, Uid {st['Uid'].split()[0]}, Threads {st['Threads']}")
for b in bad:
    print("     " + b)
sys.exit(1 if bad else 0)
EOF
ok "no capabilities, NoNewPrivs 1, stacked seccomp filters, uid/gid 65532"
# Logs into a variable first: with pipefail, `podman logs | grep -q` fails
# whenever grep stops reading at its match before podman has written all.
logs=$("${podman[@]}" logs "$name" 2>&1)
if grep -q 'lockdown blocked a system call' <<<"$logs"; then fail "the lockdown blocked a call"; fi
ok "no blocked system call logged"

echo "== SIGTERM: graceful stop within ${grace}s"
start=$(date +%s%N)
"${podman[@]}" stop -t "$grace" "$name" >/dev/null
took_ms=$((($(date +%s%N) - start) / 1000000))
code=$("${podman[@]}" inspect --format '{{.State.ExitCode}}' "$name")
[[ $code == 0 ]] || fail "exit code $code after SIGTERM (137 = killed at the end of the grace period)"
((took_ms < grace * 1000)) || fail "stop took ${took_ms} ms"
logs=$("${podman[@]}" logs "$name" 2>&1)
grep -q 'shutting down' <<<"$logs" || fail "no drain message in the log"
ok "exit code 0 after SIGTERM in ${took_ms} ms"
echo "container checks passed"
