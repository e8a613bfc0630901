//! Bundles the web console (`console/`: Preact pages and Cytoscape.js, bundled by esbuild)
//! into `$OUT_DIR/console`, which the binary embeds: the console then needs no network and no
//! install of its own. `npm ci` runs when `console/node_modules` is missing or older than
//! `console/package-lock.json`; the bundle is rebuilt when the console's sources change.
//!
//! `THEATER_CONSOLE_DIST=DIR` takes a bundle built elsewhere (`node console/build.mjs DIR`)
//! instead, for a machine without Node.js.

use std::path::{Path, PathBuf};
use std::process::Command;

/// What the binary embeds: the page, its script and style, and the licenses of the npm
/// packages bundled into the script.
const FILES: [&str; 4] = [
    "index.html",
    "console.js",
    "console.css",
    "console.js.LEGAL.txt",
];

fn main() {
    let manifest_dir =
        PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let console = manifest_dir.join("console");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets it")).join("console");
    for p in ["package.json", "package-lock.json", "build.mjs", "src"] {
        println!("cargo:rerun-if-changed=console/{p}");
    }
    println!("cargo:rerun-if-env-changed=THEATER_CONSOLE_DIST");
    if let Err(e) = std::fs::create_dir_all(&out) {
        fail(&format!("cannot create {}: {e}", out.display()));
    }
    if let Some(dist) = std::env::var_os("THEATER_CONSOLE_DIST") {
        let dist = PathBuf::from(dist);
        for f in FILES {
            if let Err(e) = std::fs::copy(dist.join(f), out.join(f)) {
                fail(&format!(
                    "THEATER_CONSOLE_DIST={}: cannot copy {f}: {e} (build it with `node crates/theater/console/build.mjs DIR`)",
                    dist.display()
                ));
            }
        }
        return;
    }
    // Two builds at once (another profile, `cargo install` beside a test run) share
    // `console/node_modules`: one installs at a time.
    let lock_path = console.join(".install.lock");
    let guard = std::fs::File::create(&lock_path)
        .and_then(|f| f.lock().map(|()| f))
        .unwrap_or_else(|e| fail(&format!("cannot lock {}: {e}", lock_path.display())));
    let lock = console.join("package-lock.json");
    let installed = console.join("node_modules").join(".package-lock.json");
    if !installed.exists() || modified(&lock) > modified(&installed) {
        run(
            Command::new(npm())
                .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
                .current_dir(&console),
            "npm ci (installs the console's build tools from package-lock.json)",
        );
    }
    run(
        Command::new("node")
            .arg("build.mjs")
            .arg(&out)
            .current_dir(&console),
        "node build.mjs (bundles the console with esbuild)",
    );
    drop(guard);
    for f in FILES {
        if !out.join(f).is_file() {
            fail(&format!(
                "the console's bundle has no {f} in {}",
                out.display()
            ));
        }
    }
}

fn npm() -> &'static str {
    if cfg!(windows) { "npm.cmd" } else { "npm" }
}

fn modified(p: &Path) -> Option<std::time::SystemTime> {
    std::fs::metadata(p).and_then(|m| m.modified()).ok()
}

fn run(cmd: &mut Command, what: &str) {
    match cmd.status() {
        Ok(s) if s.success() => {}
        Ok(s) => fail(&format!("{what} failed ({s})")),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => fail(&format!(
            "{what}: Node.js and npm are needed to build the web console into the binary and were not found ({e}). Install them (Debian: `apt-get install nodejs npm`; Node.js 18 or newer), or build the bundle elsewhere and set THEATER_CONSOLE_DIST to it"
        )),
        Err(e) => fail(&format!("{what}: {e}")),
    }
}

fn fail(message: &str) -> ! {
    eprintln!("error: building the web console: {message}");
    std::process::exit(1);
}
