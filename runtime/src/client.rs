//! A minimal blocking HTTP/1.1 client for the health check and the operator
//! commands: asks an instance (over its unix socket, or TCP) for `/healthz`,
//! `/readyz` or `/metrics`, with hard timeouts so a wedged instance cannot
//! hang the command.

use std::io::{Read, Write};
use std::time::Duration;

/// Why a request to an instance failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Connecting, writing or reading failed (the cause is the source).
    #[error("{addr}")]
    Io {
        /// Where the request went (`unix:/run/...` or `HOST:PORT`).
        addr: String,
        /// What failed.
        #[source]
        error: std::io::Error,
    },
    /// The answer is not an HTTP response.
    #[error("{addr}: malformed response")]
    Malformed {
        /// Where the request went.
        addr: String,
    },
}

/// Status and body of one `GET`.
pub fn get(addr: &str, path: &str, timeout: Duration) -> Result<(u16, String), ClientError> {
    let io = |error| ClientError::Io { addr: addr.to_string(), error };
    let request = format!("GET {path} HTTP/1.1\r\nHost: corepool\r\nUser-Agent: corepool-cli\r\nConnection: close\r\n\r\n");
    let raw = if let Some(path) = addr.strip_prefix("unix:") {
        let s = std::os::unix::net::UnixStream::connect(path).map_err(io)?;
        s.set_read_timeout(Some(timeout)).map_err(io)?;
        s.set_write_timeout(Some(timeout)).map_err(io)?;
        exchange(s, request.as_bytes()).map_err(io)?
    } else {
        let sa = std::net::ToSocketAddrs::to_socket_addrs(addr).map_err(io)?.next().ok_or_else(|| io(std::io::Error::other("no address")))?;
        let s = std::net::TcpStream::connect_timeout(&sa, timeout).map_err(io)?;
        s.set_read_timeout(Some(timeout)).map_err(io)?;
        s.set_write_timeout(Some(timeout)).map_err(io)?;
        exchange(s, request.as_bytes()).map_err(io)?
    };
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").ok_or_else(|| ClientError::Malformed { addr: addr.into() })?;
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).ok_or_else(|| ClientError::Malformed { addr: addr.into() })?;
    Ok((status, body.to_string()))
}

/// Sends the request and reads until the server closes (`Connection: close`).
fn exchange(mut s: impl Read + Write, request: &[u8]) -> std::io::Result<Vec<u8>> {
    s.write_all(request)?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    Ok(raw)
}

/// Parses Prometheus text into (series, value) pairs, series with labels as written.
pub fn parse_metrics(text: &str) -> Vec<(&str, f64)> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            Some((series, value.parse().ok()?))
        })
        .collect()
}

/// Sum of every series of metric `name` (any labels) matching `label_filter`.
pub fn metric_sum(parsed: &[(&str, f64)], name: &str, label_filter: &str) -> f64 {
    parsed
        .iter()
        .filter(|(s, _)| s.starts_with(name) && s[name.len()..].starts_with(['{', ' ']) || *s == name)
        .filter(|(s, _)| s.contains(label_filter))
        .map(|(_, v)| v)
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_metrics_by_name_and_label() {
        let text = "# HELP x\nreq_total{route=\"/\",status=\"200\"} 3\nreq_total{route=\"/a\",status=\"500\"} 2\nreq_totalx 9\nbusy 1\n";
        let p = parse_metrics(text);
        assert_eq!(metric_sum(&p, "req_total", ""), 5.0);
        assert_eq!(metric_sum(&p, "req_total", "status=\"500\""), 2.0);
        assert_eq!(metric_sum(&p, "busy", ""), 1.0);
    }
}
