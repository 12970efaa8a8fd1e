#!/usr/bin/env bash
# Soak test (not in CI): DURATION seconds (default 600) of mixed valid and
# hostile traffic against a local warden; prints RSS at start and end, counts
# by kind and status, and p50/p99 latency of valid requests per interval.
#
#   benches/soak.sh [DURATION_SECONDS] [CLIENT_THREADS]
#
# Builds the debug binary (dependencies are optimised in the dev profile) unless
# WARDEN_BIN points at one. Traffic goes to 127.0.0.1 only and stops by itself.
set -euo pipefail
DURATION="${1:-600}"
THREADS="${2:-8}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BIN="${WARDEN_BIN:-}"
if [ -z "$BIN" ]; then
    (cd "$ROOT" && cargo build --quiet)
    BIN="$ROOT/target/debug/warden"
fi
LOG="$(mktemp)"
"$BIN" serve --model-repository "$ROOT/models" --http-address 127.0.0.1 --http-port 0 --metrics-port 0 \
    --log-format json --http-max-input-size 1048576 --queue-depth 32 \
    --header-read-timeout-secs 2 --idle-timeout-secs 5 --request-timeout-secs 5 >"$LOG" 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null || true; rm -f "$LOG"' EXIT
for _ in $(seq 100); do
    grep -q '"HTTP listening; ready"' "$LOG" && break
    sleep 0.2
done
python3 - "$LOG" "$PID" "$DURATION" "$THREADS" <<'PY'
import json, random, socket, sys, threading, time, collections

log, pid, duration, nthreads = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
addr = metrics = None
for line in open(log):
    try:
        v = json.loads(line)
    except ValueError:
        continue
    if v.get("message", "").startswith("HTTP listening"):
        addr = v["address"]
    if v.get("message", "").startswith("metrics listening"):
        metrics = v["address"]
host, port = addr.rsplit(":", 1)
port = int(port)
mhost, mport = metrics.rsplit(":", 1)

def rss_kib():
    for l in open(f"/proc/{pid}/status"):
        if l.startswith("VmRSS:"):
            return int(l.split()[1])

def exchange(data, timeout=10, slow=False):
    s = socket.create_connection((host, port), timeout=timeout)
    try:
        if slow:
            for b in data[:40]:
                s.sendall(bytes([b]))
                time.sleep(0.5)
        s.sendall(data)
        buf = b""
        while b"\r\n\r\n" not in buf:
            c = s.recv(65536)
            if not c:
                return "cut"
            buf += c
        head, _, body = buf.partition(b"\r\n\r\n")
        status = head.split(b" ")[1].decode()
        n = 0
        for l in head.split(b"\r\n"):
            if l.lower().startswith(b"content-length:"):
                n = int(l.split(b":")[1])
        while len(body) < n:
            c = s.recv(65536)
            if not c:
                break
            body += c
        return status
    except (ConnectionError, socket.timeout, OSError) as e:
        return "cut" if not isinstance(e, socket.timeout) else "timeout"
    finally:
        s.close()

def post(path, body, headers=()):
    h = "".join(f"{k}: {v}\r\n" for k, v in headers)
    return f"POST {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {len(body)}\r\n{h}\r\n".encode() + body

iris = json.dumps({"inputs": [{"name": "float_input", "shape": [2, 4], "datatype": "FP32", "data": [5.1, 3.5, 1.4, 0.2, 6.3, 3.3, 6.0, 2.5]}]}).encode()
mnist = json.dumps({"inputs": [{"name": "input", "shape": [4, 1, 28, 28], "datatype": "FP32", "data": [0.5] * 4 * 784}]}).encode()
digits = json.dumps({"inputs": [{"name": "float_input", "shape": [1, 64], "datatype": "FP32", "data": [1.0] * 64}]}).encode()
kinds = {
    "valid_iris": (0.35, lambda: post("/v2/models/iris/infer", iris)),
    "valid_mnist": (0.15, lambda: post("/v2/models/mnist_cnn/infer", mnist)),
    "valid_digits": (0.10, lambda: post("/v2/models/digits/infer", digits)),
    "bad_json": (0.08, lambda: post("/v2/models/iris/infer", b"{not json")),
    "deep_json": (0.05, lambda: post("/v2/models/iris/infer", b'{"inputs":' + b"[" * 50000 + b"]" * 50000 + b"}")),
    "huge_shape": (0.05, lambda: post("/v2/models/iris/infer", b'{"inputs":[{"name":"float_input","shape":[4294967296,4294967296],"datatype":"FP32","data":[1]}]}')),
    "too_large": (0.04, lambda: post("/v2/models/iris/infer", b" " * (1 << 20 + 1))),
    "lying_ihcl": (0.05, lambda: post("/v2/models/iris/infer", iris, [("Inference-Header-Content-Length", "99999")])),
    "many_headers": (0.04, lambda: b"GET /v2 HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-%d: v\r\n" % i for i in range(300)) + b"\r\n"),
    "garbage": (0.04, lambda: bytes(random.getrandbits(8) for _ in range(200)) + b"\r\n\r\n"),
    "slowloris": (0.03, None),
    "unknown": (0.02, lambda: b"BREW /v2 HTTP/1.1\r\nHost: x\r\n\r\n"),
}
names = list(kinds)
weights = [kinds[k][0] for k in names]
counts = collections.Counter()
lat = collections.defaultdict(list)  # interval -> latencies of valid requests
lock = threading.Lock()
start = time.time()
interval = max(10.0, duration / 10)
stop = start + duration

def worker():
    while time.time() < stop:
        k = random.choices(names, weights)[0]
        t = time.time()
        if k == "slowloris":
            status = exchange(b"GET /v2 HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 60 + b"\r\n\r\n", slow=True)
        else:
            status = exchange(kinds[k][1]())
        dt = time.time() - t
        with lock:
            counts[(k, status)] += 1
            if k.startswith("valid") and status == "200":
                lat[int((t - start) // interval)].append(dt)

# A standing crowd of idle connections, replaced as the idle timeout closes them.
def idler():
    conns = []
    while time.time() < stop:
        conns = [c for c in conns if c.fileno() != -1]
        while len(conns) < 200:
            try:
                conns.append(socket.create_connection((host, port), timeout=5))
            except OSError:
                break
        time.sleep(1)
        alive = []
        for c in conns:
            c.setblocking(False)
            try:
                if c.recv(1) == b"":
                    c.close()
                    continue
            except BlockingIOError:
                pass
            except OSError:
                c.close()
                continue
            alive.append(c)
        conns = alive
    for c in conns:
        c.close()

rss0 = rss_kib()
print(f"warden pid {pid} on {addr}; RSS at start {rss0} KiB; {duration:.0f} s, {nthreads} client threads + 200 idle connections")
ts = [threading.Thread(target=worker) for _ in range(nthreads)] + [threading.Thread(target=idler)]
for t in ts:
    t.start()
rss_series = []
while time.time() < stop:
    time.sleep(min(interval, max(0.1, stop - time.time())))
    rss_series.append((round(time.time() - start), rss_kib()))
for t in ts:
    t.join()
rss1 = rss_kib()

def pct(v, p):
    v = sorted(v)
    return v[min(len(v) - 1, int(len(v) * p))] * 1000 if v else float("nan")

print("\n| interval (s) | valid 200s | p50 ms | p99 ms | RSS KiB at end |")
print("|---|---|---|---|---|")
for i in range(len(rss_series)):
    v = lat.get(i, [])
    print(f"| {int(i*interval)}-{int((i+1)*interval)} | {len(v)} | {pct(v, .5):.1f} | {pct(v, .99):.1f} | {rss_series[i][1]} |")
print("\n| kind | status | count |\n|---|---|---|")
for (k, s), n in sorted(counts.items()):
    print(f"| {k} | {s} | {n} |")
mt = socket.create_connection((mhost, int(mport)), timeout=5)
mt.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
text = b""
while True:
    c = mt.recv(65536)
    if not c:
        break
    text += c
print("\nlimit rejections counted by warden:")
violations = 0
for l in text.decode().splitlines():
    if l.startswith("warden_limit_rejections_total") or l.startswith("warden_queue_rejections_total") or l.startswith("warden_sandbox_violations_total"):
        print("  " + l)
    if l.startswith("warden_sandbox_violations_total"):
        violations += int(float(l.rsplit(" ", 1)[1]))
# The counter has a sample per syscall only once one was trapped: no sample is zero.
print(f"lockdown violations (warden_sandbox_violations_total, all syscalls): {violations}")
print(f"\nRSS start {rss0} KiB, end {rss1} KiB ({(rss1 - rss0) / 1024:+.1f} MiB); server alive: {open(f'/proc/{pid}/status').read() != ''}")
bad = [(k, s) for (k, s) in counts if k.startswith("valid") and s not in ("200", "503")]
print("unexpected answers to valid requests:", {f"{k} {s}": counts[(k, s)] for k, s in bad} or "none")
PY
