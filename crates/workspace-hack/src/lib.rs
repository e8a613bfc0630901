//! Feature unification for Theater's workspace: no code, only dependencies.
//!
//! `theater` depends on this crate so that `cargo xtask demo` (which runs `cargo run -p
//! theater`) and `cargo test --workspace` build every dependency with the same features, and
//! so build it once. See this crate's `Cargo.toml` for why, and its test for the check that
//! keeps it true.

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::process::Command;

    /// After `cargo test --workspace` has built everything, what `cargo xtask demo` builds
    /// (`cargo build -p theater`) finds every dependency already built. One it would build
    /// again has features only some selection turns on: the message names it, and the fix is a
    /// line in this crate's `Cargo.toml`.
    #[test]
    fn the_demos_build_reuses_every_dependency_the_tests_built() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map_or_else(|| root.join("target"), std::path::PathBuf::from);
        if !target.join("debug/theater").is_file() {
            assert!(
                std::env::var_os("CI").is_none(),
                "target/debug/theater was not built by `cargo test --workspace`"
            );
            eprintln!("skipped: run with `cargo test --workspace`, which builds the host first");
            return;
        }
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut build = Command::new(cargo);
        // Not this test's own package variables (`CARGO_PKG_NAME=workspace-hack`...): some
        // build scripts (ring's) track them, and would run again as if something had changed.
        for (key, _) in std::env::vars_os() {
            let key_text = key.to_string_lossy();
            if key_text.starts_with("CARGO_PKG_")
                || key_text.starts_with("CARGO_BIN_")
                || [
                    "CARGO_MANIFEST_DIR",
                    "CARGO_MANIFEST_PATH",
                    "CARGO_CRATE_NAME",
                    "CARGO_PRIMARY_PACKAGE",
                    "CARGO_TARGET_TMPDIR",
                    "OUT_DIR",
                ]
                .contains(&key_text.as_ref())
            {
                build.env_remove(&key);
            }
        }
        let out = build
            .current_dir(&root)
            .args([
                "build",
                "--package",
                "theater",
                "--frozen",
                "--message-format=json",
            ])
            .output()
            .expect("cargo runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        let rebuilt: Vec<&str> = stdout
            .lines()
            .filter(|l| l.contains(r#""reason":"compiler-artifact""#))
            .filter(|l| l.contains(r#""fresh":false"#))
            .filter_map(|l| {
                let id = l.split(r#""package_id":""#).nth(1)?.split('"').next()?;
                id.starts_with("registry+").then_some(id)
            })
            .collect();
        assert!(
            rebuilt.is_empty(),
            "`cargo build -p theater` rebuilt dependencies the tests had built (their features \
             differ: add them to crates/workspace-hack/Cargo.toml): {rebuilt:#?}"
        );
    }
}
