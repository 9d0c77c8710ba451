//! `corepool new PATH`: a new service crate, ready to run, test and package:
//! `Cargo.toml` depending on corepool, `src/main.rs` with a light route, a
//! heavy route on the pool, a configuration section of its own and a test,
//! and a README with its two commands (run, test) and how to deploy it.
//!
//! The crate's directory name is the service's name (checked first: it
//! becomes units, paths, a user and an nginx site).

use std::io::Write;
use std::path::{Path, PathBuf};

use corepool_runtime::ServiceName;

const CARGO_TOML: &str = include_str!("../templates/new/Cargo.toml.in");
const MAIN_RS: &str = include_str!("../templates/new/main.rs");
const README: &str = include_str!("../templates/new/README.md.in");
const GITIGNORE: &str = include_str!("../templates/new/gitignore");

/// Why no crate was created.
#[derive(Debug, thiserror::Error)]
pub enum NewError {
    #[error(transparent)]
    Name(#[from] corepool_runtime::name::NameError),
    #[error("{0} exists already; nothing was written")]
    Exists(PathBuf),
    #[error("{path}")]
    Io {
        path: PathBuf,
        #[source]
        error: std::io::Error,
    },
    #[error("`{0}` has no directory name to name the service after")]
    NoName(PathBuf),
    #[error("--corepool {0}: no corepool crate there (expected {0}/corepool/Cargo.toml, a corepool checkout)")]
    NotACheckout(PathBuf),
}

/// Where the new crate gets corepool from.
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    /// A corepool checkout (its `corepool/` crate, by path).
    Checkout(PathBuf),
    /// The crate registry, this version.
    Registry(&'static str),
}

impl Source {
    /// The checkout this binary was built from, if it is still there; else the registry.
    pub fn detect() -> Source {
        let here = Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf);
        match here {
            Some(root) if root.join("corepool/Cargo.toml").is_file() => Source::Checkout(root),
            _ => Source::Registry(env!("CARGO_PKG_VERSION")),
        }
    }

    /// A checkout named by the user.
    pub fn checkout(root: &Path) -> Result<Source, NewError> {
        let root = std::fs::canonicalize(root).map_err(|_| NewError::NotACheckout(root.into()))?;
        if root.join("corepool/Cargo.toml").is_file() {
            Ok(Source::Checkout(root))
        } else {
            Err(NewError::NotACheckout(root))
        }
    }

    fn dependency(&self, redis: bool) -> String {
        let features = if redis { "[\"cli\", \"redis\"]" } else { "[\"cli\"]" };
        match self {
            Source::Checkout(root) => format!("{{ path = {:?}, features = {features} }}", root.join("corepool").display().to_string()),
            Source::Registry(v) => format!("{{ version = \"{v}\", features = {features} }}"),
        }
    }

    fn doc(&self) -> String {
        match self {
            Source::Checkout(root) => root.join("README.md").display().to_string(),
            Source::Registry(_) => "https://corepool.invalid/corepool".into(),
        }
    }
}

/// With `--redis`: a route whose state lives in the session, on Redis.
const REDIS_RS: &str = include_str!("../templates/new/redis.rs");

/// The files of a new crate for service `n`; `redis`: with corepool's
/// `redis` feature and a route that keeps its state in Redis (`[redis] url`).
pub fn files(n: &ServiceName, source: &Source, redis: bool) -> Vec<(&'static str, String)> {
    let fill = |t: &str| t.replace("@NAME@", n.as_str()).replace("@COREPOOL_DEP@", &source.dependency(redis)).replace("@COREPOOL_DOC@", &source.doc());
    let mut main = MAIN_RS.to_string();
    if redis {
        main = main.replace(".route(\"/fib/{n}\", get(fib));", ".route(\"/fib/{n}\", get(fib)).merge(shared());");
        main = main.replace("fn main() -> std::process::ExitCode {", &format!("{REDIS_RS}\nfn main() -> std::process::ExitCode {{"));
    }
    vec![("Cargo.toml", fill(CARGO_TOML)), ("src/main.rs", main), ("README.md", fill(README)), (".gitignore", GITIGNORE.to_string())]
}

/// Creates the crate at `path` (which must not exist).
pub fn create(path: &Path, source: &Source, redis: bool, out: &mut dyn Write) -> Result<ServiceName, NewError> {
    let name = path.file_name().and_then(|n| n.to_str()).ok_or_else(|| NewError::NoName(path.into()))?;
    let n = ServiceName::new(name)?;
    if std::fs::symlink_metadata(path).is_ok() {
        return Err(NewError::Exists(path.into()));
    }
    let io = |p: &Path| {
        let p = p.to_path_buf();
        move |error| NewError::Io { path: p, error }
    };
    for (file, text) in files(&n, source, redis) {
        let p = path.join(file);
        if let Some(dir) = p.parent() {
            std::fs::create_dir_all(dir).map_err(io(dir))?;
        }
        std::fs::write(&p, text).map_err(io(&p))?;
    }
    let _ = writeln!(
        out,
        "created {} (service `{n}`)\n\n    cd {}\n    cargo run        # serves on 127.0.0.1:3000\n    cargo test\n",
        path.display(),
        path.display()
    );
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_names_and_existing_paths_write_nothing() {
        let d = tempfile::tempdir().unwrap();
        let src = Source::Registry("0.1.0");
        let mut out = Vec::new();
        for bad in ["My App", "MyApp", "x", "root", "1st"] {
            let p = d.path().join(bad);
            assert!(matches!(create(&p, &src, false, &mut out), Err(NewError::Name(_))), "{bad}");
            assert!(!p.exists());
        }
        assert!(matches!(create(Path::new("/"), &src, false, &mut out), Err(NewError::NoName(_))));
        assert!(matches!(create(&d.path().join(".."), &src, false, &mut out), Err(NewError::NoName(_))));
        std::fs::create_dir(d.path().join("taken")).unwrap();
        assert!(matches!(create(&d.path().join("taken"), &src, false, &mut out), Err(NewError::Exists(_))));
    }

    #[test]
    fn a_new_crate_names_its_service_and_depends_on_corepool() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("checkout");
        std::fs::create_dir_all(root.join("corepool")).unwrap();
        std::fs::write(root.join("corepool/Cargo.toml"), "").unwrap();
        let src = Source::checkout(&root).unwrap();
        let p = d.path().join("myapp");
        let n = create(&p, &src, false, &mut Vec::new()).unwrap();
        assert_eq!(n.as_str(), "myapp");
        let cargo = std::fs::read_to_string(p.join("Cargo.toml")).unwrap();
        assert!(cargo.contains("name = \"myapp\""), "{cargo}");
        assert!(cargo.contains(&format!("corepool = {{ path = \"{}/corepool\", features = [\"cli\"] }}", src_root(&src))), "{cargo}");
        let parsed: toml::Table = cargo.parse().unwrap();
        assert!(parsed["dependencies"]["axum"].is_str());
        assert!(std::fs::read_to_string(p.join("README.md")).unwrap().contains("    cargo run\n"));
        assert!(p.join("src/main.rs").is_file());
        assert!(matches!(Source::checkout(d.path()), Err(NewError::NotACheckout(_))));
        // --redis: the feature, and a route on the session.
        let q = d.path().join("withredis");
        create(&q, &src, true, &mut Vec::new()).unwrap();
        let cargo = std::fs::read_to_string(q.join("Cargo.toml")).unwrap();
        assert!(cargo.contains("features = [\"cli\", \"redis\"]"), "{cargo}");
        let main = std::fs::read_to_string(q.join("src/main.rs")).unwrap();
        assert!(main.contains(".merge(shared())") && main.contains("async fn visits(") && main.contains("fn main()"), "{main}");
        assert!(!std::fs::read_to_string(p.join("src/main.rs")).unwrap().contains("redis"));
    }

    fn src_root(s: &Source) -> String {
        match s {
            Source::Checkout(r) => r.display().to_string(),
            Source::Registry(_) => unreachable!(),
        }
    }
}
