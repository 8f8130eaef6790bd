//! glibc's malloc with a fixed mmap threshold, set before the process really starts.
//!
//! glibc serves a block of at least the *mmap threshold* (128 KiB at first) with a mapping of
//! its own, and gives it back to the kernel when it is freed. But each time such a block is
//! freed, glibc raises the threshold to that block's size (up to 32 MiB), and the size of free
//! space a heap keeps at its top to twice that. After one large block is freed, every block
//! under its size comes out of the per-thread heaps and their free space stays with the
//! process. Measured with `bench` on
//! 2 vCPUs (README, "Memory over a long run"): under the 30-minute soak the resident size
//! crept up by 2 to 3 MiB after the fifth minute and did not come back; with the threshold
//! fixed it stayed flat (−2.5 %), and every process of the bench needed less time per request
//! (a bare forwarder's added latency at one client fell from 65–92 µs to 9–14 µs).
//!
//! Setting the threshold turns that adjustment off. glibc reads it from the environment when
//! the program is loaded (`GLIBC_TUNABLES=glibc.malloc.mmap_threshold=…`); `mallopt(3)` would
//! set it later, but it is a C function and the workspace forbids `unsafe`. So [`settle`],
//! the first thing `main` does, executes the same binary again (same process id, arguments
//! and environment) with the tunable added, unless the environment sets it already: an
//! operator's own value is kept, and the new image does not execute itself a third time.
//! Every process the binary starts (the bench's, `dev`'s) inherits the variable. Under
//! `valgrind` set it beforehand: the executed image would run outside Valgrind.
//!
//! Depends on nothing else in the crate.

use std::ffi::{OsStr, OsString};

/// The environment variable glibc reads its tunables from.
pub const TUNABLES: &str = "GLIBC_TUNABLES";
/// The tunable set here.
pub const MMAP_THRESHOLD: &str = "glibc.malloc.mmap_threshold";
/// Its value: glibc's own starting point, no longer raised.
pub const THRESHOLD_BYTES: u32 = 128 * 1024;

/// The value [`TUNABLES`] should have, from its value now: `None` when it sets the mmap
/// threshold already (kept as it is), otherwise the tunables it holds followed by ours.
pub fn with_threshold(current: Option<&OsStr>) -> Option<OsString> {
    let ours = format!("{MMAP_THRESHOLD}={THRESHOLD_BYTES}");
    let Some(current) = current.filter(|c| !c.is_empty()) else {
        return Some(ours.into());
    };
    // Tunables are `name=value` pairs separated by colons; a name is ASCII, so a value that
    // is not UTF-8 cannot hide ours.
    let sets_it = current
        .to_string_lossy()
        .split(':')
        .any(|pair| pair.split('=').next() == Some(MMAP_THRESHOLD));
    if sets_it {
        return None;
    }
    let mut value = current.to_owned();
    value.push(":");
    value.push(ours);
    Some(value)
}

/// Executes this binary again with the mmap threshold in [`TUNABLES`], when the environment
/// does not set it yet (see the module documentation). Call it first in `main`, before any
/// thread starts. Returns when nothing is to be done, in a secure-execution start (see
/// `secure_execution`), or when executing failed (no `/proc`): the program then runs with
/// glibc's adjusting threshold, as it would without this module.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn settle() {
    use std::os::unix::process::CommandExt;

    let Some(value) = with_threshold(std::env::var_os(TUNABLES).as_deref()) else {
        return;
    };
    if secure_execution() {
        return;
    }
    let mut args = std::env::args_os();
    let Some(arg0) = args.next() else {
        return;
    };
    // `exec` returns only when it failed; the program then carries on as it is.
    let _failed = std::process::Command::new("/proc/self/exe")
        .arg0(arg0)
        .args(args)
        .env(TUNABLES, value)
        .exec();
}

/// Other systems: nothing to set.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn settle() {}

/// Whether the kernel started this process in secure-execution mode (`AT_SECURE` in its
/// auxiliary vector: set-user-id, file capabilities), in which glibc ignores the tunable and
/// may drop it from the environment: executing again would then never end. Unreadable
/// counts as secure.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn secure_execution() -> bool {
    const AT_SECURE: u64 = 23;
    let Ok(auxv) = std::fs::read("/proc/self/auxv") else {
        return true;
    };
    let word = std::mem::size_of::<usize>();
    let value = |bytes: &[u8]| -> u64 {
        let mut buf = [0u8; 8];
        if let Some(dst) = buf.get_mut(..bytes.len()) {
            dst.copy_from_slice(bytes);
        }
        u64::from_ne_bytes(buf)
    };
    let mut pairs = auxv.chunks_exact(2 * word);
    pairs
        .find(|pair| value(&pair[..word]) == AT_SECURE)
        .is_none_or(|pair| value(&pair[word..]) != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_threshold_is_added_to_whatever_tunables_are_set() {
        let ours = "glibc.malloc.mmap_threshold=131072";
        assert_eq!(with_threshold(None), Some(ours.into()));
        assert_eq!(with_threshold(Some(OsStr::new(""))), Some(ours.into()));
        assert_eq!(
            with_threshold(Some(OsStr::new("glibc.malloc.tcache_count=0"))),
            Some(format!("glibc.malloc.tcache_count=0:{ours}").into())
        );
    }

    #[test]
    fn a_threshold_already_set_is_kept() {
        for set in [
            "glibc.malloc.mmap_threshold=65536",
            "glibc.malloc.arena_max=2:glibc.malloc.mmap_threshold=1048576",
        ] {
            assert_eq!(with_threshold(Some(OsStr::new(set))), None, "{set}");
        }
        // A longer name that starts with ours is another tunable.
        assert!(with_threshold(Some(OsStr::new("glibc.malloc.mmap_threshold_x=1"))).is_some());
    }

    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[test]
    fn a_test_process_is_not_in_secure_execution() {
        assert!(!secure_execution());
    }
}
