//! The demo binary's link: relative relocations packed (DT_RELR, glibc 2.36
//! and binutils 2.38 on: Debian 12 has both). The dynamic loader reads all
//! of a position-independent binary's relocations at start, so they stay
//! mapped in every instance: about 300 KB in `.rela.dyn` unpacked, 8 KB
//! packed (bench/notes.md, "Memory").
fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let env = std::env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
    if os == "linux" && env == "gnu" {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
}
