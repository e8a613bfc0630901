//! Building a Cargo project of Rust actors into components.

use std::path::{Path, PathBuf};

use crate::error::BuildError;
use crate::toolchain::{TARGET, Toolchain};

/// A Cargo project of guest actors: one package, or a workspace of them (the examples).
#[derive(Debug, Clone)]
pub struct Guests {
    manifest: PathBuf,
    workspace: bool,
    /// (package name, core module's file stem: the `[lib] name`, or the package's name with
    /// `-` as `_`), sorted by package name.
    guests: Vec<(String, String)>,
}

/// Where a build puts things, and how strictly it treats `Cargo.lock`.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// cargo's target directory (the core modules land in `<it>/wasm32-unknown-unknown/release`).
    pub target_dir: PathBuf,
    /// Where the components go, as `<name>.wasm`.
    pub out_dir: PathBuf,
    /// Build with `--locked` (the lock file must be up to date).
    pub locked: bool,
    /// Pass `--quiet` to cargo: only errors and warnings are shown.
    pub quiet: bool,
}

/// One component a build wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Built {
    /// The package's name.
    pub name: String,
    /// `<out_dir>/<name>.wasm`.
    pub path: PathBuf,
    /// Its size in bytes.
    pub bytes: usize,
}

fn read_toml(path: &Path) -> Result<toml::Table, BuildError> {
    let text = std::fs::read_to_string(path).map_err(|source| BuildError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    text.parse::<toml::Table>()
        .map_err(|e| BuildError::Manifest {
            path: path.to_path_buf(),
            problem: e.to_string(),
        })
}

/// What `table` says of its package, if it has one: `Ok(None)` for no package;
/// `Err(problem)` for a package that is not an actor (not a `cdylib`).
fn guest_package(table: &toml::Table) -> Result<Option<(String, String)>, String> {
    let Some(package) = table.get("package") else {
        return Ok(None);
    };
    let name = package
        .get("name")
        .and_then(toml::Value::as_str)
        .ok_or("[package] has no name")?;
    let lib = table.get("lib");
    let cdylib = lib
        .and_then(|lib| lib.get("crate-type"))
        .and_then(toml::Value::as_array)
        .is_some_and(|types| types.iter().any(|t| t.as_str() == Some("cdylib")));
    if !cdylib {
        return Err(
            "an actor is a library built as a cdylib: add [lib] crate-type = [\"cdylib\"]".into(),
        );
    }
    let stem = lib
        .and_then(|lib| lib.get("name"))
        .and_then(toml::Value::as_str)
        .map_or_else(|| name.replace('-', "_"), str::to_string);
    Ok(Some((name.to_string(), stem)))
}

impl Guests {
    /// The project whose `Cargo.toml` is in `dir`: its package, and the members its
    /// `[workspace]` lists by path.
    ///
    /// The root package must be an actor (a `cdylib`); members that are not (a shared helper
    /// library, say) are built with the workspace but yield no component. Members are listed by
    /// path; `exclude` and `default-members` are not read.
    pub fn open(dir: &Path) -> Result<Self, BuildError> {
        let manifest =
            std::path::absolute(dir.join("Cargo.toml")).map_err(|source| BuildError::Io {
                path: dir.to_path_buf(),
                source,
            })?;
        let dir = manifest.parent().unwrap_or(dir).to_path_buf();
        let table = read_toml(&manifest)?;
        let mut guests: Vec<(String, String)> = guest_package(&table)
            .map_err(|problem| BuildError::Manifest {
                path: manifest.clone(),
                problem,
            })?
            .into_iter()
            .collect();
        let workspace = table.get("workspace");
        let members = workspace
            .and_then(|w| w.get("members"))
            .and_then(toml::Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default();
        for member in members {
            let Some(member) = member.as_str() else {
                continue;
            };
            if member.contains(['*', '?', '[']) {
                return Err(BuildError::Manifest {
                    path: manifest.clone(),
                    problem: format!(
                        "workspace member {member:?}: list members by path, not by pattern"
                    ),
                });
            }
            let path = dir.join(member).join("Cargo.toml");
            if let Ok(Some(guest)) = guest_package(&read_toml(&path)?) {
                guests.push(guest);
            }
        }
        if guests.is_empty() {
            return Err(BuildError::Manifest {
                path: manifest,
                problem: "no actor package (a cdylib) here or among the workspace's members".into(),
            });
        }
        guests.sort();
        guests.dedup();
        Ok(Self {
            manifest,
            workspace: workspace.is_some() && !members.is_empty(),
            guests,
        })
    }

    /// The actor packages' names, sorted.
    pub fn names(&self) -> Vec<&str> {
        self.guests.iter().map(|(name, _)| name.as_str()).collect()
    }

    /// The project's `Cargo.toml`.
    pub fn manifest(&self) -> &Path {
        &self.manifest
    }

    /// Builds the guests with `toolchain` (cargo's messages go to standard error) and turns
    /// each core module into a component in `options.out_dir`. A component is rewritten only
    /// when it changed, so its timestamp (and caches keyed on it) stay put.
    pub fn build(
        &self,
        toolchain: &Toolchain,
        options: &BuildOptions,
    ) -> Result<Vec<Built>, BuildError> {
        let absolute = |p: &Path| {
            std::path::absolute(p).map_err(|source| BuildError::Io {
                path: p.to_path_buf(),
                source,
            })
        };
        let (target_dir, out_dir) = (absolute(&options.target_dir)?, absolute(&options.out_dir)?);
        let mut cmd = toolchain.cargo_build();
        // From the project's directory, so its own .cargo/config.toml applies.
        if let Some(dir) = self.manifest.parent() {
            cmd.current_dir(dir);
        }
        cmd.arg("--manifest-path").arg(&self.manifest);
        if self.workspace {
            cmd.arg("--workspace");
        }
        if options.locked {
            cmd.arg("--locked");
        }
        if options.quiet {
            cmd.arg("--quiet");
        }
        let cargo_failed = |problem: String| BuildError::Cargo {
            manifest: self.manifest.clone(),
            problem,
        };
        let status = cmd
            .env("CARGO_TARGET_DIR", &target_dir)
            .status()
            .map_err(|e| cargo_failed(format!("cannot run cargo: {e}")))?;
        if !status.success() {
            return Err(cargo_failed(status.to_string()));
        }
        std::fs::create_dir_all(&out_dir).map_err(|source| BuildError::Io {
            path: out_dir.clone(),
            source,
        })?;
        let release = target_dir.join(TARGET).join("release");
        self.guests
            .iter()
            .map(|(name, stem)| {
                let module = release.join(format!("{stem}.wasm"));
                let out = out_dir.join(format!("{name}.wasm"));
                let bytes = write_component(&module, &out)?;
                Ok(Built {
                    name: name.clone(),
                    path: out,
                    bytes,
                })
            })
            .collect()
    }
}

/// Encodes the core module at `module` as a component at `out`; returns its size.
fn write_component(module: &Path, out: &Path) -> Result<usize, BuildError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| BuildError::Io { path, source }
    };
    let core = std::fs::read(module).map_err(io(module))?;
    let component = encode(&core).map_err(|message| BuildError::Encode {
        module: module.to_path_buf(),
        message,
    })?;
    if std::fs::read(out).ok().as_deref() != Some(&component[..]) {
        std::fs::write(out, &component).map_err(io(out))?;
    }
    Ok(component.len())
}

/// Turns a core wasm module built with `wit-bindgen` (which embeds the world it implements)
/// into a component, validated.
pub fn encode(core: &[u8]) -> Result<Vec<u8>, String> {
    wit_component::ComponentEncoder::default()
        .module(core)
        .and_then(|e| e.validate(true).encode())
        .map_err(|e| format!("{e:#}"))
}

/// Builds the example actors of Theater's source tree at `root` (`examples/`): components in
/// `target/examples/<name>.wasm`, the guests' own target directory `target/guests` (apart
/// from the host's: another profile, maybe another rustc).
/// Sets the toolchain up first when it is missing, saying so on `log`.
pub fn build_examples(
    root: &Path,
    quiet: bool,
    log: &mut dyn std::io::Write,
) -> Result<Vec<Built>, BuildError> {
    let toolchain = Toolchain::ensure(&crate::Environment::current(), log)?;
    Guests::open(&root.join("examples"))?.build(
        &toolchain,
        &BuildOptions {
            target_dir: root.join("target/guests"),
            out_dir: root.join("target/examples"),
            locked: true,
            quiet,
        },
    )
}
