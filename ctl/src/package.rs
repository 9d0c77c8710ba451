//! `NAME package`: the running binary turns itself into a Debian package.
//!
//! `cargo run --release -- package` in a service's crate gives
//! `target/debian/NAME_VERSION-1_ARCH.deb` with everything the corepool way
//! needs, every name derived from the service's: the binary, the templated
//! socket-activated units and their target, the configuration file (a
//! conffile listing every default, corepool's and the service's sections),
//! the nginx site and its includes, the certbot deploy hook, the maintainer
//! scripts (system user, rolling restart on upgrade, a clean purge), a man
//! page and shell completions generated from the CLI, copyright and
//! changelog. corepool's own demo service is packaged by this same command.
//!
//! The `.deb` is assembled with `dpkg-deb` and its dependencies are found by
//! `dpkg-shlibdeps` (package dpkg-dev), the tools Debian builds its own
//! packages with; lintian is the judge (the system tests run it).

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use corepool_runtime::{Service, ServiceName};

/// The templates, with `@NAME@` (the service's name), `@IDENT@` (the name
/// with `_` for `-`, for nginx variables) and `@PREFIX@` (its environment
/// prefix) to fill in.
pub mod templates {
    pub const SERVICE: &str = include_str!("../../systemd/template@.service");
    pub const SOCKET: &str = include_str!("../../systemd/template@.socket");
    pub const TARGET: &str = include_str!("../../systemd/template.target");
    pub const METRICS: &str = include_str!("../../systemd/template-metrics.service");
    pub const PROMETHEUS: &str = include_str!("../../packaging/prometheus/prometheus.yml");
    pub const RULES: &str = include_str!("../../packaging/prometheus/rules.yml");
    pub const DASHBOARD: &str = include_str!("../../packaging/grafana/dashboard.json");
    pub const SITE: &str = include_str!("../../nginx/site.conf");
    pub const PROXY: &str = include_str!("../../nginx/proxy.conf");
    pub const TLS: &str = include_str!("../../nginx/tls.conf");
    pub const CONFIG: &str = include_str!("../../packaging/config.toml");
    pub const CERTBOT_HOOK: &str = include_str!("../../packaging/certbot-deploy-hook");
    pub const POSTINST: &str = include_str!("../../debian/postinst");
    pub const PRERM: &str = include_str!("../../debian/prerm");
    pub const POSTRM: &str = include_str!("../../debian/postrm");
    pub const LINTIAN_OVERRIDES: &str = include_str!("../../debian/lintian-overrides");
}

/// Why a package could not be built.
#[derive(Debug, thiserror::Error)]
pub enum PackageError {
    #[error("{path}")]
    Io {
        path: PathBuf,
        #[source]
        error: std::io::Error,
    },
    #[error("`{cmd}` is needed to build a .deb ({hint})")]
    Missing {
        cmd: String,
        hint: &'static str,
        #[source]
        error: std::io::Error,
    },
    #[error("{cmd} failed: {stderr}")]
    Failed { cmd: String, stderr: String },
    #[error("compressing with gzip")]
    Gzip(#[source] std::io::Error),
    #[error("rendering the man page")]
    ManPage(#[source] std::io::Error),
    #[error(transparent)]
    Name(#[from] corepool_runtime::name::NameError),
    #[error("the generated configuration does not load")]
    ConfigLoads(#[source] corepool_runtime::load::ConfigError),
    #[error("the generated configuration differs from the built-in defaults")]
    ConfigDiffers,
    #[error("{0} is a debug build; package a release build: cargo run --release -- package")]
    DebugBuild(PathBuf),
}

/// Options of `NAME package`.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// The full Debian version, e.g. `0.1.0-2` (default: the crate's version, revision 1).
    pub deb_version: Option<String>,
    /// Where to put the .deb (default: the crate's `target/debian/`).
    pub output: Option<PathBuf>,
    /// `Name <address>` (default: the crate's first author).
    pub maintainer: Option<String>,
}

/// Fills in a template's placeholders for service `n`.
pub fn fill(template: &str, n: &ServiceName) -> String {
    template.replace("@NAME@", n.as_str()).replace("@IDENT@", &n.ident()).replace("@PREFIX@", &n.env_prefix())
}

/// The packaged nginx proxy settings (`/etc/NAME/nginx/proxy.conf`): the
/// template filled in, with one `if` per path the service declares cacheable
/// (`Service::cacheable`), which lets only those use the response cache.
pub fn proxy_conf(service: &Service) -> Result<String, PackageError> {
    let n = service.name()?;
    Ok(fill(templates::PROXY, n).replace("@CACHEABLE@\n", &cacheable_ifs(service.cacheable_paths(), &n.ident())))
}

/// For each path: `$IDENT_not_cacheable` emptied for it and what is below
/// it. Paths hold only `[A-Za-z0-9/._~-]` (`Service::cacheable` checks), so
/// `.` is the one character to escape in the regular expression.
fn cacheable_ifs(paths: &[&str], ident: &str) -> String {
    paths
        .iter()
        .map(|p| {
            let re = p.replace('.', "\\.");
            let below = if p.ends_with('/') { "" } else { "(/|$)" };
            format!("if ($uri ~ \"^{re}{below}\") {{ set ${ident}_not_cacheable \"\"; }}  # {p}\n")
        })
        .collect()
}

/// The packaged configuration file: corepool's documented settings, then
/// each of the service's sections with its defaults.
pub fn config_file(service: &Service) -> Result<String, PackageError> {
    let n = service.name()?;
    let mut text = fill(templates::CONFIG, n);
    for s in service.sections() {
        text.push_str(&format!("\n# [{}]: {n}'s own settings (its built-in defaults).\n", s.name()));
        for line in s.doc().lines() {
            text.push_str(&format!("# {line}\n").replace("# \n", "#\n"));
        }
        text.push_str(&s.default_toml());
    }
    // What we ship must load, and load to the built-in defaults.
    let schema = service.schema()?;
    let loaded = corepool_runtime::load::parse(&n.config_path(), Some(&text), &[], &schema).map_err(PackageError::ConfigLoads)?;
    if loaded.to_toml(&schema) != schema.defaults().to_toml(&schema) {
        return Err(PackageError::ConfigDiffers);
    }
    Ok(text)
}

fn run(cmd: &str, args: &[&str], cwd: Option<&Path>, hint: &'static str) -> Result<String, PackageError> {
    let mut c = Command::new(cmd);
    c.args(args);
    if let Some(d) = cwd {
        c.current_dir(d);
    }
    let out = c.output().map_err(|error| PackageError::Missing { cmd: cmd.into(), hint, error })?;
    if !out.status.success() {
        return Err(PackageError::Failed { cmd: format!("{cmd} {}", args.join(" ")), stderr: String::from_utf8_lossy(&out.stderr).trim().to_string() });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A file to put into the package: where, what, its mode.
struct Entry {
    path: PathBuf,
    content: Vec<u8>,
    mode: u32,
}

fn entry(path: impl Into<PathBuf>, content: impl Into<Vec<u8>>, mode: u32) -> Entry {
    Entry { path: path.into(), content: content.into(), mode }
}

/// `gzip -9n`: compressed without name or time stamp, as Debian wants.
fn gzip(data: &[u8]) -> Result<Vec<u8>, PackageError> {
    let mut child = Command::new("gzip")
        .args(["-9n", "-c"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .map_err(|error| PackageError::Missing { cmd: "gzip".into(), hint: "package gzip", error })?;
    let mut stdin = child.stdin.take().expect("piped");
    let data = data.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&data));
    let out = child.wait_with_output().map_err(PackageError::Gzip)?;
    writer.join().ok().transpose().map_err(PackageError::Gzip)?;
    Ok(out.stdout)
}

/// The maintainer: `--maintainer`, else the crate's first author, else a
/// placeholder at the reserved `.invalid` domain.
fn maintainer(service: &Service, o: &Options) -> String {
    let n = service.name().map(|n| n.to_string()).unwrap_or_default();
    o.maintainer
        .clone()
        .or_else(|| service.package_info().authors.split(':').map(str::trim).find(|a| a.contains('<')).map(String::from))
        .unwrap_or_else(|| format!("{n} maintainers <{n}@packages.invalid>"))
}

/// RFC 2822 date of now (or of `SOURCE_DATE_EPOCH`, for reproducible builds).
fn rfc2822_now() -> Result<String, PackageError> {
    let mut args = vec!["-R".to_string()];
    if let Ok(epoch) = std::env::var("SOURCE_DATE_EPOCH") {
        args = vec!["-R".into(), "-d".into(), format!("@{epoch}")];
    }
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    Ok(run("date", &a, None, "coreutils")?.trim().to_string())
}

/// The machine-readable copyright file, with the crate's LICENSE text.
fn copyright(service: &Service, maintainer: &str) -> String {
    let info = service.package_info();
    let n = service.name().map(|n| n.to_string()).unwrap_or_default();
    let license = if info.license.is_empty() { "UNLICENSED" } else { info.license };
    let year = rfc2822_now().ok().and_then(|d| d.split_whitespace().nth(3).map(String::from)).unwrap_or_default();
    let holder = if info.authors.is_empty() { maintainer.to_string() } else { info.authors.replace(':', ", ") };
    let mut s = format!("Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\nUpstream-Name: {n}\n");
    let source = if info.repository.is_empty() { info.homepage } else { info.repository };
    if !source.is_empty() {
        s.push_str(&format!("Source: {source}\n"));
    }
    s.push_str(&format!("\nFiles: *\nCopyright: {year} {holder}\nLicense: {license}\n"));
    let text = ["LICENSE", "LICENSE.md", "LICENSE.txt", "COPYING"].iter().find_map(|f| std::fs::read_to_string(Path::new(info.manifest_dir).join(f)).ok());
    match text {
        Some(t) => {
            for line in t.trim_end().lines() {
                s.push_str(if line.trim().is_empty() { " .\n" } else { " " });
                if !line.trim().is_empty() {
                    s.push_str(line);
                    s.push('\n');
                }
            }
        }
        None => s.push_str(&format!(" The crate gives its licence as `{license}` and ships no licence text.\n")),
    }
    s
}

/// The Debian version: `--deb-version`, else the crate's version, revision 1.
fn deb_version(service: &Service, o: &Options) -> String {
    o.deb_version.clone().unwrap_or_else(|| format!("{}-1", service.version()))
}

/// Everything in the package but the control files.
fn payload(service: &Service, cli: &mut clap::Command, binary: Vec<u8>, o: &Options) -> Result<Vec<Entry>, PackageError> {
    let n = service.name()?.clone();
    let info = service.package_info();
    let version = deb_version(service, o);
    let maint = maintainer(service, o);
    let mut man = Vec::new();
    clap_mangen::Man::new(cli.clone()).section("8").render(&mut man).map_err(PackageError::ManPage)?;
    let mut completion = |shell: clap_complete::Shell| {
        let mut buf = Vec::new();
        clap_complete::generate(shell, cli, n.as_str(), &mut buf);
        buf
    };
    let changelog = format!(
        "{n} ({version}) unstable; urgency=medium\n\n  * Built by `{n} package` (corepool {}).\n\n -- {maint}  {}\n",
        env!("CARGO_PKG_VERSION"),
        rfc2822_now()?
    );
    let doc = PathBuf::from(format!("usr/share/doc/{n}"));
    let mut files = vec![
        entry(format!("usr/bin/{n}"), binary, 0o755),
        entry(format!("usr/lib/systemd/system/{n}@.service"), fill(templates::SERVICE, &n), 0o644),
        entry(format!("usr/lib/systemd/system/{n}@.socket"), fill(templates::SOCKET, &n), 0o644),
        entry(format!("usr/lib/systemd/system/{n}.target"), fill(templates::TARGET, &n), 0o644),
        entry(format!("usr/lib/systemd/system/{n}-metrics.service"), fill(templates::METRICS, &n), 0o644),
        entry(format!("etc/{n}/prometheus/prometheus.yml"), fill(templates::PROMETHEUS, &n), 0o644),
        entry(format!("etc/{n}/prometheus/rules.yml"), fill(templates::RULES, &n), 0o644),
        entry(format!("usr/share/{n}/grafana/dashboard.json"), fill(templates::DASHBOARD, &n), 0o644),
        entry(format!("etc/{n}/{n}.toml"), config_file(service)?, 0o644),
        entry(format!("etc/nginx/sites-available/{n}.conf"), fill(templates::SITE, &n), 0o644),
        entry(format!("etc/{n}/nginx/proxy.conf"), proxy_conf(service)?, 0o644),
        entry(format!("etc/{n}/nginx/tls.conf"), fill(templates::TLS, &n), 0o644),
        entry(format!("etc/letsencrypt/renewal-hooks/deploy/{n}"), fill(templates::CERTBOT_HOOK, &n), 0o755),
        entry(format!("usr/share/man/man8/{n}.8.gz"), gzip(&man)?, 0o644),
        entry(format!("usr/share/bash-completion/completions/{n}"), completion(clap_complete::Shell::Bash), 0o644),
        entry(format!("usr/share/zsh/vendor-completions/_{n}"), completion(clap_complete::Shell::Zsh), 0o644),
        entry(format!("usr/share/fish/vendor_completions.d/{n}.fish"), completion(clap_complete::Shell::Fish), 0o644),
        entry(doc.join("copyright"), copyright(service, &maint), 0o644),
        entry(doc.join("changelog.Debian.gz"), gzip(changelog.as_bytes())?, 0o644),
        entry(format!("usr/share/lintian/overrides/{n}"), fill(templates::LINTIAN_OVERRIDES, &n), 0o644),
    ];
    if let Ok(readme) = std::fs::read(Path::new(info.manifest_dir).join("README.md")) {
        files.push(entry(doc.join("README.md"), readme, 0o644));
    }
    Ok(files)
}

fn write_file(root: &Path, e: &Entry) -> Result<(), PackageError> {
    let p = root.join(&e.path);
    let io = |error| PackageError::Io { path: p.clone(), error };
    if let Some(dir) = p.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    std::fs::write(&p, &e.content).map_err(io)?;
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(e.mode)).map_err(io)
}

/// Directories 0755 (umasks vary; the package must not).
fn fix_dir_modes(dir: &Path) -> Result<(), PackageError> {
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).map_err(|error| PackageError::Io { path: dir.into(), error })?;
    for e in std::fs::read_dir(dir).map_err(|error| PackageError::Io { path: dir.into(), error })?.flatten() {
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            fix_dir_modes(&e.path())?;
        }
    }
    Ok(())
}

/// Builds the package; returns the path of the `.deb`.
pub fn build(service: &Service, cli: &mut clap::Command, o: &Options) -> Result<PathBuf, PackageError> {
    let n = service.name()?.clone();
    let info = service.package_info();
    let exe = std::env::current_exe().map_err(|error| PackageError::Io { path: "/proc/self/exe".into(), error })?;
    if exe.components().any(|c| c.as_os_str() == "debug") {
        return Err(PackageError::DebugBuild(exe));
    }
    let target = if info.manifest_dir.is_empty() { PathBuf::from("target") } else { Path::new(info.manifest_dir).join("target") };
    // One scratch directory per build: two builds at once (several versions
    // built side by side, as the chaos soaks do) must not share one.
    let work = target.join("corepool-package").join(format!("{n}.{}", std::process::id()));
    let root = work.join("root");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(root.join("DEBIAN")).map_err(|error| PackageError::Io { path: root.clone(), error })?;

    // The binary, stripped of debugging symbols as Debian ships binaries.
    let stripped = work.join(n.as_str());
    run(
        "strip",
        &["--remove-section=.comment", "--remove-section=.note", "--strip-unneeded", "-o", &stripped.display().to_string(), &exe.display().to_string()],
        None,
        "package binutils",
    )?;
    let binary = std::fs::read(&stripped).map_err(|error| PackageError::Io { path: stripped.clone(), error })?;

    let files = payload(service, cli, binary, o)?;
    for e in &files {
        write_file(&root, e)?;
    }
    fix_dir_modes(&root)?;

    // Depends: what the binary links (dpkg-shlibdeps reads a debian/control).
    std::fs::create_dir_all(work.join("debian")).map_err(|error| PackageError::Io { path: work.clone(), error })?;
    std::fs::write(work.join("debian/control"), format!("Source: {n}\n\nPackage: {n}\nArchitecture: any\n"))
        .map_err(|error| PackageError::Io { path: work.join("debian/control"), error })?;
    let bin = format!("root/usr/bin/{n}");
    let shlibs = run("dpkg-shlibdeps", &["-O", &format!("-e{bin}")], Some(&work), "package dpkg-dev")?;
    let libs = shlibs.trim().strip_prefix("shlibs:Depends=").unwrap_or("").to_string();
    let arch = run("dpkg", &["--print-architecture"], None, "package dpkg")?.trim().to_string();
    let version = deb_version(service, o);
    let installed_kib: u64 = files.iter().map(|e| (e.content.len() as u64).div_ceil(1024)).sum();
    let synopsis = synopsis(service);
    let mut control = format!(
        "Package: {n}\nVersion: {version}\nArchitecture: {arch}\nMaintainer: {}\nInstalled-Size: {installed_kib}\n\
         Depends: {}adduser\nRecommends: nginx\nSuggests: certbot, redis-server\nSection: web\nPriority: optional\n",
        maintainer(service, o),
        if libs.is_empty() { String::new() } else { format!("{libs}, ") },
    );
    if !info.homepage.is_empty() {
        control.push_str(&format!("Homepage: {}\n", info.homepage));
    }
    control.push_str(&format!(
        "Description: {synopsis}\n {n} is an HTTP service built on corepool: one socket-activated instance\n \
         per CPU core managed by systemd (watchdog, restart on failure, rolling\n \
         reload), a fixed, bounded thread pool for CPU-heavy work, an nginx site\n \
         in front of the instances, and certbot for HTTPS. The {n} command is\n \
         also the operator's tool: enable, scale, reload, status, top, logs.\n"
    ));
    let conffiles: String = files.iter().filter(|e| e.path.starts_with("etc")).map(|e| format!("/{}\n", e.path.display())).collect();
    let debian = root.join("DEBIAN");
    for (file, text, mode) in [
        ("control", control, 0o644),
        ("conffiles", conffiles, 0o644),
        ("postinst", fill(templates::POSTINST, &n), 0o755),
        ("prerm", fill(templates::PRERM, &n), 0o755),
        ("postrm", fill(templates::POSTRM, &n), 0o755),
    ] {
        write_file(&debian, &entry(file, text, mode))?;
    }
    // md5sums of everything but the conffiles (dpkg keeps theirs itself).
    let sums: Vec<String> = files.iter().filter(|e| !e.path.starts_with("etc")).map(|e| e.path.display().to_string()).collect();
    let mut args = vec!["--"];
    args.extend(sums.iter().map(String::as_str));
    let md5 = run("md5sum", &args, Some(&root), "coreutils")?;
    write_file(&debian, &entry("md5sums", md5, 0o644))?;

    let out_dir = o.output.clone().unwrap_or_else(|| target.join("debian"));
    std::fs::create_dir_all(&out_dir).map_err(|error| PackageError::Io { path: out_dir.clone(), error })?;
    let deb = out_dir.join(format!("{n}_{version}_{arch}.deb"));
    run("dpkg-deb", &["--root-owner-group", "-Zxz", "--build", &root.display().to_string(), &deb.display().to_string()], None, "package dpkg")?;
    // (Left behind when a step fails, to look at.)
    let _ = std::fs::remove_dir_all(&work);
    Ok(deb)
}

/// The control file's one-line description: the crate's first line, cut at
/// a word to fit 80 characters, without a final period.
fn synopsis(service: &Service) -> String {
    let d = service.package_info().description.trim();
    let n = service.name().map(|n| n.to_string()).unwrap_or_default();
    let first = d.lines().next().unwrap_or("").trim();
    // lintian: a synopsis does not start with the package's name.
    let first = match first.split_once(' ') {
        Some((word, rest)) if word.trim_end_matches([':', ',', '-']) == n => rest.trim_start_matches(['-', ' ']),
        _ => first,
    };
    if first.is_empty() {
        return "HTTP service, one instance per CPU core (corepool)".to_string();
    }
    // lintian: nor with an article.
    let first =
        ["a ", "an ", "the "].iter().find_map(|a| first.get(..a.len()).filter(|p| p.eq_ignore_ascii_case(a)).map(|_| &first[a.len()..])).unwrap_or(first);
    let mut out = String::new();
    for word in first.split_whitespace() {
        if out.len() + 1 + word.len() > 80 {
            break;
        }
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    out.trim_end_matches(['.', ',', ';', ':']).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_leave_no_placeholder_and_name_only_the_service() {
        let n = ServiceName::new("my-app").unwrap();
        for t in [
            templates::SERVICE,
            templates::SOCKET,
            templates::TARGET,
            templates::METRICS,
            templates::PROMETHEUS,
            templates::RULES,
            templates::DASHBOARD,
            templates::SITE,
            templates::PROXY,
            templates::TLS,
            templates::CONFIG,
            templates::CERTBOT_HOOK,
            templates::POSTINST,
            templates::PRERM,
            templates::POSTRM,
        ] {
            let f = fill(t, &n);
            assert!(!f.contains("@NAME@") && !f.contains("@IDENT@") && !f.contains("@PREFIX@"), "{f}");
            for line in f.lines().filter(|l| !l.trim_start().starts_with('#')) {
                // corepool names its metrics (corepool_*) and itself in comments;
                // every path, unit, user, upstream and variable is the service's.
                for own in ["/corepool", "corepool@", "corepool.", " corepool;", "=corepool", "$corepool", "http://corepool"] {
                    assert!(!line.contains(own), "{own:?} in {line}");
                }
            }
        }
        assert!(fill(templates::SITE, &n).contains("map $http_upgrade $my_app_connection"));
        let plain = proxy_conf(&Service::new("my-app")).unwrap();
        assert!(!plain.contains('@') && plain.contains("set $my_app_not_cacheable 1;\nlocation / {\n"), "{plain}");
        assert!(fill(templates::SOCKET, &n).contains("ListenStream=/run/my-app/%i.sock"));
        assert!(fill(templates::SERVICE, &n).contains("User=my-app\n"));
    }

    #[test]
    fn only_the_declared_paths_use_the_cache() {
        let svc = Service::new("my-app").cacheable("/compute").cacheable("/static/").cacheable("/v1.2/report");
        let s = proxy_conf(&svc).unwrap();
        let from = s.find("set $my_app_not_cacheable 1;").unwrap();
        let to = s[from..].find("location / {").unwrap();
        assert_eq!(
            s[from..from + to].lines().collect::<Vec<_>>(),
            [
                "set $my_app_not_cacheable 1;",
                r#"if ($uri ~ "^/compute(/|$)") { set $my_app_not_cacheable ""; }  # /compute"#,
                r#"if ($uri ~ "^/static/") { set $my_app_not_cacheable ""; }  # /static/"#,
                r#"if ($uri ~ "^/v1\.2/report(/|$)") { set $my_app_not_cacheable ""; }  # /v1.2/report"#,
            ]
        );
    }

    #[test]
    #[should_panic(expected = "Service::cacheable")]
    fn a_cacheable_path_is_a_plain_path() {
        let _ = Service::new("my-app").cacheable("/a|b");
    }

    #[test]
    fn synopsis_fits_and_does_not_start_with_the_name() {
        let info = |d: &'static str| Service::new("myapp").info(corepool_runtime::PackageInfo { description: d, ..Default::default() });
        assert_eq!(synopsis(&info("myapp: greets people.")), "greets people");
        assert_eq!(synopsis(&info("myapp, a greeter")), "greeter");
        assert_eq!(synopsis(&info("myapp - The greeter")), "greeter");
        assert_eq!(synopsis(&info("Another greeter")), "Another greeter");
        assert_eq!(synopsis(&info("myapps for all")), "myapps for all");
        let long = synopsis(&info("word ".repeat(30).leak()));
        assert!(long.len() <= 80 && long.ends_with("word"), "{long}");
        assert!(synopsis(&info("")).contains("corepool"));
    }

    #[test]
    fn the_packaged_configuration_is_the_defaults() {
        let n = ServiceName::new("myapp").unwrap();
        let svc = Service::new("myapp");
        let text = config_file(&svc).unwrap();
        assert!(text.contains("MYAPP_POOL_THREADS"), "{text}");
        // Every key corepool has is listed (uncommented) in the file.
        let schema = svc.schema().unwrap();
        let table: toml::Table = text.parse().unwrap();
        for key in schema.keys() {
            let mut cur = &table;
            let parts: Vec<&str> = key.split('.').collect();
            for p in &parts[..parts.len() - 1] {
                cur = cur.get(*p).and_then(|v| v.as_table()).unwrap_or_else(|| panic!("{key} missing from {}", n.config_path().display()));
            }
            assert!(cur.contains_key(*parts.last().unwrap()), "{key} missing from the packaged file");
        }
    }
}
