//! How nginx spreads requests over the upstream's servers: least
//! connections (the default), or consistent hashing on the session cookie
//! or on the client's address, for services that keep state per instance.
//! `NAME nginx balance METHOD` keeps the choice in `/etc/NAME/upstream.toml`;
//! every command that rewrites the upstream (`enable`, `scale`, `nginx
//! sync`, `front add/remove/drain/undrain`) reads it there, so none of them
//! loses it (see `nginx::render_upstream`).
//!
//! nginx open source has no sticky cookie of its own (that is `sticky` in
//! NGINX Plus): `cookie` hashes the value of the service's session cookie
//! (`ServiceName::session_cookie`, `NAME_session`), and a request without
//! it yet is sent to a random server (the hash of its `$request_id`), so
//! first visits are still spread.

use std::path::{Path, PathBuf};

use corepool_runtime::ServiceName;
use serde::{Deserialize, Serialize};

/// The balancing method of the generated upstream.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Balance {
    /// Each request to the server with the fewest active connections (`least_conn`)
    #[default]
    LeastConn,
    /// By the session cookie: the same cookie, the same instance (`hash ... consistent`)
    Cookie,
    /// By the client's address: the same address, the same instance (`hash $remote_addr consistent`)
    Client,
}

impl Balance {
    /// The name operators type (`least-conn`, `cookie`, `client`).
    pub fn as_str(self) -> &'static str {
        match self {
            Balance::LeastConn => "least-conn",
            Balance::Cookie => "cookie",
            Balance::Client => "client",
        }
    }

    /// The nginx variable that holds the hash key of `cookie`: `$IDENT_balance_key`.
    pub fn key_variable(n: &ServiceName) -> String {
        format!("${}_balance_key", n.ident())
    }

    /// What goes before the upstream block (http level): the `map` that
    /// picks the hash key of `cookie`; nothing for the other methods.
    pub fn preamble(self, n: &ServiceName) -> String {
        match self {
            Balance::Cookie => {
                let cookie = n.session_cookie();
                format!(
                    "# `{n} nginx balance cookie`: the key is the session cookie's value; a\n\
                     # request without the cookie (a first visit) gets its random request id\n\
                     # instead, so first visits are spread over every server.\n\
                     map $cookie_{cookie} {key} {{\n    \"\"      $request_id;\n    default $cookie_{cookie};\n}}\n\n",
                    key = Balance::key_variable(n),
                )
            }
            Balance::LeastConn | Balance::Client => String::new(),
        }
    }

    /// The method's line(s) at the top of the upstream block (before
    /// `keepalive`, as nginx requires), indented.
    pub fn directive(self, n: &ServiceName) -> String {
        match self {
            Balance::LeastConn => "    least_conn;\n".into(),
            // consistent (ketama): adding or removing a server moves only the
            // keys of that server's share, not nearly all of them.
            Balance::Cookie => format!("    # Sticky by session cookie ({}): a consistent-hash ring of the servers.\n    hash {} consistent;\n", n.session_cookie(), Balance::key_variable(n)),
            Balance::Client => "    # Sticky by client address ($remote_addr: nginx's realip module sets it, where\n    # configured, from a proxy in front): a consistent-hash ring of the servers.\n    hash $remote_addr consistent;\n".into(),
        }
    }

    /// One line for `status` and `nginx balance`.
    pub fn describe(self, n: &ServiceName) -> String {
        match self {
            Balance::LeastConn => "least-conn: each request to the server with the fewest active connections (least_conn)".into(),
            Balance::Cookie => format!(
                "cookie: by the session cookie {} (hash {} consistent); a request without it goes to a random server",
                n.session_cookie(),
                Balance::key_variable(n)
            ),
            Balance::Client => "client: by the client's address (hash $remote_addr consistent)".into(),
        }
    }
}

impl std::fmt::Display for Balance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `/etc/NAME/upstream.toml`.
pub fn state_path(n: &ServiceName) -> PathBuf {
    n.etc_dir().join("upstream.toml")
}

/// What `upstream.toml` holds.
#[derive(Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct State {
    #[serde(default)]
    balance: Balance,
}

/// Why `upstream.toml` could not be read.
#[derive(Debug, thiserror::Error)]
pub enum BalanceError {
    /// The file exists but cannot be read.
    #[error("{path}")]
    Read {
        /// `upstream.toml`.
        path: PathBuf,
        /// What reading it said.
        #[source]
        error: std::io::Error,
    },
    /// The file is not what `nginx balance` writes.
    #[error("{path}: {} (`balance` is one of least-conn, cookie, client)", .error.to_string().trim())]
    Parse {
        /// `upstream.toml`.
        path: PathBuf,
        /// Where and why (shown in the message).
        error: toml::de::Error,
    },
}

/// The balancing method in `upstream.toml`; no file means `least-conn`.
pub fn load(n: &ServiceName) -> Result<Balance, BalanceError> {
    load_from(&state_path(n))
}

/// The balancing method in the `upstream.toml` at `path`.
pub fn load_from(path: &Path) -> Result<Balance, BalanceError> {
    match std::fs::read_to_string(path) {
        Ok(text) => toml::from_str::<State>(&text).map(|s| s.balance).map_err(|error| BalanceError::Parse { path: path.into(), error }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Balance::default()),
        Err(error) => Err(BalanceError::Read { path: path.into(), error }),
    }
}

/// `upstream.toml` as `nginx balance` writes it.
pub fn render(n: &ServiceName, balance: Balance) -> String {
    let body = toml::to_string(&State { balance }).unwrap_or_default();
    format!(
        "# How nginx balances requests over {n}'s servers, kept by `{n} nginx balance`.\n\
         # Change it with that command (it checks nginx and reloads it); enable,\n\
         # scale, nginx sync and front keep it when they rewrite the upstream.\n\n{body}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name() -> ServiceName {
        ServiceName::new("my-app").unwrap()
    }

    #[test]
    fn the_state_round_trips_and_defaults_to_least_conn() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("upstream.toml");
        assert_eq!(load_from(&p).unwrap(), Balance::LeastConn, "no file");
        for b in [Balance::LeastConn, Balance::Cookie, Balance::Client] {
            std::fs::write(&p, render(&name(), b)).unwrap();
            assert_eq!(load_from(&p).unwrap(), b);
        }
        assert!(render(&name(), Balance::Client).ends_with("\nbalance = \"client\"\n"), "{}", render(&name(), Balance::Client));
        std::fs::write(&p, "# nothing set\n").unwrap();
        assert_eq!(load_from(&p).unwrap(), Balance::LeastConn);
    }

    #[test]
    fn a_bad_state_names_the_file_and_the_choices() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("upstream.toml");
        std::fs::write(&p, "balance = \"sticky\"\n").unwrap();
        let e = load_from(&p).unwrap_err().to_string();
        assert!(e.starts_with(&format!("{}: ", p.display())) && e.contains("sticky") && e.ends_with("(`balance` is one of least-conn, cookie, client)"), "{e}");
        std::fs::write(&p, "balanse = \"cookie\"\n").unwrap();
        assert!(load_from(&p).unwrap_err().to_string().contains("balanse"));
        let e = load_from(dir.path()).unwrap_err();
        assert!(matches!(e, BalanceError::Read { .. }) && std::error::Error::source(&e).is_some(), "{e:?}");
    }

    #[test]
    fn names_are_what_the_command_line_takes() {
        use clap::ValueEnum;
        for b in Balance::value_variants() {
            assert_eq!(Balance::from_str(b.as_str(), false), Ok(*b));
            assert_eq!(b.to_possible_value().unwrap().get_name(), b.as_str());
        }
    }

    #[test]
    fn cookie_hashes_the_session_cookie_and_spreads_requests_without_it() {
        let n = name();
        let pre = Balance::Cookie.preamble(&n);
        assert!(
            pre.contains("map $cookie_my_app_session $my_app_balance_key {\n    \"\"      $request_id;\n    default $cookie_my_app_session;\n}\n"),
            "{pre}"
        );
        assert!(Balance::Cookie.directive(&n).ends_with("    hash $my_app_balance_key consistent;\n"));
        assert!(Balance::Client.directive(&n).ends_with("    hash $remote_addr consistent;\n"));
        assert_eq!(Balance::LeastConn.directive(&n), "    least_conn;\n");
        assert!(Balance::LeastConn.preamble(&n).is_empty() && Balance::Client.preamble(&n).is_empty());
        assert!(Balance::Cookie.describe(&n).contains("my_app_session"));
    }
}
