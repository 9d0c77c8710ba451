//! The fixed-size pool for heavy work: a `threadpool::ThreadPool` wrapped so
//! the event loop can never be starved or flooded by it.
//!
//! * fixed size, set once from `pool.threads`;
//! * bounded queue: a job that would wait behind `pool.queue` others is
//!   refused at once ([`JobError::Full`], which HTTP turns into 503 + Retry-After);
//! * a deadline per job: a job still queued at its deadline is dropped unrun,
//!   a running one is told to stop ([`Cancel`]) and its result discarded;
//! * a job whose requester went away (client disconnect) is cancelled the same way;
//! * a panicking job fails only its own request; the thread survives;
//! * pool threads run at lower priority (nice 10 by default, `pool.nice`/`pool.sched`) than the event loop,
//!   with a floor under their CPU share while busy (`pool.min_share`, corepool's `share` module);
//! * [`Pool::stalled`] reports a job stuck far past its deadline, so the
//!   watchdog can stop pinging and systemd restarts the instance.

use std::collections::HashMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;

/// How a pool thread is scheduled.
#[derive(Debug, Clone)]
pub struct ThreadSettings {
    /// Nice value (0..19) applied to each pool thread.
    pub nice: i32,
    /// Scheduling policy of pool threads.
    pub sched: crate::config::PoolSched,
    /// CPUs the pool threads may run on (None: leave as inherited).
    pub cpus: Option<Vec<usize>>,
    /// The floor under a busy pool thread's CPU share (`pool.min_share`).
    pub min_share: f64,
}

/// Pool size and limits.
#[derive(Debug, Clone)]
pub struct PoolSettings {
    /// Worker threads.
    pub threads: usize,
    /// Jobs allowed to wait.
    pub queue: usize,
    /// The threads' priority and CPUs.
    pub thread: ThreadSettings,
}

/// Counters and gauges describing the pool; exported by `metrics`.
#[derive(Debug, Default)]
pub struct PoolStats {
    /// Jobs waiting for a thread.
    pub queued: Gauge,
    /// Threads running a job.
    pub busy: Gauge,
    /// Jobs completed.
    pub completed: Counter,
    /// Jobs refused: the queue was full.
    pub rejected: Counter,
    /// Jobs past their deadline.
    pub timed_out: Counter,
    /// Jobs cancelled before they ran to the end.
    pub cancelled: Counter,
    /// Jobs that panicked.
    pub panicked: Counter,
}

/// Why a job produced no result.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JobError {
    #[error("pool queue is full ({0} jobs waiting)")]
    /// The queue is full (its capacity): 503.
    Full(usize),
    #[error("job exceeded its deadline of {0:?}")]
    /// The job missed its deadline: 504.
    TimedOut(Duration),
    #[error("job was cancelled")]
    /// The job was cancelled.
    Cancelled,
    #[error("job panicked: {0}")]
    /// The job panicked (its message): 500.
    Panicked(String),
}

const LIVE: u8 = 0;
const CANCELLED: u8 = 1;
const TIMED_OUT: u8 = 2;

/// Handed to a job: heavy loops should return early once it is cancelled.
#[derive(Debug, Clone)]
pub struct Cancel {
    state: Arc<AtomicU8>,
    deadline: Instant,
}

impl Cancel {
    /// True once the requester gave up, or the deadline passed.
    pub fn is_cancelled(&self) -> bool {
        self.state.load(Ordering::Relaxed) != LIVE || Instant::now() >= self.deadline
    }

    /// A token that never cancels, for running job code outside the pool.
    pub fn never() -> Cancel {
        Cancel { state: Arc::new(AtomicU8::new(LIVE)), deadline: Instant::now() + Duration::from_secs(86400 * 365) }
    }
}

/// Marks the job cancelled if the waiting future is dropped (client went away).
struct DropGuard(Arc<AtomicU8>);

impl Drop for DropGuard {
    fn drop(&mut self) {
        let _ = self.0.compare_exchange(LIVE, CANCELLED, Ordering::Relaxed, Ordering::Relaxed);
    }
}

/// The heavy-work pool. Cheap to share behind an `Arc`.
pub struct Pool {
    tp: Mutex<threadpool::ThreadPool>,
    threads: usize,
    capacity: usize,
    stats: Arc<PoolStats>,
    thread: Arc<ThreadSettings>,
    /// Start time of each running job, keyed by job id: for stall detection.
    running: Arc<Mutex<HashMap<u64, Instant>>>,
    next_id: AtomicU64,
    /// Hands out pool thread numbers (for span recording).
    thread_numbers: Arc<AtomicUsize>,
    /// Keeps busy pool threads at `min_share` of a CPU or more.
    governor: Arc<crate::share::Governor>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool").field("threads", &self.threads).field("capacity", &self.capacity).finish()
    }
}

thread_local! {
    static CONFIGURED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    /// This pool thread's number (0-based, in the order threads took their first job).
    static THREAD_NO: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    /// What this pool thread tells the governor.
    static ACTIVITY: Arc<crate::share::Activity> = Arc::new(crate::share::Activity::default());
}

/// Applies priority and affinity to the current pool thread and numbers it,
/// once per thread (threads respawned by threadpool are configured on their
/// first job too).
fn configure_thread(s: &ThreadSettings, numbers: &AtomicUsize, governor: &crate::share::Governor) {
    if CONFIGURED.with(|c| c.replace(true)) {
        return;
    }
    governor.register(ACTIVITY.with(Arc::clone));
    THREAD_NO.with(|n| n.set(numbers.fetch_add(1, Ordering::Relaxed)));
    let tid = nix::unistd::gettid().as_raw();
    if s.sched != crate::config::PoolSched::Normal {
        if let Err(e) = crate::share::set_policy(0, crate::share::policy(s.sched)) {
            tracing::warn!(error = %e, ?s.sched, "pool thread: scheduling policy refused");
        }
    }
    if s.nice != 0 {
        if let Err(e) = crate::share::set_nice(tid, s.nice) {
            tracing::warn!(error = %e, "pool thread: setpriority refused");
        }
    }
    if let Some(cpus) = &s.cpus {
        if let Err(e) = crate::affinity::set_current_thread(cpus) {
            tracing::warn!(error = %e, ?cpus, "pool thread: affinity refused");
        }
    }
}

/// The text of a panic's payload.
pub(crate) fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>().map(|s| s.to_string()).or_else(|| p.downcast_ref::<String>().cloned()).unwrap_or_else(|| "non-string panic payload".into())
}

impl Pool {
    /// Starts the pool's threads.
    pub fn new(settings: PoolSettings) -> Pool {
        let tp = threadpool::Builder::new().num_threads(settings.threads).thread_name("corepool-job".into()).thread_stack_size(2 * 1024 * 1024).build();
        Pool {
            tp: Mutex::new(tp),
            threads: settings.threads,
            capacity: settings.queue,
            stats: Arc::new(PoolStats::default()),
            governor: Arc::new(crate::share::Governor::new(settings.thread.min_share, settings.thread.sched, settings.thread.nice)),
            thread: Arc::new(settings.thread),
            running: Arc::new(Mutex::new(HashMap::new())),
            next_id: AtomicU64::new(0),
            thread_numbers: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Its threads.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// The governor of `pool.min_share` (its `tick` runs on the event loop).
    pub fn governor(&self) -> &Arc<crate::share::Governor> {
        &self.governor
    }

    /// Jobs its queue holds.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Its counters.
    pub fn stats(&self) -> &Arc<PoolStats> {
        &self.stats
    }

    /// Jobs waiting for a thread.
    pub fn queued(&self) -> usize {
        self.stats.queued.get().max(0) as usize
    }

    /// Threads running a job.
    pub fn busy(&self) -> usize {
        self.stats.busy.get().max(0) as usize
    }

    /// True when the queue cannot take another job.
    pub fn saturated(&self) -> bool {
        self.queued() >= self.capacity
    }

    /// The longest a running job has been running, if one has been running
    /// longer than `limit`: the pool is stuck.
    pub fn stalled(&self, limit: Duration) -> Option<Duration> {
        let now = Instant::now();
        let running = self.running.lock().ok()?;
        running.values().map(|s| now.duration_since(*s)).filter(|d| *d > limit).max()
    }

    /// Runs `job` on the pool with a deadline `timeout` from now.
    ///
    /// Refuses at once when the queue is full. Dropping the returned future
    /// cancels the job.
    pub fn run<T, F>(&self, timeout: Duration, job: F) -> impl Future<Output = Result<T, JobError>> + Send + 'static
    where
        T: Send + 'static,
        F: FnOnce(&Cancel) -> T + Send + 'static,
    {
        let submitted = self.submit(timeout, job);
        async move {
            let (rx, state, deadline) = submitted?;
            let _guard = DropGuard(state.clone());
            match tokio::time::timeout_at(deadline.into(), rx).await {
                Ok(Ok(result)) => result,
                // The sender vanished without a word: only if the pool itself is gone.
                Ok(Err(_)) => Err(JobError::Cancelled),
                Err(_) => {
                    let _ = state.compare_exchange(LIVE, TIMED_OUT, Ordering::Relaxed, Ordering::Relaxed);
                    Err(JobError::TimedOut(timeout))
                }
            }
        }
    }

    #[allow(clippy::type_complexity)]
    fn submit<T, F>(&self, timeout: Duration, job: F) -> Result<(tokio::sync::oneshot::Receiver<Result<T, JobError>>, Arc<AtomicU8>, Instant), JobError>
    where
        T: Send + 'static,
        F: FnOnce(&Cancel) -> T + Send + 'static,
    {
        let cap = self.capacity as i64;
        if self.stats.queued.inner().fetch_update(Ordering::AcqRel, Ordering::Acquire, |q| (q < cap).then_some(q + 1)).is_err() {
            self.stats.rejected.inc();
            return Err(JobError::Full(self.capacity));
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        let state = Arc::new(AtomicU8::new(LIVE));
        let deadline = Instant::now() + timeout;
        let cancel = Cancel { state: state.clone(), deadline };
        let stats = self.stats.clone();
        let running = self.running.clone();
        let thread = self.thread.clone();
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let numbers = self.thread_numbers.clone();
        let governor = self.governor.clone();
        // Span recording (debug.spans): queued now, started/finished on the thread.
        let marks = crate::trace::current_job();
        if let Some((clock, m)) = &marks {
            m.queued(clock);
        }

        let task = move || {
            stats.queued.dec();
            configure_thread(&thread, &numbers, &governor);
            // Dropped unrun: the requester is gone or the deadline passed while queued.
            if cancel.is_cancelled() {
                let _ = tx.send(Err(abandoned(&stats, &cancel.state, timeout)));
                return;
            }
            stats.busy.inc();
            ACTIVITY.with(|a| {
                a.started.fetch_add(1, Ordering::Relaxed);
                a.in_job.store(true, Ordering::Relaxed);
            });
            if let Ok(mut r) = running.lock() {
                r.insert(id, Instant::now());
            }
            if let Some((clock, m)) = &marks {
                m.started(clock, THREAD_NO.with(|n| n.get()));
            }
            let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| job(&cancel)));
            if let Some((clock, m)) = &marks {
                m.finished(clock);
            }
            if let Ok(mut r) = running.lock() {
                r.remove(&id);
            }
            ACTIVITY.with(|a| a.in_job.store(false, Ordering::Relaxed));
            stats.busy.dec();
            match outcome {
                Err(payload) => {
                    stats.panicked.inc();
                    let _ = tx.send(Err(JobError::Panicked(panic_message(payload.as_ref()))));
                }
                Ok(_) if cancel.is_cancelled() => {
                    let _ = tx.send(Err(abandoned(&stats, &cancel.state, timeout)));
                }
                Ok(value) => {
                    stats.completed.inc();
                    let _ = tx.send(Ok(value));
                }
            }
        };
        match self.tp.lock() {
            Ok(tp) => tp.execute(task),
            Err(_) => {
                self.stats.queued.dec();
                return Err(JobError::Panicked("pool lock poisoned".into()));
            }
        }
        Ok((rx, state, deadline))
    }

    /// Waits (off the event loop) until no job is queued or running, or `timeout`.
    /// Returns true if the pool drained.
    pub async fn drain(&self, timeout: Duration) -> bool {
        let until = Instant::now() + timeout;
        while self.queued() + self.busy() > 0 {
            if Instant::now() >= until {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        true
    }
}

/// Counts a job that ended without a result, as timed out or cancelled, and says which.
fn abandoned(stats: &PoolStats, state: &AtomicU8, timeout: Duration) -> JobError {
    // A deadline that passed on the pool side before the waiter noticed counts as a timeout.
    let _ = state.compare_exchange(LIVE, TIMED_OUT, Ordering::Relaxed, Ordering::Relaxed);
    if state.load(Ordering::Relaxed) == CANCELLED {
        stats.cancelled.inc();
        JobError::Cancelled
    } else {
        stats.timed_out.inc();
        JobError::TimedOut(timeout)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(threads: usize, queue: usize) -> Pool {
        Pool::new(PoolSettings { threads, queue, thread: ThreadSettings { nice: 0, sched: crate::config::PoolSched::Normal, cpus: None, min_share: 0.0 } })
    }

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
    }

    #[test]
    fn runs_jobs_and_counts_them() {
        let p = pool(2, 4);
        let r = rt().block_on(p.run(Duration::from_secs(5), |_| 21 * 2));
        assert_eq!(r, Ok(42));
        assert_eq!(p.stats().completed.get(), 1);
    }

    #[test]
    fn full_queue_is_refused_not_queued() {
        let p = pool(1, 1);
        let rt = rt();
        rt.block_on(async {
            let (tx, rx) = std::sync::mpsc::channel::<()>();
            let blocker = p.run(Duration::from_secs(5), move |_| rx.recv().ok());
            let blocker = tokio::spawn(blocker);
            // Wait until the blocker occupies the thread.
            while p.busy() == 0 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            let queued = tokio::spawn(p.run(Duration::from_secs(5), |_| 1));
            while p.queued() == 0 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            assert_eq!(p.run(Duration::from_secs(5), |_| 2).await, Err(JobError::Full(1)));
            assert_eq!(p.stats().rejected.get(), 1);
            tx.send(()).unwrap();
            assert_eq!(blocker.await.unwrap(), Ok(Some(())));
            assert_eq!(queued.await.unwrap(), Ok(1));
        });
    }

    #[test]
    fn deadline_drops_queued_and_stops_running_jobs() {
        let p = pool(1, 8);
        rt().block_on(async {
            let spin = p.run(Duration::from_millis(100), |c| {
                while !c.is_cancelled() {
                    std::hint::spin_loop();
                }
                "stopped"
            });
            let queued = p.run(Duration::from_millis(50), |_| "ran");
            let (a, b) = tokio::join!(spin, queued);
            assert_eq!(a, Err(JobError::TimedOut(Duration::from_millis(100))));
            assert_eq!(b, Err(JobError::TimedOut(Duration::from_millis(50))));
            assert!(p.drain(Duration::from_secs(5)).await);
        });
        assert_eq!(p.stats().timed_out.get(), 2);
        assert_eq!(p.stats().completed.get(), 0);
    }

    #[test]
    fn dropped_waiter_cancels_job() {
        let p = pool(1, 8);
        rt().block_on(async {
            let fut = p.run(Duration::from_secs(30), |c| {
                while !c.is_cancelled() {
                    std::thread::sleep(Duration::from_millis(1));
                }
            });
            let _ = tokio::time::timeout(Duration::from_millis(50), fut).await;
            assert!(p.drain(Duration::from_secs(5)).await);
        });
        assert_eq!(p.stats().cancelled.get(), 1);
    }

    #[test]
    fn panic_fails_one_job_and_pool_keeps_its_size() {
        let p = pool(2, 8);
        rt().block_on(async {
            let r = p.run(Duration::from_secs(5), |_| -> u32 { panic!("boom") }).await;
            assert_eq!(r, Err(JobError::Panicked("boom".into())));
            // Both threads still take work at once (each waits for the other at the barrier).
            let barrier = Arc::new(std::sync::Barrier::new(2));
            let jobs: Vec<_> = (0..2)
                .map(|i| {
                    let b = barrier.clone();
                    p.run(Duration::from_secs(5), move |_| {
                        b.wait();
                        i
                    })
                })
                .collect();
            let mut out = Vec::new();
            for j in jobs {
                out.push(j.await.unwrap());
            }
            assert_eq!(out, vec![0, 1]);
        });
        assert_eq!(p.stats().panicked.get(), 1);
    }

    #[test]
    fn stall_is_reported() {
        let p = pool(1, 8);
        let rt = rt();
        rt.block_on(async {
            // A job that ignores its cancel flag and runs far past its deadline.
            let fut = p.run(Duration::from_millis(20), |_| std::thread::sleep(Duration::from_millis(300)));
            assert_eq!(fut.await, Err(JobError::TimedOut(Duration::from_millis(20))));
            assert!(p.stalled(Duration::from_millis(100)).is_none());
            tokio::time::sleep(Duration::from_millis(150)).await;
            assert!(p.stalled(Duration::from_millis(100)).is_some());
            assert!(p.drain(Duration::from_secs(5)).await);
            assert!(p.stalled(Duration::from_millis(100)).is_none());
        });
    }
}
