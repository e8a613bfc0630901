//! File rows: a note read through an actor (the notes example: a GET input, the wasm call,
//! the recorded `files.read` with its contents in the entry or, over 16 KiB, in a blob) vs
//! reading the same file directly; and a durable write through the actor vs the same atomic,
//! fsynced write done directly. Same run, same files.

use std::fs::File;
use std::io::Write as _;
use std::path::Path;

use std::sync::Arc;

use theater_core::{ActorInput, HttpRequest};
use theater_files::FileGrant;

use crate::harness::{Better, Report, Row, spawn_example, versus};

pub(crate) fn run(report: &mut Report) -> anyhow::Result<()> {
    let reads = [
        (
            "file read through an actor (4 KiB note, memory chain)",
            4 << 10,
            2000,
        ),
        (
            "file read through an actor (256 KiB note, contents as a blob)",
            256 << 10,
            300,
        ),
    ];
    let write_name = "durable file write through an actor (4 KiB note, memory chain)";
    if !reads.iter().any(|(n, _, _)| report.wants(n)) && !report.wants(write_name) {
        return Ok(());
    }
    let rt = crate::harness::runtime()?;
    rt.block_on(async {
        let dir = tempfile::tempdir()?;
        let actor = {
            let root = dir.path().to_path_buf();
            spawn_example("notes", move |actor| {
                actor.with_grant("files", Arc::new(FileGrant::read_write(&root)))
            })
            .await?
        };
        for (name, size, n) in reads {
            if !report.wants(name) {
                continue;
            }
            let note = format!("n{size}");
            let path = dir.path().join(format!("{note}.md"));
            std::fs::write(&path, "note text\n".repeat(size / 10))?;
            // Over HTTP, as a browser would read it: the body leaves as bytes, not JSON.
            let request = ActorInput::HttpRequest(HttpRequest {
                method: "GET".into(),
                path: format!("/notes/{note}"),
                query: None,
                headers: vec![],
                body: vec![],
            });
            let (ours, base) = versus(report, n, &actor, &request, || {
                std::hint::black_box(std::fs::read(&path)?);
                Ok(())
            })
            .await?;
            report.push(Row {
                name: name.into(),
                unit: "read/s",
                ours,
                baseline_name: "std::fs::read of the same file".into(),
                baseline: base,
                better: Better::Higher,
                target: None,
            });
        }
        if report.wants(write_name) {
            let text = "note text\n".repeat(410);
            let request = ActorInput::HttpRequest(HttpRequest {
                method: "PUT".into(),
                path: "/notes/w".into(),
                query: None,
                headers: vec![],
                body: text.clone().into_bytes(),
            });
            let path = dir.path().join("direct.md");
            let (ours, base) = versus(report, 200, &actor, &request, || {
                write_atomic(&path, text.as_bytes(), dir.path())
            })
            .await?;
            report.push(Row {
                name: write_name.into(),
                unit: "write/s",
                ours,
                baseline_name: "the same atomic write (temp file, fsync, rename, fsync dir)".into(),
                baseline: base,
                better: Better::Higher,
                target: None,
            });
        }
        anyhow::Ok(())
    })
}

fn write_atomic(path: &Path, bytes: &[u8], dir: &Path) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut f = File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    File::open(dir)?.sync_all()?;
    Ok(())
}
