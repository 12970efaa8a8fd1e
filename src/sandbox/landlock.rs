//! Landlock: file system read-only beneath the model repository and
//! nothing else; TCP bind and connect denied; abstract unix sockets and
//! signals scoped to warden's own domain.

use std::path::PathBuf;

use landlock::{
    ABI, Access, AccessFs, AccessNet, CompatLevel, Compatible, RestrictionStatus, Ruleset, RulesetAttr, RulesetCreatedAttr, RulesetStatus,
    Scope, path_beneath_rules,
};

use super::{SandboxError, layer_err};

/// The ABI whose rights warden asks for: file system (incl. truncate and
/// ioctl on devices), TCP (V4) and scopes (V6).
const ABI_WANTED: ABI = ABI::V6;

/// Applies the ruleset; returns (layer, active, detail) for the file
/// system, network and scope layers. `hard` makes any gap an error.
pub fn restrict(readable: &[PathBuf], hard: bool) -> Result<Vec<(&'static str, bool, String)>, SandboxError> {
    let level = if hard { CompatLevel::HardRequirement } else { CompatLevel::BestEffort };
    let err = |e: landlock::RulesetError| layer_err("landlock", e);
    let read = AccessFs::ReadFile | AccessFs::ReadDir;
    let status: RestrictionStatus = Ruleset::default()
        .set_compatibility(level)
        .handle_access(AccessFs::from_all(ABI_WANTED))
        .map_err(err)?
        .handle_access(AccessNet::from_all(ABI_WANTED))
        .map_err(err)?
        .scope(Scope::from_all(ABI_WANTED))
        .map_err(err)?
        .create()
        .map_err(err)?
        .no_new_privs(true)
        .add_rules(path_beneath_rules(readable, read))
        .map_err(err)?
        .restrict_self()
        .map_err(err)?;
    let abi = match status.landlock {
        landlock::LandlockStatus::Available { effective_abi, .. } => Some(effective_abi),
        _ => None,
    };
    let full = status.ruleset == RulesetStatus::FullyEnforced;
    let any = status.ruleset != RulesetStatus::NotEnforced;
    let abi_n = abi.map(|a| a as i32).unwrap_or(0);
    let detail = |what: &str, need: i32| {
        if abi_n >= need && any {
            format!("{what} (kernel Landlock ABI {abi_n})")
        } else {
            format!("not enforced: needs Landlock ABI {need}, kernel has {abi_n}")
        }
    };
    Ok(vec![
        ("landlock_fs", any && abi_n >= 1 && (full || abi_n >= 5), detail("read-only beneath the model repository, nothing else", 5)),
        ("landlock_net", any && abi_n >= 4, detail("TCP bind and connect denied", 4)),
        ("landlock_scope", any && abi_n >= 6, detail("abstract unix sockets and signals scoped", 6)),
    ])
}
