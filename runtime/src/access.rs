//! Access lines: one per request (`log.access`), in the same format as the
//! instance's other log lines (journal, human or JSON), written straight to
//! the log's non-blocking writer.
//!
//! They are the one log line per request, so they get a writer of their own:
//! through `tracing`'s formatter a line cost about as much as the rest of a
//! light request (field formatting, escaping, the timestamp). Every part of
//! an access line is already plain printable ASCII (hyper admits nothing
//! else in a method or a URI, and request ids are checked), so it is written
//! as is; only JSON needs its two escapes. The `tracing` filter (`log.level`)
//! still decides whether access lines are written (target `corepool::access`).

use std::cell::RefCell;
use std::io::Write;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{Method, Uri, Version};

use crate::config::LogFormat;

/// Where access lines go.
#[derive(Clone)]
pub struct AccessLog {
    /// The log's writer and its format; None: through `tracing` (when
    /// logging was set up by someone else, e.g. a test or an embedder).
    direct: Option<(tracing_appender::non_blocking::NonBlocking, LogFormat)>,
}

impl std::fmt::Debug for AccessLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessLog").field("direct", &self.direct.as_ref().map(|(_, f)| f)).finish()
    }
}

thread_local! {
    static LINE: RefCell<Vec<u8>> = RefCell::new(Vec::with_capacity(256));
}

/// One request, as its access line tells it.
#[derive(Debug)]
pub struct Entry<'a> {
    pub method: &'a Method,
    pub uri: &'a Uri,
    pub version: Version,
    pub status: u16,
    pub elapsed: Duration,
    pub id: &'a [u8],
}

impl AccessLog {
    /// Lines through `tracing`.
    pub fn via_tracing() -> AccessLog {
        AccessLog { direct: None }
    }

    /// Lines straight to `writer`, in `format` (resolved: not `auto`).
    pub fn direct(writer: tracing_appender::non_blocking::NonBlocking, format: LogFormat) -> AccessLog {
        AccessLog { direct: Some((writer, format)) }
    }

    /// Writes the line of one request, unless the log filter leaves access lines out.
    pub fn write(&self, e: &Entry<'_>) {
        if !tracing::enabled!(target: "corepool::access", tracing::Level::INFO) {
            return;
        }
        let Some((writer, format)) = &self.direct else {
            tracing::info!(target: "corepool::access", "{}", String::from_utf8_lossy(&message(e)));
            return;
        };
        LINE.with(|buf| {
            let mut buf = buf.borrow_mut();
            buf.clear();
            format_line(&mut buf, *format, e, SystemTime::now());
            let mut w = writer.clone();
            let _ = w.write_all(&buf);
        });
    }
}

fn version(v: Version) -> &'static [u8] {
    match v {
        Version::HTTP_09 => b"HTTP/0.9",
        Version::HTTP_10 => b"HTTP/1.0",
        Version::HTTP_11 => b"HTTP/1.1",
        Version::HTTP_2 => b"HTTP/2.0",
        Version::HTTP_3 => b"HTTP/3.0",
        _ => b"HTTP/?",
    }
}

/// `GET /x HTTP/1.1 200 0.123ms id=ID`.
fn put_message(buf: &mut Vec<u8>, e: &Entry<'_>) {
    let mut n = itoa::Buffer::new();
    buf.extend_from_slice(e.method.as_str().as_bytes());
    buf.push(b' ');
    match e.uri.path_and_query() {
        Some(pq) => buf.extend_from_slice(pq.as_str().as_bytes()),
        None => buf.extend_from_slice(e.uri.path().as_bytes()),
    }
    buf.push(b' ');
    buf.extend_from_slice(version(e.version));
    buf.push(b' ');
    buf.extend_from_slice(n.format(e.status).as_bytes());
    buf.push(b' ');
    let us = e.elapsed.as_micros();
    buf.extend_from_slice(n.format(us / 1000).as_bytes());
    buf.push(b'.');
    let frac = (us % 1000) as u16;
    buf.extend_from_slice(&[b'0' + (frac / 100) as u8, b'0' + (frac / 10 % 10) as u8, b'0' + (frac % 10) as u8]);
    buf.extend_from_slice(b"ms id=");
    buf.extend_from_slice(e.id);
}

fn message(e: &Entry<'_>) -> Vec<u8> {
    let mut v = Vec::with_capacity(128);
    put_message(&mut v, e);
    v
}

/// The whole line, as `tracing`'s formatter for `format` would write it.
fn format_line(buf: &mut Vec<u8>, format: LogFormat, e: &Entry<'_>, now: SystemTime) {
    match format {
        LogFormat::Journal => {
            buf.extend_from_slice(b"<6>");
            put_message(buf, e);
        }
        LogFormat::Json => {
            buf.extend_from_slice(b"{\"timestamp\":\"");
            put_rfc3339(buf, now);
            buf.extend_from_slice(b"\",\"level\":\"INFO\",\"fields\":{\"message\":\"");
            let start = buf.len();
            put_message(buf, e);
            // JSON's escapes for the only two that printable ASCII needs.
            if buf[start..].iter().any(|&b| b == b'"' || b == b'\\') {
                let msg: Vec<u8> = buf.drain(start..).collect();
                for b in msg {
                    if b == b'"' || b == b'\\' {
                        buf.push(b'\\');
                    }
                    buf.push(b);
                }
            }
            buf.extend_from_slice(b"\"},\"target\":\"corepool::access\"}");
        }
        LogFormat::Human | LogFormat::Auto => {
            put_rfc3339(buf, now);
            buf.extend_from_slice(b"  INFO ");
            put_message(buf, e);
        }
    }
    buf.push(b'\n');
}

/// `2026-11-26T02:43:26.032303Z`: UTC, microseconds (tracing's default).
fn put_rfc3339(buf: &mut Vec<u8>, t: SystemTime) {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let two = |v: u64| [b'0' + (v / 10) as u8, b'0' + (v % 10) as u8];
    let mut n = itoa::Buffer::new();
    buf.extend_from_slice(n.format(year).as_bytes());
    buf.push(b'-');
    buf.extend_from_slice(&two(month as u64));
    buf.push(b'-');
    buf.extend_from_slice(&two(day as u64));
    buf.push(b'T');
    buf.extend_from_slice(&two(rem / 3600));
    buf.push(b':');
    buf.extend_from_slice(&two(rem / 60 % 60));
    buf.push(b':');
    buf.extend_from_slice(&two(rem % 60));
    buf.push(b'.');
    let micros = d.subsec_micros();
    let s = n.format(micros);
    buf.extend(std::iter::repeat_n(b'0', 6 - s.len()));
    buf.extend_from_slice(s.as_bytes());
    buf.push(b'Z');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry<'a>(method: &'a Method, uri: &'a Uri, id: &'a [u8]) -> Entry<'a> {
        Entry { method, uri, version: Version::HTTP_11, status: 200, elapsed: Duration::from_micros(1234), id }
    }

    #[test]
    fn lines_in_each_format() {
        let (m, u) = (Method::GET, "/compute?n=1".parse::<Uri>().unwrap());
        let e = entry(&m, &u, b"0-7-1");
        let t = UNIX_EPOCH + Duration::new(1_795_660_606, 32_303_000); // 2026-11-26T02:36:46.032303Z
        let line = |f| {
            let mut b = Vec::new();
            format_line(&mut b, f, &e, t);
            String::from_utf8(b).unwrap()
        };
        assert_eq!(line(LogFormat::Journal), "<6>GET /compute?n=1 HTTP/1.1 200 1.234ms id=0-7-1\n");
        assert_eq!(line(LogFormat::Human), "2026-11-26T02:36:46.032303Z  INFO GET /compute?n=1 HTTP/1.1 200 1.234ms id=0-7-1\n");
        let json = line(LogFormat::Json);
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["fields"]["message"], "GET /compute?n=1 HTTP/1.1 200 1.234ms id=0-7-1");
        assert_eq!((v["level"].as_str(), v["target"].as_str()), (Some("INFO"), Some("corepool::access")));
        assert_eq!(v["timestamp"], "2026-11-26T02:36:46.032303Z");
        // A quote in the id (a caller's X-Request-Id) stays valid JSON.
        let e = entry(&m, &u, b"a\"b\\c");
        let mut b = Vec::new();
        format_line(&mut b, LogFormat::Json, &e, t);
        let v: serde_json::Value = serde_json::from_slice(&b).unwrap();
        assert!(v["fields"]["message"].as_str().unwrap().ends_with("id=a\"b\\c"));
    }

    #[test]
    fn timestamps_match_the_calendar() {
        for (secs, want) in [
            (0u64, "1970-01-01T00:00:00.000000Z"),
            (951_782_400, "2000-02-29T00:00:00.000000Z"),
            (1_709_164_799, "2024-02-28T23:59:59.000000Z"),
            (4_102_444_800, "2100-01-01T00:00:00.000000Z"),
        ] {
            let mut b = Vec::new();
            put_rfc3339(&mut b, UNIX_EPOCH + Duration::from_secs(secs));
            assert_eq!(String::from_utf8(b).unwrap(), want);
        }
    }
}
