//! `pool.min_share`: a floor under the CPU share of busy pool threads.
//!
//! Pool threads run at a low priority (`pool.sched` and `pool.nice`: SCHED_OTHER
//! at nice 10 by default) so that light requests win the CPU. When light work keeps every
//! CPU busy, a low-priority thread gets next to nothing, and heavy requests
//! queue until they time out (starvation). The governor looks at each pool
//! thread every [`WINDOW`]: a thread that is running jobs and whose CPU share
//! (averaged over about a second) is below `min_share` is raised one step
//! (SCHED_OTHER at `pool.nice`, then nice 0); one above it is lowered one step,
//! back to `pool.sched`. So heavy work gets at least `min_share` of a CPU per
//! pool thread, and light work keeps the rest; with `min_share = 0` the
//! priority is strict (light first, always).
//!
//! Returning from SCHED_IDLE (or to a lower nice value) needs `RLIMIT_NICE`
//! (the unit's `LimitNICE=+0`) or CAP_SYS_NICE; without either, the governor
//! says so once and stands down.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::config::PoolSched;

/// How often the governor looks.
pub const WINDOW: Duration = Duration::from_millis(100);

/// Weight of the newest window in the running share (about a second's memory).
const NEW: f64 = 0.25;

/// What a pool thread shares with the governor.
#[derive(Debug, Default)]
pub struct Activity {
    /// Running a job right now.
    pub in_job: AtomicBool,
    /// Jobs started so far (a thread between two jobs is still busy).
    pub started: AtomicU64,
}

#[derive(Debug)]
struct Governed {
    tid: libc::pid_t,
    clock: libc::clockid_t,
    activity: Arc<Activity>,
    cpu_ns: u64,
    started: u64,
    share: f64,
    level: u8,
}

/// The governor: one per pool.
#[derive(Debug)]
pub struct Governor {
    min_share: f64,
    sched: PoolSched,
    nice: i32,
    threads: Mutex<Vec<Governed>>,
    refused: AtomicBool,
}

/// The calling thread's CPU-time clock.
fn own_cpu_clock() -> Option<libc::clockid_t> {
    let mut clock: libc::clockid_t = 0;
    // SAFETY: pthread_self() is always valid; `clock` is a valid out-pointer.
    (unsafe { libc::pthread_getcpuclockid(libc::pthread_self(), &mut clock) } == 0).then_some(clock)
}

fn cpu_ns(clock: libc::clockid_t) -> Option<u64> {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid out-pointer.
    (unsafe { libc::clock_gettime(clock, &mut ts) } == 0).then(|| ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64)
}

impl Governor {
    /// A governor keeping busy pool threads at `min_share` of a CPU or more;
    /// `sched` and `nice` are their configured (lowest) priority.
    pub fn new(min_share: f64, sched: PoolSched, nice: i32) -> Governor {
        Governor { min_share, sched, nice, threads: Mutex::new(Vec::new()), refused: AtomicBool::new(false) }
    }

    /// Whether there is anything to govern: a floor above 0 under a priority
    /// below normal.
    pub fn active(&self) -> bool {
        self.min_share > 0.0 && (self.sched != PoolSched::Normal || self.nice > 0) && !self.refused.load(Ordering::Relaxed)
    }

    /// Called by each pool thread once, on itself.
    pub fn register(&self, activity: Arc<Activity>) {
        let Some(clock) = own_cpu_clock() else { return };
        let tid = nix::unistd::gettid().as_raw();
        let cpu_ns = cpu_ns(clock).unwrap_or(0);
        if let Ok(mut t) = self.threads.lock() {
            t.push(Governed { tid, clock, activity, cpu_ns, started: 0, share: 1.0, level: 0 });
        }
    }

    /// Pool threads currently raised above their configured priority.
    pub fn raised(&self) -> usize {
        self.threads.lock().map(|t| t.iter().filter(|g| g.level > 0).count()).unwrap_or(0)
    }

    /// One look at every pool thread, `window` after the previous one.
    pub fn tick(&self, window: Duration) {
        if !self.active() {
            return;
        }
        let Ok(mut threads) = self.threads.lock() else { return };
        let window_ns = window.as_nanos().max(1) as f64;
        threads.retain_mut(|g| {
            let Some(now) = cpu_ns(g.clock) else { return false };
            let used = now.saturating_sub(g.cpu_ns) as f64;
            g.cpu_ns = now;
            let started = g.activity.started.load(Ordering::Relaxed);
            let busy = g.activity.in_job.load(Ordering::Relaxed) || started != g.started;
            g.started = started;
            let want = if busy {
                g.share = (1.0 - NEW) * g.share + NEW * (used / window_ns).min(1.0);
                if g.share < self.min_share {
                    (g.level + 1).min(2)
                } else {
                    g.level.saturating_sub(1)
                }
            } else {
                // Nothing to run: back to the configured priority, and a fresh start.
                g.share = 1.0;
                0
            };
            if want != g.level {
                match self.apply(g.tid, want) {
                    Ok(()) => g.level = want,
                    Err(e) => {
                        if !self.refused.swap(true, Ordering::Relaxed) {
                            tracing::warn!(
                                error = %e,
                                "pool.min_share: cannot raise a pool thread's priority (needs LimitNICE=+0 in the unit, or CAP_SYS_NICE); heavy jobs may starve under a saturating light load"
                            );
                        }
                    }
                }
            }
            true
        });
    }

    /// Puts thread `tid` at `level`: 0 the configured priority, 1 SCHED_OTHER
    /// at the configured nice value, 2 SCHED_OTHER at nice 0.
    fn apply(&self, tid: libc::pid_t, level: u8) -> std::io::Result<()> {
        let policy = if level == 0 { policy(self.sched) } else { libc::SCHED_OTHER };
        let nice = match level {
            0 => self.nice,
            // Already SCHED_OTHER at `nice` when that is the configured policy: halfway.
            1 if self.sched == PoolSched::Normal => self.nice / 2,
            1 => self.nice,
            _ => 0,
        };
        // Lowering: nice first, then the policy; raising: the other way round
        // (each step is then one the kernel allows on its own).
        if level == 0 {
            set_nice(tid, nice)?;
            set_policy(tid, policy)
        } else {
            set_policy(tid, policy)?;
            set_nice(tid, nice)
        }
    }
}

/// The kernel's scheduling policy for `pool.sched`.
pub(crate) fn policy(sched: PoolSched) -> libc::c_int {
    match sched {
        PoolSched::Idle => libc::SCHED_IDLE,
        PoolSched::Batch => libc::SCHED_BATCH,
        PoolSched::Normal => libc::SCHED_OTHER,
    }
}

/// Puts thread `tid` (0: the calling thread) under `policy`.
pub(crate) fn set_policy(tid: libc::pid_t, policy: libc::c_int) -> std::io::Result<()> {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: a plain syscall on a thread of this process; `param` is valid.
    if unsafe { libc::sched_setscheduler(tid, policy, &param) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Sets thread `tid`'s nice value.
pub(crate) fn set_nice(tid: libc::pid_t, nice: i32) -> std::io::Result<()> {
    // SAFETY: a plain syscall on a thread of this process.
    if unsafe { libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, nice) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy_and_nice(tid: libc::pid_t) -> (i32, i32) {
        // SAFETY: plain syscalls.
        unsafe { (libc::sched_getscheduler(tid), libc::getpriority(libc::PRIO_PROCESS, tid as libc::id_t)) }
    }

    /// A busy low-priority thread that gets no CPU is raised step by step,
    /// and lowered back once it has nothing to do.
    #[test]
    fn a_starved_busy_thread_is_raised_and_an_idle_one_lowered() {
        let g = Arc::new(Governor::new(0.3, PoolSched::Idle, 10));
        let activity = Arc::new(Activity::default());
        let (tx, rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
        let (g2, a2) = (g.clone(), activity.clone());
        let t = std::thread::spawn(move || {
            // SAFETY: plain syscalls on this thread.
            unsafe {
                libc::setpriority(libc::PRIO_PROCESS, 0, 10);
                libc::sched_setscheduler(0, libc::SCHED_IDLE, &libc::sched_param { sched_priority: 0 });
            }
            g2.register(a2.clone());
            // "In a job" but sleeping: it uses no CPU, as if starved.
            a2.in_job.store(true, Ordering::Relaxed);
            tx.send(nix::unistd::gettid().as_raw()).unwrap();
            stop_rx.recv().unwrap();
            a2.in_job.store(false, Ordering::Relaxed);
            stop_rx.recv().unwrap();
        });
        let tid = rx.recv().unwrap();
        assert_eq!(policy_and_nice(tid), (libc::SCHED_IDLE, 10));
        // The running share starts at 1 and falls by a quarter per window:
        // below 0.3 after 5 windows (one step up), then nice 0 (another).
        for _ in 0..6 {
            g.tick(WINDOW);
        }
        assert_eq!(policy_and_nice(tid), (libc::SCHED_OTHER, 0), "raised to normal priority");
        assert_eq!(g.raised(), 1);
        stop_tx.send(()).unwrap();
        std::thread::sleep(Duration::from_millis(20));
        g.tick(WINDOW); // the job count did not change, in_job is false: idle
        assert_eq!(policy_and_nice(tid), (libc::SCHED_IDLE, 10), "back to the configured priority");
        assert_eq!(g.raised(), 0);
        stop_tx.send(()).unwrap();
        t.join().unwrap();
    }

    /// A thread that gets its share stays where it is.
    #[test]
    fn a_thread_getting_its_share_is_left_alone() {
        let g = Governor::new(0.3, PoolSched::Idle, 10);
        let activity = Arc::new(Activity::default());
        g.register(activity.clone());
        activity.in_job.store(true, Ordering::Relaxed);
        let tid = nix::unistd::gettid().as_raw();
        let before = policy_and_nice(tid);
        for _ in 0..5 {
            // Busy on the CPU for the whole window.
            let until = std::time::Instant::now() + Duration::from_millis(20);
            while std::time::Instant::now() < until {}
            g.tick(Duration::from_millis(20));
        }
        assert_eq!(policy_and_nice(tid), before);
        assert_eq!(g.raised(), 0);
    }

    #[test]
    fn nothing_to_govern_at_normal_priority_or_without_a_floor() {
        assert!(!Governor::new(0.3, PoolSched::Normal, 0).active());
        assert!(!Governor::new(0.0, PoolSched::Idle, 10).active());
        assert!(Governor::new(0.3, PoolSched::Normal, 10).active());
    }
}
