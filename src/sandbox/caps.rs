//! Identity and capabilities.

use caps::{CapSet, Capability};

use super::{SandboxError, layer_err};

/// Switches to `uid:gid` with no supplementary groups (started as root only).
pub fn switch_user(uid: u32, gid: u32) -> Result<(), SandboxError> {
    // SAFETY: getuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err(layer_err("user", "--user needs the process to start as root"));
    }
    // SAFETY: setgroups with a zero length reads no memory.
    if unsafe { libc::setgroups(0, std::ptr::null()) } != 0 {
        return Err(layer_err("user", std::io::Error::last_os_error()));
    }
    // SAFETY: integer arguments only. Group first: after setresuid we could
    // no longer change it.
    if unsafe { libc::setresgid(gid, gid, gid) } != 0 {
        return Err(layer_err("user", std::io::Error::last_os_error()));
    }
    // SAFETY: integer arguments only.
    if unsafe { libc::setresuid(uid, uid, uid) } != 0 {
        return Err(layer_err("user", std::io::Error::last_os_error()));
    }
    Ok(())
}

/// Empties the bounding (when CAP_SETPCAP allows), ambient, inheritable,
/// permitted and effective sets, and checks that effective is empty.
pub fn drop_all() -> Result<String, SandboxError> {
    let err = |e: caps::errors::CapsError| layer_err("capabilities", e);
    let mut bounding = "bounding set left (no CAP_SETPCAP)";
    if caps::has_cap(None, CapSet::Effective, Capability::CAP_SETPCAP).map_err(err)? {
        for c in caps::all() {
            // Capabilities unknown to the running kernel fail with EINVAL; skip them.
            let _ = caps::drop(None, CapSet::Bounding, c);
        }
        bounding = "bounding set emptied";
    }
    caps::clear(None, CapSet::Ambient).map_err(err)?;
    caps::clear(None, CapSet::Inheritable).map_err(err)?;
    caps::clear(None, CapSet::Effective).map_err(err)?;
    caps::clear(None, CapSet::Permitted).map_err(err)?;
    let left = caps::read(None, CapSet::Effective).map_err(err)?;
    if !left.is_empty() {
        return Err(layer_err("capabilities", format!("effective set still holds {left:?}")));
    }
    Ok(format!("effective, permitted, inheritable and ambient sets empty; {bounding}"))
}
