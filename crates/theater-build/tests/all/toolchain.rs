//! `Toolchain::ensure` on a stand-in machine: a temporary directory with `bin/` (first and
//! only on PATH), a rustup sysroot and a Debian prefix. The stand-in `rustup` and `apt-get`
//! append what they were asked to `log`, the file the set-up's own messages go to as well,
//! so the order of saying and doing shows.

use std::fs::OpenOptions;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use theater_build::{Environment, SetupError, TARGET, Toolchain};

struct Machine {
    dir: tempfile::TempDir,
}

/// A stand-in `rustc` at `path`: `--print sysroot` prints `sysroot`; `-vV` gives `release`
/// and LLVM `llvm`.
fn rustc(path: &Path, sysroot: &Path, release: &str, llvm: &str) {
    script(
        path,
        &format!(
            "[ \"$*\" = '--print sysroot' ] && echo {} && exit 0\n\
             [ \"$*\" = '-vV' ] && printf 'release: {release}\\nhost: x86_64-unknown-linux-gnu\\nLLVM version: {llvm}\\n' && exit 0\nexit 1",
            sysroot.display()
        ),
    );
}

fn script(path: &Path, body: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    // The stand-ins run with PATH set to their own directory only; their own tools come
    // from the system.
    std::fs::write(path, format!("#!/bin/sh\nPATH=/usr/bin:/bin\n{body}\n")).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

impl Machine {
    /// rustup's rustc and cargo on PATH, without the wasm target.
    fn new() -> Self {
        let m = Machine {
            dir: tempfile::tempdir().unwrap(),
        };
        let root = m.root();
        std::fs::create_dir_all(root.join("sysroot/lib/rustlib/x86_64-unknown-linux-gnu/lib"))
            .unwrap();
        rustc(
            &root.join("bin/rustc"),
            &root.join("sysroot"),
            "1.95.0",
            "21.1.0",
        );
        script(&root.join("bin/cargo"), "exit 0");
        m
    }

    fn root(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    fn env(&self, root_user: bool, debian: bool) -> Environment {
        Environment {
            path: self.root().join("bin").into_os_string(),
            system_prefix: self.root().join("usr"),
            is_root: root_user,
            is_debian: debian,
            cargo: None,
        }
    }

    /// The rustup sysroot already has the target.
    fn with_target(self) -> Self {
        std::fs::create_dir_all(
            self.root()
                .join("sysroot/lib/rustlib")
                .join(TARGET)
                .join("lib"),
        )
        .unwrap();
        self
    }

    /// A `rustup` that records its arguments and adds the target (or fails with `exit`).
    fn with_rustup(self, exit: i32) -> Self {
        let r = self.root();
        script(
            &r.join("bin/rustup"),
            &format!(
                "echo \"rustup $*\" >> {r}/log\n[ {exit} -ne 0 ] && exit {exit}\n\
                 [ \"$*\" = 'target add {TARGET}' ] && mkdir -p {r}/sysroot/lib/rustlib/{TARGET}/lib\nexit 0",
                r = r.display()
            ),
        );
        self
    }

    /// An `apt-get` that records its arguments and installs stand-ins of Debian's
    /// `rustc-web` (LLVM 22) and `lld-22` (or fails with `exit`).
    fn with_apt(self, exit: i32) -> Self {
        let r = self.root();
        // What the packages would install, staged for the stand-in to copy into place.
        rustc(
            &r.join("pkg/rustc"),
            &r.join("usr/lib/rust-web"),
            "1.96.0",
            "22.1.3",
        );
        script(&r.join("pkg/cargo"), "exit 0");
        script(
            &r.join("bin/apt-get"),
            &format!(
                "echo \"apt-get $*\" >> {r}/log\n[ {exit} -ne 0 ] && exit {exit}\n\
                 case \"$*\" in *rustc-web*)\n\
                   mkdir -p {r}/usr/bin {r}/usr/lib/rust-web/lib/rustlib/src/rust/library\n\
                   cp {r}/pkg/rustc {r}/pkg/cargo {r}/usr/bin/;;\n\
                 esac\n\
                 case \"$*\" in *lld-22*) mkdir -p {r}/usr/lib/llvm-22/bin; touch {r}/usr/lib/llvm-22/bin/wasm-ld;; esac\n\
                 exit 0",
                r = r.display(),
            ),
        );
        self
    }

    /// Runs the set-up, its messages appended to the same log as the stand-ins' records.
    fn ensure(&self, env: &Environment) -> Result<Toolchain, SetupError> {
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.root().join("log"))
            .unwrap();
        Toolchain::ensure(env, &mut log)
    }

    /// The log's lines: "say: ..." for the set-up's messages, the stand-ins' records as is.
    fn log(&self) -> Vec<String> {
        std::fs::read_to_string(self.root().join("log"))
            .unwrap_or_default()
            .lines()
            .map(|l| match l.strip_prefix("theater: ") {
                Some(said) => format!("say: {said}"),
                None => l.to_string(),
            })
            .collect()
    }
}

fn said(line: &str) -> bool {
    line.starts_with("say: ")
}

#[test]
fn a_toolchain_with_the_target_installs_nothing() {
    let m = Machine::new().with_target().with_rustup(0).with_apt(0);
    let t = m.ensure(&m.env(true, true)).unwrap();
    assert_eq!(
        t,
        Toolchain::Rustup {
            cargo: m.root().join("bin/cargo")
        }
    );
    assert_eq!(m.log(), Vec::<String>::new(), "nothing said, nothing run");
}

#[test]
fn a_missing_target_is_added_with_rustup_after_saying_so() {
    let m = Machine::new().with_rustup(0).with_apt(0);
    let t = m.ensure(&m.env(true, true)).unwrap();
    assert!(matches!(t, Toolchain::Rustup { .. }), "{t:?}");
    let log = m.log();
    assert_eq!(log.len(), 2, "{log:?}");
    assert!(said(&log[0]) && log[0].contains("rustup target add wasm32-unknown-unknown"));
    assert_eq!(log[1], "rustup target add wasm32-unknown-unknown");
    // Once there, nothing more happens.
    m.ensure(&m.env(true, true)).unwrap();
    assert_eq!(m.log().len(), 2);
}

#[test]
fn without_rustup_root_on_debian_installs_debians_toolchain_then_its_linker() {
    let m = Machine::new().with_apt(0);
    let t = m.ensure(&m.env(true, true)).unwrap();
    let usr = m.root().join("usr");
    assert_eq!(
        t,
        Toolchain::Debian {
            cargo: usr.join("bin/cargo"),
            rustc: usr.join("bin/rustc"),
            linker: usr.join("lib/llvm-22/bin/wasm-ld"),
        }
    );
    let log = m.log();
    let done: Vec<&str> = log
        .iter()
        .filter(|l| !said(l))
        .map(String::as_str)
        .collect();
    assert_eq!(
        done,
        [
            "apt-get update -qq",
            "apt-get install -y -qq --no-install-recommends rustc-web cargo-web rust-web-src",
            "apt-get install -y -qq --no-install-recommends lld-22",
        ]
    );
    assert!(said(&log[0]) && log[0].contains("rustc-web"), "{log:?}");
    assert!(said(&log[3]) && log[3].contains("lld-22"), "{log:?}");
    // The command line sets Debian's route up: its rustc, std from source, its linker.
    let cmd = t.cargo_build();
    let args: Vec<_> = cmd
        .get_args()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    assert!(
        args.contains(&"-Zbuild-std=std,panic_abort".to_string()),
        "{args:?}"
    );
    let env: Vec<_> = cmd
        .get_envs()
        .map(|(k, v)| {
            (
                k.to_string_lossy().into_owned(),
                v.map(|v| v.to_string_lossy().into_owned()),
            )
        })
        .collect();
    assert!(env.contains(&(
        "RUSTC".into(),
        Some(usr.join("bin/rustc").display().to_string())
    )));
    assert!(env.contains(&("RUSTUP_TOOLCHAIN".into(), None)), "{env:?}");
    assert!(
        env.contains(&("RUSTC_BOOTSTRAP".into(), Some("1".into()))),
        "{env:?}"
    );
    assert!(env.contains(&(
        "CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_LINKER".into(),
        Some(usr.join("lib/llvm-22/bin/wasm-ld").display().to_string())
    )));
    assert!(env.contains(&(
        "RUSTDOC".into(),
        Some(usr.join("bin/rustdoc").display().to_string())
    )));
}

#[test]
fn debians_toolchain_without_its_linker_gets_only_the_linker() {
    let m = Machine::new().with_apt(0);
    // The toolchain packages are there already; only lld is missing.
    std::process::Command::new(m.root().join("bin/apt-get"))
        .args(["install", "rustc-web"])
        .status()
        .unwrap();
    std::fs::remove_file(m.root().join("log")).unwrap();
    let t = m.ensure(&m.env(true, true)).unwrap();
    assert!(matches!(t, Toolchain::Debian { .. }), "{t:?}");
    let done: Vec<String> = m.log().into_iter().filter(|l| !said(l)).collect();
    assert_eq!(
        done,
        [
            "apt-get update -qq",
            "apt-get install -y -qq --no-install-recommends lld-22"
        ]
    );
}

#[test]
fn a_failing_rustup_falls_back_to_debians_packages() {
    let m = Machine::new().with_rustup(1).with_apt(0);
    let t = m.ensure(&m.env(true, true)).unwrap();
    assert!(matches!(t, Toolchain::Debian { .. }), "{t:?}");
    let done: Vec<String> = m.log().into_iter().filter(|l| !said(l)).collect();
    assert_eq!(done[0], "rustup target add wasm32-unknown-unknown");
    assert_eq!(done[1], "apt-get update -qq");
    assert_eq!(done.len(), 4, "{done:?}");
}

#[test]
fn a_failed_install_is_an_error_naming_what_to_run() {
    // rustup fails and this user may not install packages: apt-get is never asked.
    let m = Machine::new().with_rustup(1).with_apt(0);
    let e = m.ensure(&m.env(false, true)).unwrap_err().to_string();
    assert!(
        e.contains("rustup target add wasm32-unknown-unknown` failed"),
        "{e}"
    );
    assert!(
        e.contains("\n  rustup target add wasm32-unknown-unknown\n"),
        "{e}"
    );
    assert!(
        e.contains("apt-get install rustc-web cargo-web rust-web-src"),
        "{e}"
    );
    assert_eq!(
        m.log().iter().filter(|l| l.starts_with("apt-get")).count(),
        0
    );

    // apt-get fails too: both failures are named.
    let m = Machine::new().with_rustup(1).with_apt(100);
    let e = m.ensure(&m.env(true, true)).unwrap_err().to_string();
    assert!(
        e.contains("rustup target add wasm32-unknown-unknown` failed"),
        "{e}"
    );
    assert!(e.contains("apt-get update -qq` failed"), "{e}");
}

#[test]
fn with_nothing_to_install_with_the_error_says_what_to_install() {
    // No rustup, not Debian: nothing is run, and the message names both routes.
    let m = Machine::new().with_apt(0);
    let e = m.ensure(&m.env(true, false)).unwrap_err();
    assert!(matches!(&e, SetupError::NoToolchain { failures } if failures.is_empty()));
    let e = e.to_string();
    assert!(
        e.contains("rustup target add wasm32-unknown-unknown"),
        "{e}"
    );
    assert!(e.contains("lld-NN"), "{e}");
    assert_eq!(m.log(), Vec::<String>::new());
}
