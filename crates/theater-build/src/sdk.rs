//! The guest SDK as this build of Theater has it, so a project made anywhere by `theater new`
//! builds against the SDK and WIT world of the host that will run it.
//!
//! The SDK is not published to a registry: `theater new` writes it into the project as
//! `theater-guest/` (a path dependency), which keeps the project self-contained (plain
//! `cargo build` works, offline too) and pins it to the host version that made it.

use std::path::Path;

/// The SDK's directory name inside a project.
pub const DIR: &str = "theater-guest";

/// The SDK's files, relative to its directory.
pub const FILES: [(&str, &str); 3] = [
    (
        "Cargo.toml",
        include_str!("../../../guest/theater-guest/Cargo.toml"),
    ),
    (
        "src/lib.rs",
        include_str!("../../../guest/theater-guest/src/lib.rs"),
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
