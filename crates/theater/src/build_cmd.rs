//! `theater build [DIR]`: a Rust actor project into a component, anywhere, with the
//! installed binary alone (the wasm32 toolchain is set up first if it is missing).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use theater_build::{BuildOptions, Environment, Guests, Toolchain, sdk};

pub(crate) fn run(
    dir: &Path,
    out_dir: Option<PathBuf>,
    target_dir: Option<PathBuf>,
    locked: bool,
) -> anyhow::Result<ExitCode> {
    let guests = Guests::open(dir)?;
    if let Some(file) = sdk::differs(dir) {
        eprintln!(
            "warning: {file} is not the guest SDK of this Theater ({}); if the host refuses \
             the component, copy the SDK of a project made by this version's `theater new`",
            env!("CARGO_PKG_VERSION")
        );
    }
    let toolchain = Toolchain::ensure(&Environment::current(), &mut std::io::stderr())?;
    let built = guests.build(
        &toolchain,
        &BuildOptions {
            // cargo's own setting is honoured, as by `cargo build`.
            target_dir: target_dir
                .or_else(|| std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from))
                .unwrap_or_else(|| dir.join("target")),
            out_dir: out_dir.unwrap_or_else(|| dir.join("target/theater")),
            locked,
            quiet: false,
        },
    )?;
    for b in built {
        println!("built {} ({} bytes)", b.path.display(), b.bytes);
    }
    Ok(ExitCode::SUCCESS)
}
