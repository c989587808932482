//! Links the `pause` and `podhost-shim` binaries (this script serves both crates)
//! statically against glibc without touching the rest of the workspace: a static
//! binary touches far fewer pages than one mapping libc.so, which matters per pod.
//!
//! `-C target-feature=+crt-static` would be the normal way, but it can only be
//! set globally (RUSTFLAGS) and would then also apply to proc-macros, which
//! cannot be static. A plain `-static` link argument is not enough either:
//! rustc passes std's system libraries as `-Bdynamic -lc -lgcc_s ...`, so the
//! linker would still pick the shared objects. Instead we put tiny linker
//! scripts named `lib<x>.so` first on the binaries' library path; each
//! redirects to the static archive (`libgcc_s` -> `libgcc_eh` + `libgcc`,
//! which is exactly what crt-static links). Only our binaries see them.
use std::{env, fs, path::PathBuf};

const SHADOWED: &[(&str, &str)] = &[
    ("c", "INPUT(-l:libc.a)"),
    ("m", "INPUT(-l:libm.a)"),
    ("rt", "INPUT(-l:librt.a)"),
    ("pthread", "INPUT(-l:libpthread.a)"),
    ("dl", "INPUT(-l:libdl.a)"),
    ("util", "INPUT(-l:libutil.a)"),
    ("gcc_s", "INPUT(-l:libgcc_eh.a -l:libgcc.a)"),
];

fn main() {
    // Paths are relative to the package, and this script also serves the shim from
    // another directory: name a file both packages have. Cargo reruns the script anyway
    // whenever the script itself changes (it is recompiled).
    println!("cargo:rerun-if-changed=Cargo.toml");
    let target_os = env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let target_env = env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
    let features = env::var("CARGO_CFG_TARGET_FEATURE").unwrap_or_default();
    if target_os != "linux" || features.split(',').any(|f| f == "crt-static") {
        // Already static (e.g. musl, or crt-static requested): nothing to do.
        return;
    }
    if target_env == "gnu" {
        let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
        let dir = out.join("static-libs");
        fs::create_dir_all(&dir).expect("create static-libs dir in OUT_DIR");
        for (name, script) in SHADOWED {
            fs::write(dir.join(format!("lib{name}.so")), script).expect("write linker script");
        }
        // A link argument, not `rustc-link-search`: search paths propagate to
        // every crate that depends on this one (the daemon uses the shim's
        // lib), and must not reach anything but our own binaries.
        println!("cargo:rustc-link-arg-bins=-L{}", dir.display());
    }
    // `-static` also selects the non-PIE crt1.o and drops the ELF interpreter.
    println!("cargo:rustc-link-arg-bins=-static");
    // The pause has its own `_start` and calls no libc: without the C start-up files
    // glibc's initialisation never runs, so its pages are never touched (see
    // crates/pause/src/main.rs).
    if env::var("CARGO_PKG_NAME").as_deref() == Ok("pause") {
        println!("cargo:rustc-link-arg-bins=-nostartfiles");
    }
}
