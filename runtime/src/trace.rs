//! Per-request span recorder, off unless `debug.spans` names a directory.
//!
//! For each request it keeps when the request reached its handler, when its
//! heavy job (if any) was queued on the pool, started and finished on which
//! pool thread, and when the response was ready. At shutdown the spans are
//! written as JSON lines to `DIR/spans-<instance>-<pid>.jsonl`, with times in
//! microseconds since the Unix epoch so several instances line up on one
//! time axis (`bench/timeline.py` draws them). Off, it costs one branch per
//! request; on, one uncontended lock and ~100 bytes per request, bounded by
//! `debug.max_spans` (later requests are counted, not kept).

use std::cell::RefCell;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;

/// Times of one request's heavy job, set from the pool thread.
#[derive(Debug, Default)]
pub struct JobMarks {
    queued: AtomicU64,
    started: AtomicU64,
    finished: AtomicU64,
    /// Pool thread number + 1 (0: never started).
    thread: AtomicUsize,
}

impl JobMarks {
    /// The job was handed to the pool.
    pub fn queued(&self, clock: &Clock) {
        self.queued.store(clock.now_us(), Ordering::Relaxed);
    }
    /// A pool thread took the job.
    pub fn started(&self, clock: &Clock, thread: usize) {
        self.started.store(clock.now_us(), Ordering::Relaxed);
        self.thread.store(thread + 1, Ordering::Relaxed);
    }
    /// The job returned (or panicked).
    pub fn finished(&self, clock: &Clock) {
        self.finished.store(clock.now_us(), Ordering::Relaxed);
    }
}

/// Wall-clock microseconds, read through a monotonic clock anchored once.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    base: Instant,
    base_us: u64,
}

impl Clock {
    fn new() -> Clock {
        let base_us = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_micros() as u64).unwrap_or(0);
        Clock { base: Instant::now(), base_us }
    }
    pub fn now_us(&self) -> u64 {
        self.at(Instant::now())
    }
    pub fn at(&self, t: Instant) -> u64 {
        self.base_us + t.saturating_duration_since(self.base).as_micros() as u64
    }
}

/// One finished request, as written to the JSONL file.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Span {
    pub instance: u32,
    pub route: String,
    pub status: u16,
    /// The request head was parsed and handed to its handler.
    pub accepted_us: u64,
    /// Its heavy job entered the pool's queue (absent for light requests).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queued_us: Option<u64>,
    /// A pool thread started the job.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_us: Option<u64>,
    /// The job returned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job_done_us: Option<u64>,
    /// Pool thread number (0-based) that ran the job.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thread: Option<usize>,
    /// The response was ready to be written.
    pub finished_us: u64,
}

tokio::task_local! {
    /// The job marks of the request being handled on this task, when recording.
    static CURRENT: RefCell<Option<Arc<JobMarks>>>;
}

/// What the pool needs to mark a job: the recorder's clock and the marks of
/// the request that submits it. `None` when not recording (or outside a request).
pub fn current_job() -> Option<(Clock, Arc<JobMarks>)> {
    CLOCK.get().and_then(|clock| {
        CURRENT
            .try_with(|c| {
                let marks = Arc::new(JobMarks::default());
                *c.borrow_mut() = Some(marks.clone());
                (*clock, marks)
            })
            .ok()
    })
}

/// The process's recorder clock, set when a recorder is created.
static CLOCK: std::sync::OnceLock<Clock> = std::sync::OnceLock::new();

/// Collects spans in memory; [`Recorder::write`] saves them.
#[derive(Debug)]
pub struct Recorder {
    dir: PathBuf,
    instance: u32,
    clock: Clock,
    max: usize,
    spans: Mutex<Vec<Span>>,
    dropped: AtomicU64,
}

impl Recorder {
    pub fn new(dir: &Path, instance: u32, max: usize) -> Recorder {
        let clock = *CLOCK.get_or_init(Clock::new);
        Recorder { dir: dir.to_path_buf(), instance, clock, max, spans: Mutex::new(Vec::with_capacity(max.min(65536))), dropped: AtomicU64::new(0) }
    }

    /// Runs one request's handling with job marking on, then records its
    /// span; `accepted` is when the request reached the server's handler.
    pub async fn record<F, T>(&self, accepted: Instant, route_status: impl FnOnce(&T) -> (String, u16), fut: F) -> T
    where
        F: std::future::Future<Output = T>,
    {
        let (out, marks) = CURRENT
            .scope(RefCell::new(None), async {
                let out = fut.await;
                (out, CURRENT.with(|c| c.borrow_mut().take()))
            })
            .await;
        let finished_us = self.clock.now_us();
        let (route, status) = route_status(&out);
        let load = |a: &AtomicU64| Some(a.load(Ordering::Relaxed)).filter(|v| *v != 0);
        let span = Span {
            instance: self.instance,
            route,
            status,
            accepted_us: self.clock.at(accepted),
            queued_us: marks.as_ref().and_then(|m| load(&m.queued)),
            started_us: marks.as_ref().and_then(|m| load(&m.started)),
            job_done_us: marks.as_ref().and_then(|m| load(&m.finished)),
            thread: marks.as_ref().map(|m| m.thread.load(Ordering::Relaxed)).filter(|t| *t != 0).map(|t| t - 1),
            finished_us,
        };
        match self.spans.lock() {
            Ok(mut v) if v.len() < self.max => v.push(span),
            _ => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
        out
    }

    /// The spans recorded so far.
    #[cfg(test)]
    pub fn spans(&self) -> Vec<Span> {
        self.spans.lock().map(|v| v.clone()).unwrap_or_default()
    }

    /// Writes every span to `DIR/spans-<instance>-<pid>.jsonl`; returns the path.
    pub fn write(&self) -> std::io::Result<PathBuf> {
        std::fs::create_dir_all(&self.dir)?;
        let path = self.dir.join(format!("spans-{}-{}.jsonl", self.instance, std::process::id()));
        let mut w = std::io::BufWriter::new(std::fs::File::create(&path)?);
        let spans = self.spans.lock().map_err(|_| std::io::Error::other("span list poisoned"))?;
        for s in spans.iter() {
            serde_json::to_writer(&mut w, s)?;
            w.write_all(b"\n")?;
        }
        w.flush()?;
        let dropped = self.dropped.load(Ordering::Relaxed);
        if dropped > 0 {
            tracing::warn!(dropped, max = self.max, "spans beyond debug.max_spans were not kept");
        }
        Ok(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn records_light_and_job_marks() {
        let dir = std::env::temp_dir().join(format!("corepool-trace-{}", std::process::id()));
        let rec = Recorder::new(&dir, 3, 2);
        // A light request: no job marks.
        rec.record(Instant::now(), |_: &()| ("root".to_string(), 200), async {}).await;
        // A request with a job: marks set as the pool would set them.
        rec.record(Instant::now(), |_: &()| ("compute".to_string(), 200), async {
            let (clock, marks) = current_job().expect("recording inside a request");
            marks.queued(&clock);
            marks.started(&clock, 0);
            marks.finished(&clock);
        })
        .await;
        // Beyond max_spans: counted, not kept.
        rec.record(Instant::now(), |_: &()| ("root".to_string(), 404), async {}).await;
        let spans = rec.spans();
        assert_eq!(spans.len(), 2);
        assert_eq!((spans[0].route.as_str(), spans[0].queued_us, spans[0].thread), ("root", None, None));
        let s = &spans[1];
        assert_eq!((s.instance, s.route.as_str(), s.thread), (3, "compute", Some(0)));
        let (q, st, d) = (s.queued_us.unwrap(), s.started_us.unwrap(), s.job_done_us.unwrap());
        assert!(s.accepted_us <= q && q <= st && st <= d && d <= s.finished_us, "{s:?}");
        let path = rec.write().unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 2);
        assert!(text.lines().nth(1).unwrap().contains("\"thread\":0"));
        assert!(!text.lines().next().unwrap().contains("queued_us"));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn no_job_marks_outside_a_recorded_request() {
        let _ = CLOCK.get_or_init(Clock::new);
        assert!(current_job().is_none());
    }
}
