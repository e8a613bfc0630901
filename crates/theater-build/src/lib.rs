//! # theater-build
//!
//! Builds Rust actors into the WebAssembly components Theater runs: what `theater build`,
//! `cargo xtask build-examples` and the tests that need example components share.
//!
//! | step | what it does |
//! |---|---|
//! | [`Toolchain::ensure`] | finds a way to build `wasm32-unknown-unknown` guests; when there is none, installs one (`rustup target add`, or Debian's `rustc-web` through `apt-get` as root), saying so first |
//! | [`Guests::open`] | reads a project's `Cargo.toml`: one actor package, or a workspace of them |
//! | [`Guests::build`] | `cargo build --release --target wasm32-unknown-unknown`, then each core module encoded as a component ([`encode`]) |
//! | [`sdk`] | the guest SDK (`theater-guest`) and the WIT world, as this build of Theater has them, to write into a new project |
//!
//! ```no_run
//! use std::path::Path;
//! use theater_build::{BuildOptions, Environment, Guests, Toolchain};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let toolchain = Toolchain::ensure(&Environment::current(), &mut std::io::stderr())?;
//! let dir = Path::new("hello");
//! let built = Guests::open(dir)?.build(
//!     &toolchain,
//!     &BuildOptions {
//!         target_dir: dir.join("target"),
//!         out_dir: dir.join("target/theater"),
//!         locked: false,
//!         quiet: false,
//!     },
//! )?;
//! println!("{} ({} bytes)", built[0].path.display(), built[0].bytes);
//! # Ok(())
//! # }
//! ```

mod error;
mod guest;
pub mod sdk;
mod toolchain;

pub use error::{BuildError, SetupError};
pub use guest::{BuildOptions, Built, Guests, build_examples, encode};
pub use toolchain::{DEBIAN_PACKAGES, Environment, TARGET, Toolchain};
