//! Logging with `tracing`: journald-friendly lines under systemd (`<N>` syslog
//! priority prefix, no timestamps, since the journal adds its own), readable
//! lines by hand, or JSON. Writes go through a lossy non-blocking writer so a
//! slow log consumer can never stall the event loop.

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::{self, FormatEvent, FormatFields, Writer};
use tracing_subscriber::fmt::FmtContext;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{reload, EnvFilter, Layer};

use crate::config::{LogConfig, LogFormat};

type SetLevel = Box<dyn Fn(&str) -> Result<(), String> + Send + Sync>;

/// Keeps the log writer alive and lets SIGHUP change the level.
pub struct LogHandle {
    _guard: Option<tracing_appender::non_blocking::WorkerGuard>,
    set_level: Option<SetLevel>,
    /// Where access lines go (the same writer, in the same format).
    pub access: crate::access::AccessLog,
}

impl LogHandle {
    /// Applies a new filter (e.g. `debug`); a no-op when logging was set up by the embedder.
    pub fn set_level(&self, level: &str) -> Result<(), String> {
        match &self.set_level {
            Some(f) => f(level),
            None => Ok(()),
        }
    }
}

/// The format to use, resolving `auto` by the presence of `JOURNAL_STREAM`.
pub fn resolve(format: LogFormat) -> LogFormat {
    match format {
        LogFormat::Auto if std::env::var_os("JOURNAL_STREAM").is_some() => LogFormat::Journal,
        LogFormat::Auto => LogFormat::Human,
        f => f,
    }
}

/// sd-daemon(3) priority prefix formatter.
struct JournalFormat(format::Format<format::Full, ()>);

impl<S, N> FormatEvent<S, N> for JournalFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(&self, ctx: &FmtContext<'_, S, N>, mut writer: Writer<'_>, event: &Event<'_>) -> std::fmt::Result {
        let prio = match *event.metadata().level() {
            Level::ERROR => 3,
            Level::WARN => 4,
            Level::INFO => 6,
            Level::DEBUG | Level::TRACE => 7,
        };
        write!(writer, "<{prio}>")?;
        self.0.format_event(ctx, writer, event)
    }
}

/// Lines the non-blocking writer holds before it drops (`lossy`).
const BUFFERED_LINES: usize = 4096;

/// Installs the global subscriber. If one is already installed (an embedder's),
/// leaves it alone.
pub fn init(cfg: &LogConfig) -> LogHandle {
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(true)
        // Lines waiting for the writer thread (each slot 32 bytes, all
        // written when the channel is made, so resident): 4096 hold 0.1 s
        // of access lines at 30,000 requests/s; past that, lines are dropped.
        .buffered_lines_limit(BUFFERED_LINES)
        .thread_name("corepool-log")
        .finish(std::io::stdout());
    let format = resolve(cfg.format);
    let access = crate::access::AccessLog::direct(writer.clone(), format);
    let fmt_layer = match format {
        LogFormat::Journal => tracing_subscriber::fmt::layer()
            .event_format(JournalFormat(format::format().without_time().with_level(false).with_target(false).with_ansi(false)))
            .with_writer(writer)
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer().json().with_current_span(false).with_writer(writer).boxed(),
        _ => tracing_subscriber::fmt::layer().with_target(false).with_ansi(false).with_writer(writer).boxed(),
    };
    let filter = EnvFilter::try_new(&cfg.level).unwrap_or_else(|_| EnvFilter::new("info"));
    let (filter, handle) = reload::Layer::new(filter);
    match tracing_subscriber::registry().with(fmt_layer).with(filter).try_init() {
        Ok(()) => LogHandle {
            _guard: Some(guard),
            set_level: Some(Box::new(move |level: &str| {
                let f = EnvFilter::try_new(level).map_err(|e| e.to_string())?;
                handle.reload(f).map_err(|e| e.to_string())
            })),
            access,
        },
        Err(_) => LogHandle { _guard: None, set_level: None, access: crate::access::AccessLog::via_tracing() },
    }
}
