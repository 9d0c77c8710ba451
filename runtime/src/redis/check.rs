//! The connection attempts made before serving: at start (`serve`) and in
//! `config check`.

use super::link::{link_for, Link};

/// At start: one attempt to connect. Refused (password, permission,
/// database) with `required`: the error, naming the setting (exit 78);
/// otherwise a warning, and the instance serves (503 on the routes that need
/// Redis, `/readyz` failing if required) while the link keeps trying.
pub(crate) async fn check_at_start(link: &Link, file: Option<&std::path::Path>) -> Result<(), crate::load::ConfigError> {
    let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
    match link.connect(tx).await {
        Ok(_) => Ok(()),
        Err(e) if e.refused && link.cfg.required => Err(crate::load::error_at(file, &format!("redis.{}", e.key), e.message)),
        Err(e) => {
            tracing::warn!(url = %link.cfg.describe(), error = %e.message, required = link.cfg.required, "Redis not reachable at start: serving; routes that need it answer 503 until it is");
            Ok(())
        }
    }
}

/// `config check`: the same attempt, on a runtime of its own. Refused with
/// `required`: an error naming the setting; otherwise (unreachable, or not
/// required) a warning on standard error.
pub(crate) fn check_now(
    service: &crate::name::ServiceName,
    sections: &crate::section::Sections,
    file: Option<&std::path::Path>,
) -> Result<(), crate::load::ConfigError> {
    let Some(link) = link_for(service, sections) else { return Ok(()) };
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(_) => return Ok(()),
    };
    let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
    match rt.block_on(link.connect(tx)) {
        Ok(_) => {
            eprintln!("redis: connected to {}", link.cfg.describe());
            Ok(())
        }
        // Refused (password, permission, database): wrong whatever Redis does.
        Err(e) if e.refused && link.cfg.required => Err(crate::load::error_at(file, &format!("redis.{}", e.key), e.message)),
        // Unreachable: maybe a wrong address, maybe Redis restarting — the
        // instance starts and retries, and this check runs before every
        // reload (ExecReload=), which an outage must not block.
        Err(e) => {
            let effect = if link.cfg.required { "/readyz fails" } else { "the service starts" };
            eprintln!("warning: redis.{}: {} ({effect} until Redis answers; the routes that need it answer 503)", e.key, e.message);
            Ok(())
        }
    }
}
