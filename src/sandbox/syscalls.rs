//! Syscall numbers to names, for logs and the `syscall` metric label.
//! A fixed table keeps the label set bounded; anything else is `other`.

macro_rules! table {
    (shared: [$($name:ident),* $(,)?], x86_64_only: [$($x86:ident),* $(,)?] $(,)?) => {
        /// Name of a syscall number, if it is one warden reports by name.
        pub fn name(nr: i64) -> &'static str {
            $( if nr == libc::$name as i64 { return &stringify!($name)[4..]; } )*
            // Syscall numbers are unique per architecture, so the order of the
            // two lists does not matter; aarch64 never had these legacy calls
            // (and libc does not define them there).
            #[cfg(target_arch = "x86_64")]
            {
                $( if nr == libc::$x86 as i64 { return &stringify!($x86)[4..]; } )*
            }
            "other"
        }
    };
}

table!(
    shared: [
        SYS_read,
        SYS_write,
        SYS_openat,
        SYS_openat2,
        SYS_close,
        SYS_newfstatat,
        SYS_statx,
        SYS_faccessat,
        SYS_faccessat2,
        SYS_readlinkat,
        SYS_getdents64,
        SYS_renameat,
        SYS_renameat2,
        SYS_unlinkat,
        SYS_mkdirat,
        SYS_linkat,
        SYS_symlinkat,
        SYS_fchmodat,
        SYS_fchownat,
        SYS_truncate,
        SYS_socket,
        SYS_socketpair,
        SYS_connect,
        SYS_bind,
        SYS_listen,
        SYS_execve,
        SYS_execveat,
        SYS_clone,
        SYS_clone3,
        SYS_ptrace,
        SYS_process_vm_readv,
        SYS_process_vm_writev,
        SYS_pidfd_open,
        SYS_pidfd_getfd,
        SYS_pidfd_send_signal,
        SYS_bpf,
        SYS_perf_event_open,
        SYS_userfaultfd,
        SYS_memfd_create,
        SYS_io_uring_setup,
        SYS_io_uring_enter,
        SYS_io_uring_register,
        SYS_mount,
        SYS_umount2,
        SYS_pivot_root,
        SYS_chroot,
        SYS_unshare,
        SYS_setns,
        SYS_keyctl,
        SYS_add_key,
        SYS_request_key,
        SYS_init_module,
        SYS_finit_module,
        SYS_delete_module,
        SYS_kexec_load,
        SYS_kexec_file_load,
        SYS_seccomp,
        SYS_landlock_create_ruleset,
        SYS_landlock_add_rule,
        SYS_landlock_restrict_self,
        SYS_capset,
        SYS_setuid,
        SYS_setgid,
        SYS_setreuid,
        SYS_setregid,
        SYS_setresuid,
        SYS_setresgid,
        SYS_setgroups,
        SYS_kill,
        SYS_tkill,
        SYS_tgkill,
        SYS_prctl,
        SYS_ioctl,
        SYS_mprotect,
        SYS_mmap,
        SYS_rt_sigaction,
        SYS_sendfile,
        SYS_splice,
        SYS_chdir,
        SYS_fchdir,
        SYS_uname,
        SYS_sysinfo,
        SYS_reboot,
        SYS_swapon,
        SYS_acct,
        SYS_setsid,
        SYS_setpgid,
        SYS_fanotify_init,
        SYS_inotify_init1,
        SYS_name_to_handle_at,
        SYS_open_by_handle_at,
        SYS_mknodat,
        SYS_syslog,
        SYS_personality,
        SYS_open_tree,
        SYS_move_mount,
        SYS_fsopen,
        SYS_fsmount,
        SYS_quotactl,
        SYS_settimeofday,
        SYS_clock_settime,
    ],
    x86_64_only: [
        SYS_open,
        SYS_creat,
        SYS_stat,
        SYS_lstat,
        SYS_access,
        SYS_readlink,
        SYS_rename,
        SYS_unlink,
        SYS_mkdir,
        SYS_rmdir,
        SYS_link,
        SYS_symlink,
        SYS_chmod,
        SYS_chown,
        SYS_fork,
        SYS_vfork,
        SYS_mknod,
        SYS_modify_ldt,
        SYS_iopl,
        SYS_ioperm,
        SYS_arch_prctl,
    ],
);

#[cfg(test)]
mod tests {
    #[test]
    fn names() {
        assert_eq!(super::name(libc::SYS_execve), "execve");
        assert_eq!(super::name(libc::SYS_socket), "socket");
        assert_eq!(super::name(-5), "other");
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn x86_64_only_names() {
        assert_eq!(super::name(libc::SYS_open), "open");
        assert_eq!(super::name(libc::SYS_fork), "fork");
    }
}
