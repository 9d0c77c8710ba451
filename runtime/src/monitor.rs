//! The instance's background loops: [`monitor`] (every second the `STATUS=`
//! line, the count of enabled instances; every half watchdog period
//! `WATCHDOG=1` while the pool is healthy; after a second without requests,
//! the heap's free pages back to the system) and [`govern`] (`pool.min_share`).
//! Nothing here blocks the event loop: the one look at the filesystem runs
//! on tokio's blocking threads.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

use crate::notify::Notifier;
use crate::state::State;

/// `pool.min_share`: the governor's look at the pool threads, every window.
pub(crate) async fn govern(governor: Arc<crate::share::Governor>) {
    let mut tick = tokio::time::interval(crate::share::WINDOW);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last = Instant::now();
    loop {
        tick.tick().await;
        let now = Instant::now();
        governor.tick(now.duration_since(last));
        last = now;
    }
}

/// Every second: the STATUS= line and the enabled instances. Every half
/// watchdog period: WATCHDOG=1, but only while the pool is healthy (this task
/// running at all proves the event loop is).
pub(crate) async fn monitor(state: Arc<State>, notifier: Notifier, limit: Arc<Semaphore>, max_conns: usize) {
    let watchdog = notifier.watchdog();
    let period = watchdog.map(|w| (w / 2).min(Duration::from_secs(1))).unwrap_or(Duration::from_secs(1));
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last = (Instant::now(), state.metrics.total_requests());
    let mut stalled_logged = false;
    // The request count at the last trim of the heap.
    let mut trimmed_at = last.1;
    let mut counting: Option<tokio::task::JoinHandle<()>> = None;
    loop {
        tick.tick().await;
        let now = Instant::now();
        // A directory listing (the unit's .wants/): off the event loop, one at a time.
        if counting.as_ref().is_none_or(|c| c.is_finished()) {
            let s = state.clone();
            counting = Some(tokio::task::spawn_blocking(move || {
                if let Ok(v) = s.service.enabled_instances() {
                    s.enabled_instances.store(v.len(), Ordering::Relaxed);
                }
            }));
        }
        let total = state.metrics.total_requests();
        let dt = now.duration_since(last.0).as_secs_f64();
        if dt >= 0.9 {
            let rate = (total - last.1) as f64 / dt;
            // Idle: nothing finished in the last second and nothing in flight.
            if total == last.1 && total != trimmed_at && state.metrics.in_flight.get() == 0 {
                trimmed_at = total;
                tokio::task::spawn_blocking(trim_heap);
            }
            last = (now, total);
            let conns = max_conns - limit.available_permits();
            notifier.status(&state.status_line(rate, conns));
        }
        if watchdog.is_some() {
            // A job running for twice its deadline ignored its cancel flag: the pool is wedged.
            let limit = state.config.load().pool.job_timeout * 2;
            match state.pool.stalled(limit) {
                None => {
                    notifier.watchdog_ping();
                    stalled_logged = false;
                }
                Some(for_) if !stalled_logged => {
                    tracing::error!("pool stalled: a job has been running for {for_:?}; withholding watchdog pings");
                    stalled_logged = true;
                }
                Some(_) => {}
            }
        }
    }
}

/// Gives the heap's free pages back to the system, once a load is over:
/// glibc keeps what a burst of requests freed (connection buffers, bodies)
/// mapped, about half a megabyte after a warm-up of 64 connections, until
/// asked. Run after a second in which no request finished and none is in
/// flight (a pool busy with long jobs is left alone), off the event loop (it takes
/// the allocator's locks for a moment); the next request that needs the
/// memory maps it again.
fn trim_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim has no preconditions; it only releases free memory.
    unsafe {
        libc::malloc_trim(0);
    }
}
