//! Building a Cargo project of Rust actors into components.

use std::path::{Path, PathBuf};

use crate::error::BuildError;
use crate::toolchain::{TARGET, Toolchain};

/// A Cargo project of guest actors: one package, or a workspace of them (the examples).
#[derive(Debug, Clone)]
pub struct Guests {
    manifest: PathBuf,
    workspace: bool,
    names: Vec<String>,
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
    /// Build only these packages (default: all of them).
    pub only: Option<Vec<String>>,
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

/// The name of the package described by `table`, checked to be a guest (a `cdylib`).
fn guest_package(path: &Path, table: &toml::Table) -> Result<Option<String>, BuildError> {
    let Some(package) = table.get("package") else {
        return Ok(None);
    };
    let bad = |problem: &str| BuildError::Manifest {
        path: path.to_path_buf(),
        problem: problem.to_string(),
    };
    let name = package
        .get("name")
        .and_then(toml::Value::as_str)
        .ok_or_else(|| bad("[package] has no name"))?;
    let cdylib = table
        .get("lib")
        .and_then(|lib| lib.get("crate-type"))
        .and_then(toml::Value::as_array)
        .is_some_and(|types| types.iter().any(|t| t.as_str() == Some("cdylib")));
    if !cdylib {
        return Err(bad(
            "an actor is a library built as a cdylib: add [lib] crate-type = [\"cdylib\"]",
        ));
    }
    Ok(Some(name.to_string()))
}

impl Guests {
    /// The project whose `Cargo.toml` is in `dir`: its package, and the members its
    /// `[workspace]` lists by path.
    pub fn open(dir: &Path) -> Result<Self, BuildError> {
        let manifest = dir.join("Cargo.toml");
        let table = read_toml(&manifest)?;
        let mut names: Vec<String> = guest_package(&manifest, &table)?.into_iter().collect();
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
            if let Some(name) = guest_package(&path, &read_toml(&path)?)? {
                names.push(name);
            }
        }
        if names.is_empty() {
            return Err(BuildError::Manifest {
                path: manifest,
                problem: "no [package] and no workspace members: nothing to build".into(),
            });
        }
        names.sort();
        names.dedup();
        Ok(Self {
            manifest,
            workspace: workspace.is_some() && !members.is_empty(),
            names,
        })
    }

    /// The packages' names, sorted.
    pub fn names(&self) -> &[String] {
        &self.names
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
        let names = match &options.only {
            Some(only) => {
                if let Some(unknown) = only.iter().find(|n| !self.names.contains(n)) {
                    return Err(BuildError::Manifest {
                        path: self.manifest.clone(),
                        problem: format!(
                            "no guest package {unknown:?} (there are: {})",
                            self.names.join(", ")
                        ),
                    });
                }
                only.clone()
            }
            None => self.names.clone(),
        };
        let mut cmd = toolchain.cargo_build();
        cmd.arg("--manifest-path").arg(&self.manifest);
        if self.workspace && options.only.is_none() {
            cmd.arg("--workspace");
        } else {
            for name in &names {
                cmd.args(["--package", name]);
            }
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
            .env("CARGO_TARGET_DIR", &options.target_dir)
            .status()
            .map_err(|e| cargo_failed(format!("cannot run cargo: {e}")))?;
        if !status.success() {
            return Err(cargo_failed(status.to_string()));
        }
        std::fs::create_dir_all(&options.out_dir).map_err(|source| BuildError::Io {
            path: options.out_dir.clone(),
            source,
        })?;
        let release = options.target_dir.join(TARGET).join("release");
        names
            .iter()
            .map(|name| {
                let module = release.join(format!("{}.wasm", name.replace('-', "_")));
                let out = options.out_dir.join(format!("{name}.wasm"));
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

/// Builds the example actors of Theater's source tree at `root` (`examples/`, or only the
/// ones named): components in `target/examples/<name>.wasm`, the guests' own target
/// directory `target/guests` (apart from the host's: another profile, maybe another rustc).
/// Sets the toolchain up first when it is missing, saying so on `log`.
pub fn build_examples(
    root: &Path,
    only: Option<Vec<String>>,
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
            only,
            quiet,
        },
    )
}
