//! The guest SDK as this build of Theater has it, so a project made anywhere by `theater new`
//! builds against the SDK and WIT world of the host that will run it.
//!
//! The SDK is not published to a registry: `theater new` writes it into the project as
//! `theater-guest/` (a path dependency), which keeps the project self-contained (plain
//! `cargo build` works, offline once its crates.io dependencies are in cargo's cache) and
//! pins it to the host version that made it.

use std::path::Path;

/// The SDK's directory name inside a project.
pub const DIR: &str = "theater-guest";

/// The SDK's files, relative to its directory.
pub const FILES: [(&str, &str); 4] = [
    (
        "Cargo.toml",
        include_str!("../../../guest/theater-guest/Cargo.toml"),
    ),
    (
        "src/lib.rs",
        include_str!("../../../guest/theater-guest/src/lib.rs"),
    ),
    (
        "src/io.rs",
        include_str!("../../../guest/theater-guest/src/io.rs"),
    ),
    ("wit/actor.wit", include_str!("../../../wit/actor.wit")),
];

/// Writes the SDK into `project/theater-guest/`.
pub fn write(project: &Path) -> std::io::Result<()> {
    for (file, text) in FILES {
        let path = project.join(DIR).join(file);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&path, text)?;
    }
    Ok(())
}

/// `None` when `project`'s SDK is the one of this build (or the project has none of its
/// own); otherwise which file differs, for a warning: a guest built against another world
/// may not load in this host.
pub fn differs(project: &Path) -> Option<String> {
    let dir = project.join(DIR);
    if !dir.is_dir() {
        return None;
    }
    FILES.iter().find_map(|(file, text)| {
        let path = dir.join(file);
        (std::fs::read_to_string(&path).ok().as_deref() != Some(*text))
            .then(|| path.display().to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every file of the SDK in the source tree is embedded, with its current text: a file
    /// added to `guest/theater-guest` (or to `wit/`) and not to [`FILES`] fails here.
    #[test]
    fn the_embedded_sdk_is_the_source_trees() {
        let sdk = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../guest/theater-guest");
        let mut on_disk = Vec::new();
        let mut dirs = vec![sdk.clone()];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).expect("the SDK's directory") {
                let path = entry.expect("an entry").path();
                if path.is_dir() {
                    dirs.push(path);
                } else {
                    let rel = path.strip_prefix(&sdk).expect("under the SDK");
                    on_disk.push(rel.to_string_lossy().into_owned());
                }
            }
        }
        on_disk.sort();
        let mut embedded: Vec<String> = FILES.iter().map(|(f, _)| f.to_string()).collect();
        embedded.sort();
        assert_eq!(on_disk, embedded);
        for (file, text) in FILES {
            assert_eq!(
                std::fs::read_to_string(sdk.join(file)).ok().as_deref(),
                Some(text)
            );
        }
    }

    #[test]
    fn a_written_sdk_is_this_ones_until_changed() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        assert_eq!(differs(dir.path()), None, "no SDK of its own");
        write(dir.path()).expect("written");
        assert_eq!(differs(dir.path()), None);
        std::fs::write(dir.path().join(DIR).join("wit/actor.wit"), "package x:y;\n")
            .expect("changed");
        let changed = differs(dir.path()).expect("a difference");
        assert!(changed.ends_with("actor.wit"), "{changed}");
    }
}
