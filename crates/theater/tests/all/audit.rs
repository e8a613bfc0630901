//! The audit log of a real host: every entry of a multi-actor run is proved and verified
//! offline (with a witness's cosignature), bundles that changed fail, checkpoints are one
//! history, and a chain rewritten after it was logged is refused.

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use theater_chain::{ChainStore, FileStore};

use crate::run::{Running, bin, http, manifest, text};

/// A `theater witness` process, killed when dropped.
struct WitnessProc {
    child: Child,
    url: String,
    vkey: String,
}

impl WitnessProc {
    fn start(dir: &Path, log_vkey: &str) -> WitnessProc {
        let child = bin()
            .args([
                "witness",
                "--listen",
                "127.0.0.1:0",
                "--name",
                "witness.test",
            ])
            .arg("--dir")
            .arg(dir)
            .args(["--log", log_vkey])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let started = Instant::now();
        while !dir.join("witness.vkey").is_file() {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "the witness never started"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(Duration::from_millis(50));
        WitnessProc {
            child,
            url: format!(
                "http://{}",
                std::fs::read_to_string(dir.join("witness.addr")).unwrap()
            ),
            vkey: std::fs::read_to_string(dir.join("witness.vkey")).unwrap(),
        }
    }
}

impl Drop for WitnessProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn manifests(dir: &Path) -> Vec<PathBuf> {
    vec![
        manifest(dir, "counter", "counter", ""),
        manifest(
            dir,
            "todo",
            "todo",
            "[interfaces.http]\naddr = \"127.0.0.1:0\"\n",
        ),
        manifest(dir, "pingpong", "ping", "[interfaces.msg]\n"),
        manifest(dir, "pingpong", "pong", "[interfaces.msg]\n"),
    ]
}

fn run_audited(data: &Path, manifests: &[PathBuf]) -> Running {
    let mut cmd = bin();
    cmd.arg("run")
        .arg("--audit")
        .args(manifests)
        .stderr(Stdio::null());
    Running::start_cmd(cmd, data)
}

/// Some of everything: requests, messages, HTTP, actors messaging each other.
fn work(host: &mut Running, round: i64) {
    host.json(&[
        "send",
        "counter",
        &format!("{{\"add\": {round}}}"),
        "--request",
    ]);
    host.json(&["send", "counter", "{\"add\": 1}"]);
    let line = host.wait_for("todo serves HTTP at");
    let addr = line.rsplit("http://").next().unwrap().to_string();
    let (status, body) = http(&addr, "POST", "/todos", "", "{\"title\": \"audit me\"}");
    assert_eq!(status, 201, "{body}");
    let (status, _) = http(&addr, "GET", "/todos", "", "");
    assert_eq!(status, 200);
    host.json(&[
        "send",
        "ping",
        "{\"serve\": \"pong\", \"rounds\": 3}",
        "--request",
    ]);
}

/// `theater audit verify BUNDLE ARGS...` (no host, no data directory).
fn audit_verify(bundle: &Path, args: &[&str]) -> std::process::Output {
    bin()
        .args(["audit", "verify"])
        .arg(bundle)
        .args(args)
        .output()
        .unwrap()
}

fn cli(data: &Path, args: &[&str]) -> std::process::Output {
    bin()
        .args(args)
        .arg("--data-dir")
        .arg(data)
        .env_remove("THEATER_DATA_DIR")
        .output()
        .unwrap()
}

#[test]
fn every_entry_of_a_multi_actor_run_is_proved_and_verified_offline_with_a_witness() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let ms = manifests(dir.path());

    // A first run makes the host's key; its checkpoint at shutdown has no witness yet.
    let mut host = run_audited(&data, &ms);
    assert!(
        host.wait_for("checkpoints signed by").contains("theater/"),
        "the default origin"
    );
    work(&mut host, 1);
    host.stop();
    let out = cli(&data, &["key"]);
    assert!(out.status.success(), "{}", text(&out));
    let vkey = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(data.join("audit/log.key"))
            .unwrap()
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
    let first = dir.path().join("first.checkpoint");
    std::fs::copy(data.join("audit/checkpoint"), &first).unwrap();

    // Then with a witness, named in the host's configuration, checkpoints every 200 ms.
    let witness = WitnessProc::start(&dir.path().join("witness"), &vkey);
    let config = dir.path().join("host.toml");
    let listed: Vec<String> = ms
        .iter()
        .map(|m| format!("{:?}", m.display().to_string()))
        .collect();
    std::fs::write(
        &config,
        format!(
            "manifests = [{}]\n\n[audit]\ncheckpoint_ms = 200\nwitnesses = [{{ url = {:?}, key = {:?} }}]\n",
            listed.join(", "),
            witness.url,
            witness.vkey
        ),
    )
    .unwrap();
    let mut cmd = bin();
    cmd.arg("run")
        .arg("--config")
        .arg(&config)
        .stderr(Stdio::null());
    let mut host = Running::start_cmd(cmd, &data);
    work(&mut host, 2);
    // On demand, while it runs: a checkpoint, cosigned, and a proof under it.
    let out = host.cli(&["checkpoint"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("— witness.test "), "{}", text(&out));
    let out = host.cli(&["audit", "prove", "todo", "1"]);
    assert!(out.status.success(), "{}", text(&out));
    host.stop();
    let cosigned = std::fs::read_to_string(data.join("audit/checkpoint")).unwrap();
    assert!(cosigned.contains("— witness.test "), "{cosigned}");

    // Every entry of every actor: a bundle, verified with no host, cosigned by the witness.
    let bundle = dir.path().join("bundle.json");
    let mut proved = 0;
    for actor in ["counter", "todo", "ping", "pong"] {
        let chain = FileStore::open_read_only(data.join("chains").join(actor)).unwrap();
        assert!(chain.len() > 1, "{actor} did something");
        for seq in 0..chain.len() {
            let out = cli(
                &data,
                &[
                    "audit",
                    "prove",
                    actor,
                    &seq.to_string(),
                    "-o",
                    bundle.to_str().unwrap(),
                ],
            );
            assert!(out.status.success(), "{actor} {seq}: {}", text(&out));
            let out = audit_verify(&bundle, &["--key", &vkey, "--witness", &witness.vkey]);
            assert!(out.status.success(), "{actor} {seq}: {}", text(&out));
            assert!(
                text(&out).contains("cosigned by witness.test"),
                "{}",
                text(&out)
            );
            proved += 1;
        }
    }
    assert!(proved >= 16, "{proved}");

    // With the entry itself; then one changed byte anywhere in the file fails.
    let out = cli(
        &data,
        &[
            "audit",
            "prove",
            "counter",
            "1",
            "--entry",
            "-o",
            bundle.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let verify = |path: &Path| audit_verify(path, &["--key", &vkey, "--witness", &witness.vkey]);
    let out = verify(&bundle);
    assert!(
        text(&out).contains("the entry is included and matches"),
        "{}",
        text(&out)
    );
    // With the chain and the component: the history up to it is the committed one, and the
    // code produces it.
    let counter_chain = data.join("chains/counter");
    let out = audit_verify(
        &bundle,
        &[
            "--key",
            &vkey,
            "--chain",
            counter_chain.to_str().unwrap(),
            "--manifest",
            ms[0].to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("the actor's code produces it"),
        "{}",
        text(&out)
    );
    let todo_chain = data.join("chains/todo");
    let out = audit_verify(
        &bundle,
        &["--key", &vkey, "--chain", todo_chain.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let bytes = std::fs::read(&bundle).unwrap();
    let changed = dir.path().join("changed.json");
    for at in (0..bytes.len()).step_by(7) {
        let mut b = bytes.clone();
        b[at] ^= 0x01;
        if b[at].is_ascii_whitespace() && bytes[at].is_ascii_whitespace() {
            continue; // JSON whitespace between tokens changes nothing
        }
        std::fs::write(&changed, &b).unwrap();
        let out = verify(&changed);
        assert_eq!(
            out.status.code(),
            Some(1),
            "byte {at} changed and it verifies: {}",
            text(&out)
        );
    }

    // The two checkpoints are one history; a wrong key is named.
    let out = cli(
        &data,
        &[
            "audit",
            "consistency",
            first.to_str().unwrap(),
            data.join("audit/checkpoint").to_str().unwrap(),
            "--key",
            &vkey,
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("consistent"), "{}", text(&out));
    let out = cli(
        &data,
        &[
            "audit",
            "consistency",
            first.to_str().unwrap(),
            data.join("audit/checkpoint").to_str().unwrap(),
            "--key",
            &witness.vkey,
        ],
    );
    assert!(!out.status.success(), "{}", text(&out));

    // A rotated key: new checkpoints are signed by the new one; a bundle from before still
    // verifies with the old key, a new one only with the new key.
    let old_bundle = dir.path().join("old-bundle.json");
    let out = cli(
        &data,
        &[
            "audit",
            "prove",
            "counter",
            "1",
            "-o",
            old_bundle.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let out = cli(&data, &["key", "--rotate"]);
    assert!(out.status.success(), "{}", text(&out));
    let new_vkey = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert_ne!(new_vkey, vkey);
    assert_eq!(
        new_vkey.split('+').next(),
        vkey.split('+').next(),
        "the same origin"
    );
    let host = run_audited(&data, &ms);
    host.json(&["send", "counter", "{\"add\": 9}", "--request"]);
    let out = host.cli(&["checkpoint"]);
    assert!(out.status.success(), "{}", text(&out));
    host.stop();
    let new_bundle = dir.path().join("new-bundle.json");
    let out = cli(
        &data,
        &[
            "audit",
            "prove",
            "counter",
            "1",
            "-o",
            new_bundle.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    for (path, key, ok) in [
        (&old_bundle, &vkey, true),
        (&new_bundle, &new_vkey, true),
        (&new_bundle, &vkey, false),
    ] {
        let out = audit_verify(path, &["--key", key]);
        assert_eq!(
            out.status.success(),
            ok,
            "{}: {}",
            path.display(),
            text(&out)
        );
    }
}

#[test]
fn a_chain_rewritten_after_it_was_logged_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let counter = vec![manifest(dir.path(), "counter", "counter", "")];
    let host = run_audited(&data, &counter);
    host.json(&["send", "counter", "{\"add\": 5}", "--request"]);
    host.json(&["send", "counter", "{\"add\": 6}", "--request"]);
    host.stop();
    // Another history of the same actor, every hash valid, put in its place.
    let other = dir.path().join("other");
    let host = Running::start(&other, &counter);
    host.json(&["send", "counter", "{\"add\": 50}", "--request"]);
    host.json(&["send", "counter", "{\"add\": 60}", "--request"]);
    host.stop();
    let chain = data.join("chains/counter");
    std::fs::remove_dir_all(&chain).unwrap();
    crate::golden::copy_tree(&other.join("chains/counter"), &chain);
    assert_eq!(
        FileStore::open_read_only(&chain)
            .unwrap()
            .get(1)
            .unwrap()
            .seq(),
        1
    );
    let out = bin()
        .arg("run")
        .arg("--audit")
        .args(&counter)
        .arg("--data-dir")
        .arg(&data)
        .env_remove("THEATER_DATA_DIR")
        .output()
        .unwrap();
    assert!(!out.status.success(), "{}", text(&out));
    let said = text(&out);
    assert!(
        said.contains("counter") && said.contains("rewritten"),
        "{said}"
    );
}
