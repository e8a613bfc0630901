//! The README's commands, run as typed: every ```sh block, line by line, in a fresh
//! directory laid out like a fresh clone (the examples' manifests, their built components),
//! with this build's `theater` first on PATH, no `--data-dir` and no `THEATER_DATA_DIR`.
//! `cargo` lines are what CI itself runs (and `cargo install` is this binary), so they are
//! skipped; a line with `theater run` starts it in the background and waits for it.

use std::path::{Path, PathBuf};
use std::process::Command;

use theater_test_support::{example_component, workspace_root};

use crate::run::text;

/// The ```sh blocks of `markdown`, each as its lines.
fn sh_blocks(markdown: &str) -> Vec<Vec<String>> {
    let mut blocks = Vec::new();
    let mut current: Option<Vec<String>> = None;
    for line in markdown.lines() {
        match (&mut current, line.trim_start()) {
            (None, "```sh") => current = Some(Vec::new()),
            (Some(_), "```") => blocks.extend(current.take()),
            (Some(block), l) => block.push(l.to_string()),
            (None, _) => {}
        }
    }
    blocks
}

/// `line` without its trailing `# comment` (a `#` after a blank, outside quotes).
fn strip_comment(line: &str) -> &str {
    let (mut single, mut double, mut prev_blank) = (false, false, true);
    for (i, c) in line.char_indices() {
        match c {
            '\'' if !double => single = !single,
            '"' if !single => double = !double,
            '#' if !single && !double && prev_blank => return line[..i].trim_end(),
            _ => {}
        }
        prev_blank = c.is_whitespace();
    }
    line.trim_end()
}

/// A bash script that runs `block`'s lines in order and stops at the first that fails.
fn script(block: &[String]) -> String {
    let mut s = String::from(
        "set -euo pipefail\nRUNLOG=$(mktemp)\nRUNPID=\n\
         trap '[ -n \"$RUNPID\" ] && kill $RUNPID 2>/dev/null; rm -f \"$RUNLOG\"' EXIT\n\
         wait_api() {\n  for _ in $(seq 1 1500); do\n    \
           grep -q 'management API on' \"$RUNLOG\" && return 0\n    \
           kill -0 $RUNPID 2>/dev/null || break\n    sleep 0.2\n  done\n  \
           echo '`theater run` did not start:'; cat \"$RUNLOG\"; return 1\n}\n",
    );
    for line in block {
        let line = strip_comment(line);
        if line.is_empty() || line.starts_with("cargo ") {
            continue;
        }
        let quoted = line.replace('\'', r"'\''");
        s.push_str(&format!("echo '+ {quoted}' >&2\n"));
        let run = match line.find("theater run ") {
            Some(_) if s.contains("RUNPID=$!") => {
                panic!("a README block starts `theater run` twice: split it")
            }
            Some(at) => format!(
                "{}{{ {} >\"$RUNLOG\" 2>&1 & RUNPID=$!; }} && wait_api",
                &line[..at],
                &line[at..]
            ),
            None => line.to_string(),
        };
        s.push_str(&format!(
            "{run} || {{ echo 'README line failed: {quoted}' >&2; exit 1; }}\n"
        ));
    }
    // A block that started a host also stops it (within a minute).
    s.push_str(
        "if [ -n \"$RUNPID\" ]; then\n  for _ in $(seq 1 300); do kill -0 $RUNPID 2>/dev/null || break; sleep 0.2; done\n  \
         kill -0 $RUNPID 2>/dev/null && { echo 'the block left `theater run` running'; exit 1; }\n  \
         wait $RUNPID || exit 1; RUNPID=\nfi\n",
    );
    s
}

/// A fresh directory like a fresh clone, as far as the README's commands go.
fn fresh_clone(dir: &Path) {
    let root = workspace_root();
    for entry in std::fs::read_dir(root.join("examples")).unwrap() {
        let from = entry.unwrap().path();
        if !from.is_dir() {
            continue;
        }
        let to = dir.join("examples").join(from.file_name().unwrap());
        std::fs::create_dir_all(&to).unwrap();
        for f in std::fs::read_dir(&from).unwrap() {
            let f = f.unwrap().path();
            if f.extension().is_some_and(|e| e == "toml") && f.file_name().unwrap() != "Cargo.toml"
            {
                std::fs::copy(&f, to.join(f.file_name().unwrap())).unwrap();
            }
        }
    }
    std::fs::create_dir_all(dir.join("target")).unwrap();
    std::os::unix::fs::symlink(root.join("target/examples"), dir.join("target/examples")).unwrap();
}

#[test]
fn the_readmes_commands_work_as_typed_in_a_fresh_directory() {
    example_component("todo"); // every example built, the guest toolchain set up
    let readme = std::fs::read_to_string(workspace_root().join("README.md")).unwrap();
    let blocks = sh_blocks(&readme);
    let dir = tempfile::tempdir().unwrap();
    fresh_clone(dir.path());
    let bin_dir = PathBuf::from(env!("CARGO_BIN_EXE_theater"))
        .parent()
        .unwrap()
        .to_path_buf();
    let path = std::env::join_paths(
        std::iter::once(bin_dir).chain(std::env::split_paths(&std::env::var_os("PATH").unwrap())),
    )
    .unwrap();
    let mut ran = 0;
    let mut said = String::new();
    for block in &blocks {
        if block
            .iter()
            .all(|l| strip_comment(l).is_empty() || l.starts_with("cargo "))
        {
            continue;
        }
        let out = Command::new("bash")
            .arg("-c")
            .arg(script(block))
            .current_dir(dir.path())
            .env("PATH", &path)
            .env_remove("THEATER_DATA_DIR")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "README block {block:#?}:\n{}",
            text(&out)
        );
        said.push_str(&String::from_utf8_lossy(&out.stdout));
        ran += 1;
    }
    assert!(ran >= 3, "only {ran} README blocks ran");
    // What the blocks promise happened: the todo was stored and read back, the new actor
    // answered, and the chains verified.
    assert!(said.contains(r#""title":"try Theater""#), "{said}");
    assert!(said.contains("hello, you!"), "{said}");
    assert!(said.contains("entries verified"), "{said}");
}

#[test]
fn comments_are_stripped_outside_quotes_only() {
    assert_eq!(strip_comment("theater ps   # actors"), "theater ps");
    assert_eq!(
        strip_comment("theater send a '{\"n\": \"#1\"}' # x"),
        "theater send a '{\"n\": \"#1\"}'"
    );
    assert_eq!(strip_comment("curl a#b"), "curl a#b");
}
