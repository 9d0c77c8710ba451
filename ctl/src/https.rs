//! `NAME https DOMAIN...`: a certificate from certbot (webroot mode, so
//! certbot never edits nginx's files), then the site switched to TLS on those
//! names with a redirect from HTTP; renewals reload nginx through the
//! package's certbot deploy hook.

use std::io::Write;
use std::path::Path;

use corepool_runtime::ServiceName;

use crate::admin::{require, AdminError};
use crate::nginx;
use crate::units::UnitError;

/// A DNS name: dot-separated labels of letters, digits and `-` (not first),
/// 1..=63 bytes each, at most 253 in all. Checked before a name reaches
/// certbot or the resolver.
pub fn is_dns_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|l| !l.is_empty() && l.len() <= 63 && !l.starts_with('-') && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
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
pub fn https(n: &ServiceName, o: &HttpsOptions, out: &mut dyn Write) -> Result<(), AdminError> {
    require(n, "https")?;
    for d in &o.domains {
        if !is_dns_name(d) {
            return Err(AdminError::Refused(format!("`{d}` is not a valid domain name")));
        }
    }
    if !Path::new("/usr/bin/certbot").exists() {
        return Err(AdminError::Refused("certbot is not installed (apt install certbot)".into()));
    }
    if std::fs::symlink_metadata(nginx::site_enabled(n)).is_err() {
        return Err(AdminError::Refused(format!("the {n} nginx site is not enabled (run: {n} nginx enable)")));
    }
    let webroot = nginx::acme_webroot(n);
    std::fs::create_dir_all(&webroot).map_err(|error| UnitError::Io { path: webroot.clone(), error })?;
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
        return Err(AdminError::Refused(format!("certbot failed ({status}); nginx configuration unchanged")));
    }
    nginx::apply(&files)?;
    writeln!(out, "HTTPS enabled: https://{}/ (HTTP redirects there; renewals reload nginx via the certbot deploy hook)", o.domains[0])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_names() {
        for ok in ["app.test", "a-1.example.com", "app1", "x".repeat(63).as_str()] {
            assert!(is_dns_name(ok), "{ok}");
        }
        for bad in ["", "-x", "a..b", "a b", "a_b.test", "ä.test", "x".repeat(64).as_str(), "a;b"] {
            assert!(!is_dns_name(bad), "{bad}");
        }
    }
}
