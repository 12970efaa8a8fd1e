#!/usr/bin/env python3
"""Checks the container seccomp profile (OCI / Docker / Kubernetes Localhost
format) for what review depends on:
- default deny (SCMP_ACT_ERRNO), x86_64 and aarch64 in the arch map and no
  32-bit or x32 sub-architecture (their syscall numbers would bypass the names);
- every group has a comment saying who needs it;
- every name is a real system call of each architecture the group applies to
  (resolved with libseccomp's scmp_sys_resolver, the library runc uses: a
  misspelt name is silently ignored by runtimes, so it must fail here);
- no name is allowed twice for the same architecture, and the calls the
  design never grants (exec-family aside, which the runtime needs to start
  the entrypoint) are absent.

Usage: check_profile.py seccomp/container.json
"""

import json
import shutil
import subprocess
import sys

ARCHES = {"amd64": ("SCMP_ARCH_X86_64", "x86_64"), "arm64": ("SCMP_ARCH_AARCH64", "aarch64")}

# Never allowed in the container, whoever asks (DESIGN.md §2, minus execve:
# the runtime must exec the entrypoint, and warden's own filter forbids it).
FORBIDDEN = {
    "fork", "vfork", "execveat", "ptrace", "process_vm_readv", "process_vm_writev", "bpf", "perf_event_open",
    "userfaultfd", "memfd_create", "io_uring_setup", "io_uring_enter", "io_uring_register", "mount", "umount2",
    "pivot_root", "chroot", "unshare", "setns", "keyctl", "add_key", "request_key", "init_module", "finit_module",
    "delete_module", "kexec_load", "kexec_file_load", "setuid", "setgid", "setreuid", "setregid", "setresuid",
    "setresgid", "setgroups", "open_by_handle_at", "name_to_handle_at", "move_mount", "fsopen", "fsmount",
    "open_tree", "pidfd_open", "pidfd_getfd", "pidfd_send_signal", "kill", "reboot", "swapon", "swapoff",
    "acct", "quotactl", "syslog", "personality", "lookup_dcookie", "mbind", "move_pages", "migrate_pages",
}


def main(path):
    failures = []

    def check(cond, what):
        if not cond:
            failures.append(what)
            print(f"FAIL {what}")

    resolver = shutil.which("scmp_sys_resolver")
    if resolver is None:
        print("scmp_sys_resolver not found: apt-get install seccomp", file=sys.stderr)
        return 2
    prof = json.load(open(path))
    check(prof.get("defaultAction") == "SCMP_ACT_ERRNO", "defaultAction is SCMP_ACT_ERRNO")
    arch_map = {a["architecture"]: a.get("subArchitectures") or [] for a in prof.get("archMap", [])}
    check(set(arch_map) == {"SCMP_ARCH_X86_64", "SCMP_ARCH_AARCH64"}, "archMap: x86_64 and aarch64")
    check(all(not subs for subs in arch_map.values()), "archMap: no 32-bit / x32 sub-architectures")
    check("architectures" not in prof, "no flat 'architectures' list (archMap picks the host's)")

    names = {go: {} for go in ARCHES}
    for i, g in enumerate(prof.get("syscalls", [])):
        where = f"group {i} ({', '.join(g.get('names', [])[:3])}...)"
        check(len(g.get("comment", "").strip()) >= 20, f"{where}: has a comment explaining it")
        check(g.get("action") in ("SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO"), f"{where}: action ALLOW or ERRNO")
        check(set(g) <= {"names", "action", "args", "comment", "includes", "excludes", "errnoRet"}, f"{where}: known keys only")
        arches = g.get("includes", {}).get("arches") or list(ARCHES)
        check(set(arches) <= set(ARCHES), f"{where}: arches among {list(ARCHES)}")
        check(not g.get("excludes") and set(g.get("includes", {})) <= {"arches"}, f"{where}: no capability/kernel conditions")
        for go in arches:
            if go not in ARCHES:
                continue
            for n in g.get("names", []):
                out = subprocess.run([resolver, "-a", ARCHES[go][1], n], capture_output=True, text=True).stdout.strip()
                check(out.lstrip("-").isdigit() and int(out) >= 0, f"{where}: {n} is a system call on {ARCHES[go][1]} (resolver: {out})")
                if g["action"] == "SCMP_ACT_ALLOW":
                    key = (n, json.dumps(g.get("args"), sort_keys=True))
                    check(key not in names[go], f"{n} allowed twice on {ARCHES[go][1]}")
                    names[go][key] = i
                    check(n not in FORBIDDEN, f"{n} must never be allowed")
    for go, allowed in names.items():
        print(f"{ARCHES[go][1]}: {len({n for n, _ in allowed})} system calls allowed")
    if failures:
        print(f"{len(failures)} profile check(s) failed", file=sys.stderr)
        return 1
    print(f"ok: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
