//! `NAME https DOMAIN...`: a certificate from certbot (webroot mode, so
//! certbot never edits nginx's files), then the site switched to TLS on those
//! names with a redirect from HTTP; renewals reload nginx through the
//! package's certbot deploy hook.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;

use corepool_runtime::ServiceName;

use crate::dns::is_dns_name;
use crate::nginx::{self, NginxError};
use crate::units::{require_admin, UnitError};

/// Why `NAME https` did not switch the site to HTTPS (nginx's files are then
/// as they were).
#[derive(Debug, thiserror::Error)]
pub enum HttpsError {
    #[error(transparent)]
    Unit(#[from] UnitError),
    #[error(transparent)]
    Nginx(#[from] NginxError),
    #[error("`{0}` is not a valid domain name")]
    Domain(String),
    #[error("certbot is not installed (apt install certbot)")]
    NoCertbot,
    #[error("the {0} nginx site is not enabled (run: {0} nginx enable)")]
    SiteDisabled(String),
    #[error("certbot failed ({0}); nginx configuration unchanged")]
    Certbot(ExitStatus),
    /// certbot's webroot could not be created.
    #[error("{path}")]
    Webroot {
        path: PathBuf,
        #[source]
        error: std::io::Error,
    },
    #[error("writing output")]
    Output(#[from] std::io::Error),
}

/// Options of `corepool https`.
#[derive(Debug, Clone, Default)]
pub struct HttpsOptions {
    pub domains: Vec<String>,
    pub email: Option<String>,
    pub staging: bool,
    pub server: Option<String>,
    pub hsts: bool,
}

/// Obtains a certificate with `certbot certonly --webroot` (certbot never edits
/// nginx files), then switches the site to TLS with a redirect from HTTP.
pub fn https(n: &ServiceName, o: &HttpsOptions, out: &mut dyn Write) -> Result<(), HttpsError> {
    require_admin(n, "https")?;
    if let Some(bad) = o.domains.iter().find(|d| !is_dns_name(d)) {
        return Err(HttpsError::Domain(bad.clone()));
    }
    if !Path::new("/usr/bin/certbot").exists() {
        return Err(HttpsError::NoCertbot);
    }
    if std::fs::symlink_metadata(nginx::site_enabled(n)).is_err() {
        return Err(HttpsError::SiteDisabled(n.to_string()));
    }
    let webroot = nginx::acme_webroot(n);
    std::fs::create_dir_all(&webroot).map_err(|error| HttpsError::Webroot { path: webroot.clone(), error })?;
    let mut args: Vec<String> = ["certonly", "--webroot", "-w", &webroot.display().to_string(), "--non-interactive", "--agree-tos", "--keep-until-expiring"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    args.extend(["--cert-name".into(), o.domains[0].clone()]);
    for d in &o.domains {
        args.extend(["-d".into(), d.clone()]);
    }
    match &o.email {
        Some(e) => args.extend(["-m".into(), e.clone()]),
        None => args.push("--register-unsafely-without-email".into()),
    }
    if o.staging {
        args.push("--staging".into());
    }
    if let Some(s) = &o.server {
        args.extend(["--server".into(), s.clone()]);
    }
    // The CA asks for its challenge on these names: this site must answer
    // them (with several services on the host, the default server is another's).
    let files = nginx::https_files(n, &o.domains, o.hsts);
    let listen = files.iter().find(|(p, _)| p.ends_with("listen.conf")).cloned().into_iter().collect::<Vec<_>>();
    let before: Vec<_> = listen.iter().map(|(p, _)| (p.clone(), std::fs::read_to_string(p).unwrap_or_default())).collect();
    nginx::apply(&listen)?;
    writeln!(out, "certbot {}", args.join(" "))?;
    let status = std::process::Command::new("certbot").args(&args).status().map_err(|error| UnitError::Spawn { cmd: "certbot".into(), error })?;
    if !status.success() {
        nginx::apply(&before)?;
        return Err(HttpsError::Certbot(status));
    }
    nginx::apply(&files)?;
    writeln!(out, "HTTPS enabled: https://{}/ (HTTP redirects there; renewals reload nginx via the certbot deploy hook)", o.domains[0])?;
    Ok(())
}
