//! `NAME top`: a live full-screen view of the instances (like `pm2 monit`):
//! per-instance req/s sparkline, p99 latency, pool busy/queue, open
//! WebSocket/SSE streams, memory, restarts. Refreshes every second; `q` or
//! Esc quits. Without a terminal it prints the `status` table once instead.

use std::collections::{HashMap, VecDeque};
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use ratatui::crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
use ratatui::layout::{Constraint, Layout};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::Line;
use ratatui::widgets::{Block, Borders, Cell, Paragraph, Row as TRow, Sparkline, Table};
use ratatui::Frame;

use corepool_runtime::ServiceName;

use corepool_runtime::cli::report;
use corepool_runtime::client;

use crate::status::{self, Row, StatusError};
use crate::units;

const HISTORY: usize = 120;

/// Latency histogram buckets summed over routes: (upper bound, cumulative count).
fn buckets(metrics: &str) -> Vec<(f64, f64)> {
    let mut by_le: HashMap<String, f64> = HashMap::new();
    for (series, v) in client::parse_metrics(metrics) {
        if let Some(rest) = series.strip_prefix("corepool_http_request_duration_seconds_bucket{") {
            if let Some(le) = rest.split("le=\"").nth(1).and_then(|s| s.split('"').next()) {
                *by_le.entry(le.to_string()).or_default() += v;
            }
        }
    }
    let mut out: Vec<(f64, f64)> =
        by_le.into_iter().map(|(le, v)| (if le == "+Inf" { f64::INFINITY } else { le.parse().unwrap_or(f64::INFINITY) }, v)).collect();
    out.sort_by(|a, b| a.0.total_cmp(&b.0));
    out
}

/// p99 (an upper bound: the bucket's edge) of the requests between two samples.
pub fn p99_between(before: &[(f64, f64)], after: &[(f64, f64)]) -> Option<f64> {
    let delta: Vec<(f64, f64)> = after.iter().map(|(le, v)| (*le, v - before.iter().find(|(l, _)| l == le).map(|(_, b)| *b).unwrap_or(0.0))).collect();
    let total = delta.last()?.1;
    if total <= 0.0 {
        return None;
    }
    delta.iter().find(|(_, c)| *c >= 0.99 * total).map(|(le, _)| *le)
}

#[derive(Default)]
struct Track {
    rates: VecDeque<u64>,
    last_requests: Option<(Instant, u64)>,
    last_buckets: Vec<(f64, f64)>,
    p99: Option<f64>,
    rate: f64,
}

struct App {
    name: ServiceName,
    rows: Vec<Row>,
    tracks: HashMap<u32, Track>,
    error: Option<String>,
}

impl App {
    fn refresh(&mut self) {
        match status::collect(&self.name) {
            Ok(rows) => {
                self.error = None;
                let now = Instant::now();
                for r in &rows {
                    let t = self.tracks.entry(r.instance).or_default();
                    if let Some(req) = r.requests {
                        if let Some((at, prev)) = t.last_requests {
                            let dt = now.duration_since(at).as_secs_f64().max(0.001);
                            t.rate = req.saturating_sub(prev) as f64 / dt;
                        }
                        t.last_requests = Some((now, req));
                    } else {
                        t.rate = 0.0;
                        t.last_requests = None;
                    }
                    t.rates.push_back(t.rate.round() as u64);
                    while t.rates.len() > HISTORY {
                        t.rates.pop_front();
                    }
                    if r.service.starts_with("active/") && !r.unresponsive {
                        if let Ok((200, text)) = client::get(&self.name.socket_addr(r.instance), "/metrics", Duration::from_millis(500)) {
                            let b = buckets(&text);
                            t.p99 = p99_between(&t.last_buckets, &b).or(t.p99.filter(|_| t.rate > 0.0));
                            t.last_buckets = b;
                        }
                    }
                }
                self.rows = rows;
            }
            Err(e) => self.error = Some(report(&e)),
        }
    }

    fn draw(&self, f: &mut Frame) {
        let n = self.rows.len().max(1) as u16;
        let areas = Layout::vertical([Constraint::Length(1), Constraint::Length(n + 3), Constraint::Min(3), Constraint::Length(1)]).split(f.area());
        let total: f64 = self.tracks.values().map(|t| t.rate).sum();
        f.render_widget(
            Paragraph::new(Line::from(format!(" {} top — {} instance(s), {total:.0} req/s total", self.name, self.rows.len())))
                .style(Style::default().add_modifier(Modifier::BOLD)),
            areas[0],
        );
        let header = TRow::new(["INST", "SERVICE", "PID", "CPU", "REQ/S", "P99", "POOL", "QUEUE", "WS/SSE", "MEM", "RESTARTS"])
            .style(Style::default().add_modifier(Modifier::BOLD));
        let rows = self.rows.iter().map(|r| {
            let t = self.tracks.get(&r.instance);
            let state_style = if r.service.starts_with("active/") && !r.unresponsive {
                Style::default().fg(Color::Green)
            } else if r.service.starts_with("failed") || r.unresponsive {
                Style::default().fg(Color::Red)
            } else {
                Style::default().fg(Color::Yellow)
            };
            let opt = |v: Option<u64>| v.map(|v| v.to_string()).unwrap_or_else(|| "-".into());
            TRow::new([
                Cell::from(format!("{}@{}", self.name, r.instance)),
                Cell::from(if r.unresponsive { format!("{} (no answer)", r.service) } else { r.service.clone() }).style(state_style),
                Cell::from(opt(r.pid.map(u64::from))),
                Cell::from(opt(r.cpu)),
                Cell::from(format!("{:.0}", t.map(|t| t.rate).unwrap_or(0.0))),
                Cell::from(
                    t.and_then(|t| t.p99).map(|p| if p.is_finite() { format!("≤{:.1}ms", p * 1000.0) } else { ">24s".into() }).unwrap_or_else(|| "-".into()),
                ),
                Cell::from(match (r.pool_busy, r.pool_threads) {
                    (Some(b), Some(t)) => format!("{b}/{t}"),
                    _ => "-".into(),
                }),
                Cell::from(opt(r.pool_queued)),
                Cell::from(status::streams(r).unwrap_or_else(|| "-".into())),
                Cell::from(r.memory_bytes.map(|b| format!("{:.1}M", b as f64 / 1048576.0)).unwrap_or_else(|| "-".into())),
                Cell::from(r.restarts.to_string()),
            ])
        });
        let widths = [16, 26, 8, 4, 8, 10, 6, 6, 9, 8, 8].map(Constraint::Length);
        f.render_widget(Table::new(rows, widths).header(header).block(Block::default().borders(Borders::ALL).title(" instances ")), areas[1]);

        let spark_area = areas[2];
        let k = self.rows.len().max(1);
        let each = Layout::vertical(vec![Constraint::Ratio(1, k as u32); k]).split(spark_area);
        for (r, area) in self.rows.iter().zip(each.iter()) {
            let data: Vec<u64> = self.tracks.get(&r.instance).map(|t| t.rates.iter().copied().collect()).unwrap_or_default();
            let width = area.width.saturating_sub(2) as usize;
            let shown = &data[data.len().saturating_sub(width)..];
            f.render_widget(
                Sparkline::default()
                    .block(Block::default().borders(Borders::ALL).title(format!(" {}@{} req/s ", self.name, r.instance)))
                    .data(shown)
                    .style(Style::default().fg(Color::Cyan)),
                *area,
            );
        }
        let footer = self.error.clone().unwrap_or_else(|| " q: quit   refreshes every second".into());
        f.render_widget(Paragraph::new(footer), areas[3]);
    }
}

/// Runs the live view until `q`, Esc or Ctrl-C.
pub fn run(n: &ServiceName, out: &mut dyn Write) -> Result<(), StatusError> {
    if !std::io::stdout().is_terminal() {
        return status::status(n, false, out);
    }
    units::require_systemd()?;
    let mut app = App { name: n.clone(), rows: Vec::new(), tracks: HashMap::new(), error: None };
    app.refresh();
    let mut terminal = ratatui::try_init()?;
    let result = (|| -> std::io::Result<()> {
        let tick = Duration::from_secs(1);
        let mut next = Instant::now() + tick;
        loop {
            terminal.draw(|f| app.draw(f))?;
            while Instant::now() < next {
                if event::poll(next.saturating_duration_since(Instant::now()))? {
                    if let Event::Key(k) = event::read()? {
                        let ctrl_c = k.code == KeyCode::Char('c') && k.modifiers.contains(KeyModifiers::CONTROL);
                        if k.kind == KeyEventKind::Press && (matches!(k.code, KeyCode::Char('q') | KeyCode::Esc) || ctrl_c) {
                            return Ok(());
                        }
                    }
                }
            }
            next = Instant::now() + tick;
            app.refresh();
        }
    })();
    ratatui::restore();
    result.map_err(StatusError::Output)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn p99_from_bucket_deltas() {
        let m1 = "corepool_http_request_duration_seconds_bucket{route=\"/\",le=\"0.001\"} 90\n\
                  corepool_http_request_duration_seconds_bucket{route=\"/\",le=\"0.01\"} 99\n\
                  corepool_http_request_duration_seconds_bucket{route=\"/\",le=\"+Inf\"} 100\n";
        let b1 = buckets(m1);
        assert_eq!(b1, vec![(0.001, 90.0), (0.01, 99.0), (f64::INFINITY, 100.0)]);
        assert_eq!(p99_between(&[], &b1), Some(0.01));
        // Next second: 1000 more requests, all fast.
        let b2 = vec![(0.001, 1090.0), (0.01, 1099.0), (f64::INFINITY, 1100.0)];
        assert_eq!(p99_between(&b1, &b2), Some(0.001));
        assert_eq!(p99_between(&b2, &b2), None);
    }
}
