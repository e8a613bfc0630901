//! What can go wrong setting up the toolchain and building a guest.

use std::path::PathBuf;

use crate::toolchain::{DEBIAN_PACKAGES, TARGET};

/// No toolchain that builds `wasm32` guests could be found or installed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SetupError {
    /// Neither route exists, and installing one failed or was not possible.
    #[error(
        "no Rust toolchain here builds {TARGET} guests{}.\nInstall one, then build again: with \
         rustup (https://rustup.rs)\n  rustup target add {TARGET}\nor, on Debian without \
         rustup (as root):\n  \
         apt-get install {} lld-NN   (NN: the LLVM major in `/usr/bin/rustc -vV`)",
        tried(.failures),
        DEBIAN_PACKAGES.join(" ")
    )]
    NoToolchain {
        /// What was tried, and how it failed (empty when there was nothing to try).
        failures: Vec<String>,
    },
}

fn tried(failures: &[String]) -> String {
    if failures.is_empty() {
        String::new()
    } else {
        format!(" (tried: {})", failures.join("; "))
    }
}

/// Building a guest into a component failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// No toolchain.
    #[error(transparent)]
    Setup(#[from] SetupError),
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A `Cargo.toml` does not describe a guest that can be built.
    #[error("{}: {problem}", path.display())]
    Manifest {
        /// The `Cargo.toml`.
        path: PathBuf,
        /// What is wrong with it.
        problem: String,
    },
    /// cargo could not run, or the build failed (its own messages went to standard error).
    #[error("building the guests of {} failed: {problem}", manifest.display())]
    Cargo {
        /// The `Cargo.toml` built.
        manifest: PathBuf,
        /// cargo's exit status, or why it did not start.
        problem: String,
    },
    /// The core module could not be turned into a component of Theater's world.
    #[error("turning {} into a component: {message}", module.display())]
    Encode {
        /// The core wasm module.
        module: PathBuf,
        /// wit-component's explanation.
        message: String,
    },
}
