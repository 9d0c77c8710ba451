//! systemd notification (`sd_notify`): READY, STATUS, WATCHDOG, RELOADING,
//! STOPPING. Without `NOTIFY_SOCKET` every call is a no-op.

use std::time::Duration;

use sd_notify::NotifyState;

/// Talks to the service manager, if there is one.
#[derive(Debug, Clone)]
pub struct Notifier {
    enabled: bool,
    watchdog: Option<Duration>,
}

impl Notifier {
    /// Reads `NOTIFY_SOCKET` and `WATCHDOG_USEC`/`WATCHDOG_PID` from the environment.
    pub fn from_env() -> Notifier {
        Notifier { enabled: std::env::var_os("NOTIFY_SOCKET").is_some(), watchdog: sd_notify::watchdog_enabled() }
    }

    /// One that sends nothing (an instance served in-process by a test).
    pub fn disabled() -> Notifier {
        Notifier { enabled: false, watchdog: None }
    }

    /// True when a service manager listens.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// The watchdog period systemd expects pings within, if it is on.
    pub fn watchdog(&self) -> Option<Duration> {
        self.watchdog
    }

    fn send(&self, states: &[NotifyState]) {
        if self.enabled {
            if let Err(e) = sd_notify::notify(states) {
                tracing::debug!(error = %e, "sd_notify failed");
            }
        }
    }

    /// `READY=1` with a status line.
    pub fn ready(&self, status: &str) {
        self.send(&[NotifyState::Ready, NotifyState::Status(status)]);
    }

    /// A `STATUS=` line.
    pub fn status(&self, status: &str) {
        self.send(&[NotifyState::Status(status)]);
    }

    /// `WATCHDOG=1`.
    pub fn watchdog_ping(&self) {
        self.send(&[NotifyState::Watchdog]);
    }

    /// Brackets a configuration reload (`RELOADING=1` ... `READY=1`).
    pub fn reloading(&self) {
        match NotifyState::monotonic_usec_now() {
            Ok(now) => self.send(&[NotifyState::Reloading, now]),
            Err(_) => self.send(&[NotifyState::Reloading]),
        }
    }

    /// `STOPPING=1` with a status line.
    pub fn stopping(&self, status: &str) {
        self.send(&[NotifyState::Stopping, NotifyState::Status(status)]);
    }
}
