//! `cargo xtask build-examples`: every guest under `examples/` into a component.
//!
//! Two routes, the first that exists wins (see ../shared/WASM-TOOLCHAIN.md):
//! 1. a rustup `wasm32-unknown-unknown` target (what most developers have);
//! 2. Debian's `rustc-web` toolchain with the standard library built from source
//!    (`rust-web-src`) and `wasm-ld` from `lld-NN`.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

const TARGET: &str = "wasm32-unknown-unknown";

enum Route {
    Rustup,
    Debian { linker: PathBuf },
}

fn output(cmd: &mut Command) -> Option<String> {
    let out = cmd.output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn pick_route() -> anyhow::Result<Route> {
    // 1. rustup's toolchain (the one running this xtask) with the wasm target installed.
    if let Some(sysroot) = output(Command::new("rustc").args(["--print", "sysroot"]))
        && Path::new(&sysroot)
            .join("lib/rustlib")
            .join(TARGET)
            .is_dir()
    {
        return Ok(Route::Rustup);
    }
    // 2. Debian's rustc-web with std sources and an LLVM wasm-ld.
    let debian_rustc = Path::new("/usr/bin/rustc");
    let sysroot = output(Command::new(debian_rustc).args(["--print", "sysroot"]));
    let has_src = sysroot
        .as_ref()
        .is_some_and(|s| Path::new(s).join("lib/rustlib/src/rust/library").is_dir());
    if debian_rustc.exists() && Path::new("/usr/bin/cargo").exists() && has_src {
        let llvm_major = output(Command::new(debian_rustc).arg("-vV")).and_then(|v| {
            v.lines()
                .find_map(|l| l.strip_prefix("LLVM version: "))
                .and_then(|ver| ver.split('.').next())
                .map(str::to_string)
        });
        let mut candidates = Vec::new();
        if let Some(major) = llvm_major {
            candidates.push(PathBuf::from(format!("/usr/lib/llvm-{major}/bin/wasm-ld")));
        }
        if let Some(rustup_sysroot) = output(Command::new("rustc").args(["--print", "sysroot"])) {
            candidates.push(
                Path::new(&rustup_sysroot)
                    .join("lib/rustlib/x86_64-unknown-linux-gnu/bin/rust-lld"),
            );
        }
        if let Some(linker) = candidates.into_iter().find(|p| p.exists()) {
            return Ok(Route::Debian { linker });
        }
    }
    bail!(
        "no way to build wasm32 guests was found. Either\n  \
         rustup target add {TARGET}\nor (Debian) install rustc-web, cargo-web, rust-web-src and lld-NN \
         (NN = the LLVM major of `/usr/bin/rustc -vV`):\n  \
         apt-get install rustc-web cargo-web rust-web-src lld-22"
    )
}

/// The example crates: every directory under `examples/` with a Cargo.toml.
fn members(examples: &Path) -> anyhow::Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in
        std::fs::read_dir(examples).with_context(|| format!("reading {}", examples.display()))?
    {
        let entry = entry?;
        if entry.path().join("Cargo.toml").is_file() {
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    names.sort();
    Ok(names)
}

/// Builds every example; components land in `target/examples/<name>.wasm`.
pub(crate) fn build(root: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let examples = root.join("examples");
    build_guests(
        &examples.join("Cargo.toml"),
        &members(&examples)?,
        root,
        &root.join("target/examples"),
        true,
    )
}

/// Builds the guest crate at `dir` (a project made by `theater new`, say); its component
/// lands in `<dir>/target/theater/<name>.wasm`.
pub(crate) fn build_one(root: &Path, dir: &Path) -> anyhow::Result<PathBuf> {
    let manifest = dir.join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest)
        .with_context(|| format!("reading {}", manifest.display()))?;
    let name = text
        .lines()
        .skip_while(|l| l.trim() != "[package]")
        .find_map(|l| {
            let (k, v) = l.split_once('=')?;
            (k.trim() == "name").then(|| v.trim().trim_matches('"').to_string())
        })
        .with_context(|| format!("no [package] name in {}", manifest.display()))?;
    let built = build_guests(&manifest, &[name], root, &dir.join("target/theater"), false)?;
    built
        .into_iter()
        .next()
        .context("the guest was built but no component came out")
}

/// Builds the guests of the workspace at `manifest` and turns each of `names` into a
/// component in `out_dir`. Guests share `target/guests` so the standard library built from
/// source (the Debian route) is built once.
fn build_guests(
    manifest: &Path,
    names: &[String],
    root: &Path,
    out_dir: &Path,
    locked: bool,
) -> anyhow::Result<Vec<PathBuf>> {
    let guest_target = root.join("target/guests");
    let route = pick_route()?;
    let mut cmd = match &route {
        Route::Rustup => {
            let mut c = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
            c.args(["build", "--release", "--target", TARGET]);
            c
        }
        Route::Debian { linker } => {
            let mut c = Command::new("/usr/bin/cargo");
            c.env_remove("RUSTUP_TOOLCHAIN")
                .env("RUSTC", "/usr/bin/rustc")
                .env("RUSTDOC", "/usr/bin/rustdoc")
                .env("RUSTC_BOOTSTRAP", "1")
                .env("CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_LINKER", linker)
                .args([
                    "build",
                    "--release",
                    "--target",
                    TARGET,
                    "-Zbuild-std=std,panic_abort",
                ]);
            c
        }
    };
    cmd.arg("--manifest-path").arg(manifest).arg("--workspace");
    if locked {
        cmd.arg("--locked");
    }
    let status = cmd
        .env("CARGO_TARGET_DIR", &guest_target)
        .status()
        .context("running cargo for the guests")?;
    if !status.success() {
        bail!(
            "building the guests of {} failed ({status})",
            manifest.display()
        );
    }
    std::fs::create_dir_all(out_dir)?;
    let mut built = Vec::new();
    for name in names {
        let core = guest_target
            .join(TARGET)
            .join("release")
            .join(format!("{}.wasm", name.replace('-', "_")));
        let module = std::fs::read(&core).with_context(|| format!("reading {}", core.display()))?;
        let component = wit_component::ComponentEncoder::default()
            .module(&module)
            .and_then(|e| e.validate(true).encode())
            .with_context(|| format!("turning {} into a component", core.display()))?;
        let out = out_dir.join(format!("{name}.wasm"));
        // Rewrite only on change, so timestamps (and caches keyed on them) stay put.
        if std::fs::read(&out).ok().as_deref() != Some(&component[..]) {
            std::fs::write(&out, &component)
                .with_context(|| format!("writing {}", out.display()))?;
        }
        println!("built {} ({} bytes)", out.display(), component.len());
        built.push(out);
    }
    Ok(built)
}
