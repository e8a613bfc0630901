//! Finding, and when it is missing installing, a toolchain that builds `wasm32` guests.

use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::SetupError;

/// The target guests are built for: no WASI, nothing imported but Theater's own world.
pub const TARGET: &str = "wasm32-unknown-unknown";

/// The Debian packages of the fallback route (the LLVM linker `lld-NN` comes after them,
/// once `rustc -vV` has said which LLVM it was built with).
pub const DEBIAN_PACKAGES: [&str; 3] = ["rustc-web", "cargo-web", "rust-web-src"];

/// What the toolchain search looks at: the programs on `path`, Debian's toolchain under
/// `system_prefix`, and whether packages may be installed. [`Environment::current`] reads
/// this machine; tests point it at stand-in programs.
#[derive(Debug, Clone)]
pub struct Environment {
    /// The directories searched for `cargo`, `rustc`, `rustup` and `apt-get`, as in `PATH`.
    pub path: OsString,
    /// Where Debian's `rustc-web` puts `bin/rustc`, `bin/cargo` and `lib/llvm-NN` (`/usr`).
    pub system_prefix: PathBuf,
    /// Whether this process may install system packages (it runs as root).
    pub is_root: bool,
    /// Whether this is a Debian (or derived) system, so `apt-get` has the packages.
    pub is_debian: bool,
    /// The `cargo` of the rustup route when not the one on `path` (cargo sets `$CARGO` for
    /// the programs it runs, so `cargo xtask` builds guests with its own toolchain).
    pub cargo: Option<PathBuf>,
}

impl Environment {
    /// This machine, this process.
    pub fn current() -> Self {
        Self {
            path: std::env::var_os("PATH").unwrap_or_default(),
            system_prefix: PathBuf::from("/usr"),
            is_root: rustix::process::geteuid().is_root(),
            is_debian: Path::new("/etc/debian_version").is_file(),
            cargo: std::env::var_os("CARGO").map(PathBuf::from),
        }
    }

    /// The first `program` on `path`.
    fn find(&self, program: &str) -> Option<PathBuf> {
        std::env::split_paths(&self.path)
            .map(|dir| dir.join(program))
            .find(|p| p.is_file())
    }

    /// Runs `program args` with this environment's `PATH`; its standard output when it
    /// succeeds.
    fn output(&self, program: &Path, args: &[&str]) -> Option<String> {
        let out = Command::new(program)
            .args(args)
            .env("PATH", &self.path)
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// Runs `program args` for an installation, its output going to this process's own.
    fn install(&self, program: &Path, args: &[&str]) -> Result<(), String> {
        let command = format!("{} {}", program.display(), args.join(" "));
        match Command::new(program)
            .args(args)
            .env("PATH", &self.path)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
        {
            Ok(s) if s.success() => Ok(()),
            Ok(s) => Err(format!("`{command}` failed ({s})")),
            Err(e) => Err(format!("`{command}` could not run: {e}")),
        }
    }

    fn sysroot(&self, rustc: &Path) -> Option<PathBuf> {
        self.output(rustc, &["--print", "sysroot"])
            .map(PathBuf::from)
    }
}

/// A way to build `wasm32` guests that exists on this machine.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Toolchain {
    /// The Rust toolchain on `PATH` (rustup's, usually) has the `wasm32` target.
    Rustup {
        /// Its cargo.
        cargo: PathBuf,
    },
    /// Debian's `rustc-web`, building the standard library from `rust-web-src`, linked by
    /// LLVM's `wasm-ld`.
    Debian {
        /// `<prefix>/bin/cargo`.
        cargo: PathBuf,
        /// `<prefix>/bin/rustc`.
        rustc: PathBuf,
        /// `wasm-ld` of `lld-NN`, or rustup's `rust-lld`.
        linker: PathBuf,
    },
}

impl Toolchain {
    /// The first route that works here as it is, installing nothing.
    pub fn find(env: &Environment) -> Option<Self> {
        Self::find_rustup(env).or_else(|| Self::find_debian(env).ok())
    }

    /// The route [`Toolchain::find`] finds; when there is none, installs one and says what
    /// and why on `log` first: `rustup target add wasm32-unknown-unknown` where rustup
    /// exists, else (as root on Debian) Debian's `rustc-web` packages through `apt-get`. When
    /// nothing works, the error names the commands to run.
    pub fn ensure(env: &Environment, log: &mut dyn Write) -> Result<Self, SetupError> {
        if let Some(found) = Self::find(env) {
            return Ok(found);
        }
        let mut failures = Vec::new();
        if let Some(rustup) = env.find("rustup") {
            let _ = writeln!(
                log,
                "theater: actors compile to {TARGET}, which this Rust toolchain lacks; \
                 installing it: rustup target add {TARGET}"
            );
            match env.install(&rustup, &["target", "add", TARGET]) {
                Ok(()) => match Self::find(env) {
                    Some(found) => return Ok(found),
                    None => failures.push(format!(
                        "`rustup target add {TARGET}` succeeded, yet no `rustc` with the target \
                         and `cargo` beside it is on PATH"
                    )),
                },
                Err(e) => failures.push(e),
            }
        }
        match Self::install_debian(env, log) {
            Ok(Some(found)) => Ok(found),
            Ok(None) => Err(SetupError::NoToolchain { failures }),
            Err(e) => {
                failures.push(e);
                Err(SetupError::NoToolchain { failures })
            }
        }
    }

    fn find_rustup(env: &Environment) -> Option<Self> {
        let rustc = env.find("rustc")?;
        let sysroot = env.sysroot(&rustc)?;
        if !sysroot
            .join("lib/rustlib")
            .join(TARGET)
            .join("lib")
            .is_dir()
        {
            return None;
        }
        let cargo = env.cargo.clone().or_else(|| env.find("cargo"))?;
        Some(Self::Rustup { cargo })
    }

    /// Debian's route if it is complete; otherwise what is missing, as packages to install.
    fn find_debian(env: &Environment) -> Result<Self, Vec<String>> {
        let bin = env.system_prefix.join("bin");
        let (rustc, cargo) = (bin.join("rustc"), bin.join("cargo"));
        let missing = || DEBIAN_PACKAGES.iter().map(|p| p.to_string()).collect();
        if !(rustc.is_file() && cargo.is_file()) {
            return Err(missing());
        }
        let has_src = env
            .sysroot(&rustc)
            .is_some_and(|s| s.join("lib/rustlib/src/rust/library").is_dir());
        let verbose = env.output(&rustc, &["-vV"]).unwrap_or_default();
        // Debian's own `rustc` (1.63 in bookworm) also ships sources, but cannot build the
        // guests (edition 2024): only `rustc-web`'s is new enough.
        if !(has_src && new_enough(&verbose)) {
            return Err(missing());
        }
        let llvm = llvm_major(&verbose).ok_or_else(|| vec!["lld".to_string()])?;
        let wasm_ld = env
            .system_prefix
            .join(format!("lib/llvm-{llvm}/bin/wasm-ld"));
        // rustup's own linker also links wasm, where rustup exists; asked only when needed.
        let rust_lld = || {
            let rustup_rustc = env.find("rustc")?;
            let host = field(&env.output(&rustup_rustc, &["-vV"])?, "host: ")?;
            let lld = env
                .sysroot(&rustup_rustc)?
                .join(format!("lib/rustlib/{host}/bin/rust-lld"));
            lld.is_file().then_some(lld)
        };
        match Some(wasm_ld).filter(|p| p.is_file()).or_else(rust_lld) {
            Some(linker) => Ok(Self::Debian {
                cargo,
                rustc,
                linker,
            }),
            None => Err(vec![format!("lld-{llvm}")]),
        }
    }

    /// Installs what Debian's route lacks, when this process may: `Ok(None)` when it may
    /// not (not root, not Debian, no apt-get).
    fn install_debian(env: &Environment, log: &mut dyn Write) -> Result<Option<Self>, String> {
        let apt = match env.find("apt-get") {
            Some(apt) if env.is_root && env.is_debian => apt,
            _ => return Ok(None),
        };
        let mut updated = false;
        // Two rounds at most: the toolchain packages, then the linker that matches them.
        for _ in 0..2 {
            let missing = match Self::find_debian(env) {
                Ok(found) => return Ok(Some(found)),
                Err(missing) => missing,
            };
            let _ = writeln!(
                log,
                "theater: no Rust toolchain here builds {TARGET}; installing Debian's: \
                 apt-get install {}",
                missing.join(" ")
            );
            if !updated {
                env.install(&apt, &["update", "-qq"])?;
                updated = true;
            }
            let mut args = vec!["install", "-y", "-qq", "--no-install-recommends"];
            args.extend(missing.iter().map(String::as_str));
            env.install(&apt, &args)?;
        }
        Self::find_debian(env).map(Some).map_err(|missing| {
            format!(
                "after apt-get, Debian's toolchain still lacks {}",
                missing.join(", ")
            )
        })
    }

    /// `cargo build --release --target wasm32-unknown-unknown`, set up for this route (with
    /// the standard library built from source on Debian's).
    pub fn cargo_build(&self) -> Command {
        match self {
            Self::Rustup { cargo } => {
                let mut c = Command::new(cargo);
                c.args(["build", "--release", "--target", TARGET]);
                c
            }
            Self::Debian {
                cargo,
                rustc,
                linker,
            } => {
                let mut c = Command::new(cargo);
                c.env_remove("RUSTUP_TOOLCHAIN")
                    .env("RUSTC", rustc)
                    .env("RUSTDOC", rustc.with_file_name("rustdoc"))
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
        }
    }
}

/// The value of the line of `rustc -vV`'s output that starts with `prefix`.
fn field(verbose_version: &str, prefix: &str) -> Option<String> {
    verbose_version
        .lines()
        .find_map(|l| l.strip_prefix(prefix))
        .map(|v| v.trim().to_string())
}

/// The LLVM major version in `rustc -vV`'s output.
fn llvm_major(verbose_version: &str) -> Option<String> {
    field(verbose_version, "LLVM version: ")
        .and_then(|v| v.split('.').next().map(str::to_string))
        .filter(|m| !m.is_empty() && m.bytes().all(|b| b.is_ascii_digit()))
}

/// The oldest rustc that builds the guests (edition 2024).
const MIN_RUSTC: (u32, u32) = (1, 85);

/// Whether `rustc -vV`'s `release:` is at least [`MIN_RUSTC`].
fn new_enough(verbose_version: &str) -> bool {
    let Some(release) = field(verbose_version, "release: ") else {
        return false;
    };
    let mut parts = release.split(['.', '-']).map(|p| p.parse::<u32>().ok());
    match (parts.next().flatten(), parts.next().flatten()) {
        (Some(major), Some(minor)) => (major, minor) >= MIN_RUSTC,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn llvm_major_reads_rustc_vv() {
        let vv =
            "rustc 1.96.0\nbinary: rustc\nhost: x86_64-unknown-linux-gnu\nLLVM version: 22.1.3\n";
        assert_eq!(llvm_major(vv).as_deref(), Some("22"));
        assert_eq!(llvm_major("rustc 1.96.0\n"), None);
        assert_eq!(llvm_major("LLVM version: x.1\n"), None);
    }

    #[test]
    fn only_a_rustc_that_knows_edition_2024_will_do() {
        assert!(new_enough("release: 1.96.0\n"));
        assert!(new_enough("release: 1.85.0-beta.2\n"));
        assert!(!new_enough("release: 1.63.0\n"));
        assert!(!new_enough("rustc 1.96.0\n"));
    }
}
