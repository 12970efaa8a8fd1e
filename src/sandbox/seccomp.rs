//! The in-process seccomp filters, compiled from the reviewed policies in
//! `seccomp/<arch>.json` (seccompiler's JSON format).
//!
//! Each policy file holds two filters, installed together once the model
//! files are read and before any of them is parsed:
//! - `clone3_enosys`: answers `clone3` with ENOSYS so glibc falls back to
//!   `clone`, whose flags the allowlist can check;
//! - `serve`: what the serving process needs, and nothing to do with files
//!   or with installing filters: the models are parsed under it.
//!
//! Filters stack and the strictest answer wins. The violation action
//! replaces `mismatch_action`.

use std::collections::HashMap;

use seccompiler::{BpfMap, BpfProgram, TargetArch};
use serde_json::{Value, json};

use super::Action;

/// The policy of the architecture warden runs on.
#[cfg(target_arch = "x86_64")]
pub const POLICY: &str = include_str!("../../seccomp/x86_64.json");
#[cfg(target_arch = "aarch64")]
pub const POLICY: &str = include_str!("../../seccomp/aarch64.json");

/// Policies by architecture, for tests and review tooling.
pub const POLICIES: &[(&str, &str)] =
    &[("x86_64", include_str!("../../seccomp/x86_64.json")), ("aarch64", include_str!("../../seccomp/aarch64.json"))];

/// Why a policy could not be compiled or applied.
#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    #[error("policy is not valid JSON: {0}")]
    Json(String),
    #[error("policy does not compile: {0}")]
    Compile(String),
    #[error("policy has no filter '{0}'")]
    Missing(&'static str),
    #[error("installing the filter failed: {0}")]
    Apply(String),
}

fn action_json(action: Action) -> Value {
    match action {
        Action::Trap => json!("trap"),
        Action::Errno => json!({"errno": libc::EPERM}),
        Action::Kill => json!("kill_process"),
    }
}

/// Builds the seccompiler JSON for the two installable filters,
/// `clone3_enosys` and `serve`, with `action` for what `serve` refuses.
pub fn policy_document(policy: &str, action: Action) -> Result<Value, SeccompError> {
    let doc: Value = serde_json::from_str(policy).map_err(|e| SeccompError::Json(e.to_string()))?;
    let get = |name: &'static str| doc.get(name).cloned().ok_or(SeccompError::Missing(name));
    let clone3 = get("clone3_enosys")?;
    let mut serve = get("serve")?;
    serve["mismatch_action"] = action_json(action);
    Ok(json!({"clone3_enosys": clone3, "serve": serve}))
}

/// Compiles the filters for `arch`.
pub fn compile(policy: &str, action: Action, arch: &str) -> Result<BpfMap, SeccompError> {
    let doc = policy_document(policy, action)?;
    let arch: TargetArch = arch.try_into().map_err(|e| SeccompError::Compile(format!("{e:?}")))?;
    seccompiler::compile_from_json(doc.to_string().as_bytes(), arch).map_err(|e| SeccompError::Compile(e.to_string()))
}

fn compiled(action: Action) -> Result<HashMap<String, BpfProgram>, SeccompError> {
    compile(POLICY, action, std::env::consts::ARCH)
}

fn apply(map: &HashMap<String, BpfProgram>, name: &'static str) -> Result<(), SeccompError> {
    let prog = map.get(name).ok_or(SeccompError::Missing(name))?;
    // INVARIANT: TSYNC — every thread of the process gets the filter, so
    // the tokio runtime and the inference workers made before it are covered.
    seccompiler::apply_filter_all_threads(prog).map_err(|e| SeccompError::Apply(e.to_string()))
}

/// The ENOSYS answer to `clone3`, then the serving allowlist. Neither
/// allows `seccomp`, so this is the last filter the process can install.
pub fn apply_filters(action: Action) -> Result<(), SeccompError> {
    let map = compiled(action)?;
    apply(&map, "clone3_enosys")?;
    apply(&map, "serve")
}

/// Syscall names a filter allows (any argument rule counts as allowed).
pub fn allowed_names(policy: &str, filter: &str) -> Result<Vec<String>, SeccompError> {
    let doc = policy_document(policy, Action::Trap)?;
    Ok(doc[filter]["filter"]
        .as_array()
        .ok_or(SeccompError::Missing("filter"))?
        .iter()
        .filter_map(|r| r["syscall"].as_str().map(str::to_owned))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// DESIGN §2: never allowed once the filter is in force.
    const FORBIDDEN: &[&str] = &[
        "socket",
        "socketpair",
        "connect",
        "bind",
        "listen",
        "execve",
        "execveat",
        "fork",
        "vfork",
        "ptrace",
        "process_vm_readv",
        "process_vm_writev",
        "pidfd_open",
        "pidfd_getfd",
        "pidfd_send_signal",
        "bpf",
        "perf_event_open",
        "userfaultfd",
        "memfd_create",
        "io_uring_setup",
        "io_uring_enter",
        "io_uring_register",
        "open",
        "openat",
        "openat2",
        "mount",
        "umount2",
        "pivot_root",
        "chroot",
        "unshare",
        "setns",
        "keyctl",
        "add_key",
        "request_key",
        "init_module",
        "finit_module",
        "delete_module",
        "kexec_load",
        "kexec_file_load",
        "seccomp",
        "landlock_create_ruleset",
        "landlock_add_rule",
        "landlock_restrict_self",
        "capset",
        "setuid",
        "setgid",
        "setreuid",
        "setregid",
        "setresuid",
        "setresgid",
        "setgroups",
        "setfsuid",
        "setfsgid",
        "kill",
        "tkill",
        "rt_sigaction",
        "creat",
        "unlink",
        "unlinkat",
        "rename",
        "renameat",
        "renameat2",
        "mkdir",
        "mkdirat",
        "truncate",
        "ftruncate",
        "chmod",
        "fchmodat",
        "chown",
        "fchownat",
        "link",
        "linkat",
        "symlink",
        "symlinkat",
        "mknod",
        "mknodat",
        "newfstatat",
        "statx",
        "stat",
        "lstat",
        "getdents64",
        "readlink",
        "readlinkat",
        "ioctl",
    ];

    #[test]
    fn both_architectures_compile_with_every_action() {
        for (arch, policy) in POLICIES {
            for action in [Action::Trap, Action::Errno, Action::Kill] {
                let map = compile(policy, action, arch).unwrap_or_else(|e| panic!("{arch}: {e}"));
                for f in ["clone3_enosys", "serve"] {
                    assert!(!map[f].is_empty(), "{arch} {f}");
                }
            }
        }
    }

    #[test]
    fn the_filter_allows_nothing_forbidden() {
        for (arch, policy) in POLICIES {
            let allowed = allowed_names(policy, "serve").unwrap();
            for f in FORBIDDEN {
                assert!(!allowed.iter().any(|a| a == f), "{arch}: the filter allows forbidden syscall {f}");
            }
            // Nothing that reads files: models are read before the filter.
            for f in ["fstat", "lseek", "pread64", "getdents"] {
                assert!(!allowed.iter().any(|a| a == f), "{arch}: the filter allows file call {f}");
            }
        }
    }

    #[test]
    fn argument_rules_are_in_place() {
        for (arch, policy) in POLICIES {
            let doc = policy_document(policy, Action::Trap).unwrap();
            let rules = |stage: &str, name: &str| -> Vec<Value> {
                doc[stage]["filter"].as_array().unwrap().iter().filter(|r| r["syscall"] == name).cloned().collect()
            };
            let clone = rules("serve", "clone");
            assert_eq!(clone.len(), 1, "{arch}");
            assert_eq!(clone[0]["args"][0]["op"]["masked_eq"], 0x10000, "{arch}: clone needs CLONE_THREAD");
            let prctl = rules("serve", "prctl");
            assert_eq!(prctl.len(), 1, "{arch}");
            assert_eq!(prctl[0]["args"][0]["val"], 15, "{arch}: prctl is PR_SET_NAME only");
            assert_eq!(doc["clone3_enosys"]["match_action"]["errno"], 38);
        }
    }

    #[test]
    fn the_action_replaces_the_mismatch_action() {
        let d = policy_document(POLICY, Action::Kill).unwrap();
        assert_eq!(d["serve"]["mismatch_action"], "kill_process");
        let d = policy_document(POLICY, Action::Errno).unwrap();
        assert_eq!(d["serve"]["mismatch_action"]["errno"], libc::EPERM);
    }
}
