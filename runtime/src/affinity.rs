//! CPU affinity: which CPUs the process may use, and pinning a thread to some of them.

use nix::sched::{sched_getaffinity, sched_setaffinity, CpuSet};
use nix::unistd::Pid;

/// CPUs the calling thread may run on, in ascending order (honours cgroup/cpuset limits).
pub fn allowed_cpus() -> Vec<usize> {
    match sched_getaffinity(Pid::from_raw(0)) {
        Ok(set) => (0..CpuSet::count()).filter(|&c| set.is_set(c).unwrap_or(false)).collect(),
        Err(_) => Vec::new(),
    }
}

/// The CPU instance `i` is pinned to: the `i mod n`-th allowed CPU.
pub fn cpu_for_instance(instance: u32, allowed: &[usize]) -> Option<usize> {
    if allowed.is_empty() {
        None
    } else {
        Some(allowed[instance as usize % allowed.len()])
    }
}

/// Restricts the calling thread to `cpus`.
pub fn set_current_thread(cpus: &[usize]) -> nix::Result<()> {
    let mut set = CpuSet::new();
    for &c in cpus {
        set.set(c)?;
    }
    sched_setaffinity(Pid::from_raw(0), &set)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instances_wrap_over_allowed_cpus() {
        assert_eq!(cpu_for_instance(0, &[2, 5]), Some(2));
        assert_eq!(cpu_for_instance(1, &[2, 5]), Some(5));
        assert_eq!(cpu_for_instance(2, &[2, 5]), Some(2));
        assert_eq!(cpu_for_instance(0, &[]), None);
        assert!(!allowed_cpus().is_empty());
    }
}
