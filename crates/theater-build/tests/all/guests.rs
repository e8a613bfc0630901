//! Reading guest projects: one package, a workspace of them, and what is refused.

use std::path::Path;

use theater_build::{BuildError, Guests, encode};

fn write(dir: &Path, file: &str, text: &str) {
    let p = dir.join(file);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

const CDYLIB: &str = "[lib]\ncrate-type = [\"cdylib\"]\n";

#[test]
fn a_package_and_a_workspace_of_members() {
    let d = tempfile::tempdir().unwrap();
    write(
        d.path(),
        "Cargo.toml",
        &format!("[package]\nname = \"hello\"\n{CDYLIB}[workspace]\n"),
    );
    assert_eq!(Guests::open(d.path()).unwrap().names(), ["hello"]);

    let w = tempfile::tempdir().unwrap();
    write(
        w.path(),
        "Cargo.toml",
        "[workspace]\nmembers = [\"b-actor\", \"a\"]\n",
    );
    write(
        w.path(),
        "a/Cargo.toml",
        &format!("[package]\nname = \"a\"\n{CDYLIB}"),
    );
    write(
        w.path(),
        "b-actor/Cargo.toml",
        &format!("[package]\nname = \"b-actor\"\n{CDYLIB}"),
    );
    assert_eq!(Guests::open(w.path()).unwrap().names(), ["a", "b-actor"]);
}

#[test]
fn what_cannot_be_built_is_refused_naming_the_file_and_the_fix() {
    let d = tempfile::tempdir().unwrap();
    let e = Guests::open(d.path()).unwrap_err();
    assert!(matches!(e, BuildError::Io { .. }), "{e}");
    assert!(e.to_string().contains("Cargo.toml"), "{e}");

    write(d.path(), "Cargo.toml", "[package]\nname = \"plain\"\n");
    let e = Guests::open(d.path()).unwrap_err().to_string();
    assert!(e.contains("crate-type = [\"cdylib\"]"), "{e}");

    write(
        d.path(),
        "Cargo.toml",
        "[workspace]\nmembers = [\"actors/*\"]\n",
    );
    let e = Guests::open(d.path()).unwrap_err().to_string();
    assert!(e.contains("not by pattern"), "{e}");

    write(d.path(), "Cargo.toml", "[package\nname = ");
    let e = Guests::open(d.path()).unwrap_err().to_string();
    assert!(e.contains("Cargo.toml"), "{e}");
}

#[test]
fn encoding_refuses_what_is_not_wasm() {
    let e = encode(b"not wasm").unwrap_err();
    assert!(!e.is_empty());
}
