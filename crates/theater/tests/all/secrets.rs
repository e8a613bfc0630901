//! Secrets through `theater run`: an actor's outbound requests carry a credential the host
//! adds from a secret, to a loopback server that checks it and echoes it back; afterwards no
//! byte the host wrote or printed holds the value, and replay needs no secret.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use serde_json::Value;

use crate::run::{Running, bin, http, manifest, text};
use theater_test_support::{files_under, write_private as private_file};

/// A server on loopback that answers 200 only to `authorization: Bearer <expected>`, with
/// the header it got echoed in a header and in the JSON body (as a careless API might), and
/// 401 otherwise. Returns its address and how many requests it authorized.
fn checking_server(expected: Arc<Mutex<String>>) -> (String, Arc<Mutex<u32>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let authorized = Arc::new(Mutex::new(0));
    let count = Arc::clone(&authorized);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { break };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut auth = String::new();
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some((name, value)) = line.split_once(':')
                    && name.eq_ignore_ascii_case("authorization")
                {
                    auth = value.trim().to_string();
                }
            }
            let want = format!("Bearer {}", expected.lock().unwrap());
            let (status, body) = if auth == want {
                *count.lock().unwrap() += 1;
                // Over 16 KiB: the body is kept as a blob beside the entry.
                let pad = "x".repeat(20_000);
                let body = serde_json::json!({"ok": true, "auth": auth, "pad": pad});
                ("200 OK", body.to_string())
            } else {
                (
                    "401 Unauthorized",
                    serde_json::json!({"ok": false}).to_string(),
                )
            };
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\nx-echo: {auth}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    (addr, authorized)
}

fn unique(tag: &str) -> String {
    let mut b = [0u8; 12];
    getrandom::fill(&mut b).unwrap();
    format!(
        "{tag}-{}",
        b.iter().map(|x| format!("{x:02x}")).collect::<String>()
    )
}

fn assert_nowhere(values: &[&str], what: &str, bytes: &[u8]) {
    for v in values {
        assert!(
            memchr::memmem::find(bytes, v.as_bytes()).is_none(),
            "the secret's value is in {what}"
        );
    }
}

#[test]
fn a_credential_from_a_secret_reaches_the_server_and_no_byte_the_host_wrote() {
    let dir = tempfile::tempdir().unwrap();
    let (first, second) = (unique("first-token"), unique("second-token"));
    let expected = Arc::new(Mutex::new(first.clone()));
    let (addr, authorized) = checking_server(Arc::clone(&expected));
    let token = dir.path().join("api.token");
    private_file(&token, format!("{first}\n"));
    let m = manifest(
        dir.path(),
        "fetcher",
        "fetcher",
        &format!(
            "[secrets]\nAPI_TOKEN = {{ file = \"api.token\" }}\n\n\
             [interfaces.http-client]\nallow = [\"{addr}\"]\n\n\
             [[interfaces.http-client.credentials]]\nhost = \"{addr}\"\nheader = \"authorization\"\nvalue = \"Bearer {{secret:API_TOKEN}}\"\n"
        ),
    );
    // Beside it, the signer (a secret the guest holds; its reads are followed by snapshots)
    // and the inventory (an SQLite file): every kind of file the host writes is searched.
    let signing = unique("signing-key");
    private_file(&dir.path().join("signing.key"), &signing);
    let signer = manifest(
        dir.path(),
        "signer",
        "signer",
        "[secrets]\nSIGNING_KEY = { file = \"signing.key\" }\n\n[interfaces.secrets]\nnames = [\"SIGNING_KEY\"]\n",
    );
    let inventory = manifest(dir.path(), "inventory", "inventory", "[interfaces.db]\n");
    let data = dir.path().join("data");
    let log = dir.path().join("host.log");
    let mut cmd = bin();
    cmd.arg("run")
        .arg(&m)
        .arg(&signer)
        .arg(&inventory)
        .env("RUST_LOG", "debug,theater=trace")
        .stderr(Stdio::from(std::fs::File::create(&log).unwrap()));
    let host = Running::start_cmd(cmd, &data);
    let url = format!("http://{addr}/doc");
    let mut printed = Vec::new();
    let mut ask = |host: &Running, args: &[&str]| -> Value {
        let out = host.cli(args);
        printed.extend_from_slice(&out.stdout);
        printed.extend_from_slice(&out.stderr);
        assert!(out.status.success(), "{args:?}: {}", text(&out));
        serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
    };
    let fetch = format!("{{\"fetch\": \"{url}\"}}");
    let r = ask(&host, &["send", "fetcher", &fetch, "--request"]);
    assert_eq!(r["reply"]["status"], 200, "{r}");
    // The server echoed the credential: the actor (and so its chain) sees it redacted.
    assert_eq!(
        r["reply"]["document"]["auth"], "Bearer [secret API_TOKEN]",
        "{r}"
    );
    assert_eq!(*authorized.lock().unwrap(), 1);

    // Rotation: the file changes, the server wants the new value, the next input uses it.
    private_file(&token, &second);
    *expected.lock().unwrap() = second.clone();
    let refresh = format!("{{\"refresh\": \"{url}\"}}");
    let r = ask(&host, &["send", "fetcher", &refresh, "--request"]);
    assert_eq!(r["reply"]["status"], 200, "{r}");
    assert_eq!(*authorized.lock().unwrap(), 2);
    let r = ask(&host, &["send", "signer", "{\"sign\": \"x\"}", "--request"]);
    assert_eq!(
        r["reply"]["signature"].as_str().map(str::len),
        Some(64),
        "{r}"
    );
    let r = ask(
        &host,
        &[
            "send",
            "inventory",
            "{\"sql\": \"SELECT count(*) AS n FROM items\"}",
            "--request",
        ],
    );
    assert_eq!(r["reply"]["rows"], serde_json::json!([[0]]), "{r}");

    ask(&host, &["state", "fetcher"]);
    ask(&host, &["ps"]);
    ask(&host, &["events", "fetcher"]);
    // The management API's raw answers too.
    let admin = std::fs::read_to_string(data.join("admin.addr")).unwrap();
    let token_header = format!(
        "authorization: Bearer {}\r\n",
        std::fs::read_to_string(data.join("admin.token")).unwrap()
    );
    for path in ["/actors", "/actors/fetcher/state", "/actors/fetcher/chain"] {
        let (status, body) = http(&admin, "GET", path, &token_header, "");
        assert_eq!(status, 200, "{path}: {body}");
        printed.extend_from_slice(body.as_bytes());
    }
    let stdout = host.stop().join("\n");

    // The chain says which secret was used, and that its version changed.
    let out = bin()
        .args(["chain", "log", "--json"])
        .arg(data.join("chains/fetcher"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    printed.extend_from_slice(&out.stdout);
    let log_text = String::from_utf8_lossy(&out.stdout).into_owned();
    let versions: Vec<String> = log_text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .flat_map(|e| {
            let calls = e["host_calls"].as_array().cloned().unwrap_or_default();
            calls.into_iter().filter_map(|c| {
                let used = &c["result"]["json"]["secrets"][0];
                (used["name"] == "API_TOKEN").then(|| used["version"].as_str().unwrap().to_string())
            })
        })
        .collect();
    assert_eq!(versions.len(), 2, "{log_text}");
    assert_ne!(versions[0], versions[1], "a rotation shows in the version");

    // Replay and offline tools, with the secret gone.
    std::fs::remove_file(&token).unwrap();
    for args in [
        vec!["chain", "replay"],
        vec!["chain", "verify"],
        vec!["chain", "state", "--at", "2"],
    ] {
        let mut cmd = bin();
        cmd.args(&args).arg(data.join("chains/fetcher"));
        if args[1] != "verify" {
            cmd.arg("--manifest").arg(&m);
        }
        let out = cmd.output().unwrap();
        assert!(out.status.success(), "{args:?}: {}", text(&out));
        printed.extend_from_slice(&out.stdout);
        printed.extend_from_slice(&out.stderr);
    }
    let graph = dir.path().join("graph.html");
    let out = bin()
        .args(["chain", "graph"])
        .arg(data.join("chains/fetcher"))
        .arg("--output")
        .arg(&graph)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));

    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(
        logged.contains("started") && logged.contains("fetcher"),
        "the host logged at debug: {logged:?}"
    );
    // What was searched holds a blob, a snapshot and an SQLite file.
    let written_files = files_under(&data);
    for (kind, part) in [
        ("a blob", "chains/fetcher/blobs/"),
        ("a snapshot", "chains/signer/snapshots/"),
        ("an SQLite file", "db/inventory.sqlite"),
    ] {
        assert!(
            written_files
                .iter()
                .any(|f| f.to_string_lossy().contains(part)),
            "no {kind} among {written_files:?}"
        );
    }
    let values = [first.as_str(), second.as_str(), signing.as_str()];
    let mut written = 0;
    for f in files_under(&data).into_iter().chain([graph, log]) {
        let bytes = std::fs::read(&f).unwrap();
        written += bytes.len();
        assert_nowhere(&values, &f.display().to_string(), &bytes);
    }
    assert!(
        written > 10_000,
        "the host wrote {written} bytes: the search saw them"
    );
    assert_nowhere(&values, "what the commands printed", &printed);
    assert_nowhere(&values, "the host's stdout", stdout.as_bytes());
}

#[test]
fn a_missing_or_inline_secret_stops_the_start_with_its_name() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let grant = "[interfaces.http-client]\nallow = [\"127.0.0.1:9\"]\n\n\
                 [[interfaces.http-client.credentials]]\nhost = \"127.0.0.1:9\"\nheader = \"x-api-key\"\nvalue = \"{secret:API_KEY}\"\n";
    let run = |m: &Path| {
        let out = bin()
            .arg("run")
            .arg(m)
            .arg("--data-dir")
            .arg(&data)
            .env_remove("THEATER_TEST_UNSET_KEY")
            .output()
            .unwrap();
        assert!(!out.status.success());
        text(&out)
    };
    // Declared from a variable that is not set: refused at start, naming both.
    let m = manifest(
        dir.path(),
        "fetcher",
        "fetcher",
        &format!("[secrets]\nAPI_KEY = {{ env = \"THEATER_TEST_UNSET_KEY\" }}\n\n{grant}"),
    );
    let out = run(&m);
    assert!(
        out.contains("secret API_KEY") && out.contains("THEATER_TEST_UNSET_KEY is not set"),
        "{out}"
    );
    // Named by a credential but declared nowhere.
    let m = manifest(dir.path(), "fetcher", "fetcher", grant);
    let out = run(&m);
    assert!(out.contains("secret API_KEY is not declared"), "{out}");
    // A value written in the manifest: refused, and not repeated.
    let m = manifest(
        dir.path(),
        "fetcher",
        "fetcher",
        &format!("[secrets]\nAPI_KEY = \"sk-live-do-not-print\"\n\n{grant}"),
    );
    let out = run(&m);
    assert!(
        out.contains("secrets.API_KEY") && out.contains("never written"),
        "{out}"
    );
    assert!(!out.contains("sk-live-do-not-print"), "{out}");
    // A credential written as a value instead of naming a secret: refused likewise.
    let m = manifest(
        dir.path(),
        "fetcher",
        "fetcher",
        &grant.replace("{secret:API_KEY}", "sk-live-do-not-print"),
    );
    let out = run(&m);
    assert!(
        out.contains("credentials[0].value") && out.contains("names no secret"),
        "{out}"
    );
    assert!(!out.contains("sk-live-do-not-print"), "{out}");
    // In a host config: a value inline, a value where a list goes, an unquoted value.
    for (i, config) in [
        "[secrets]\nAPI_KEY = \"sk-live-do-not-print\"\n",
        "manifests = \"sk-live-do-not-print\"\n",
        "[secrets]\nAPI_KEY = sk-live-do-not-print\n",
        "[secrets]\nAPI_KEY = { env = \"sk-live-do-not-print\", x = 1 }\n",
    ]
    .iter()
    .enumerate()
    {
        let file = dir.path().join(format!("host{i}.toml"));
        std::fs::write(&file, config).unwrap();
        let out = bin()
            .args(["run", "--config"])
            .arg(&file)
            .arg("--data-dir")
            .arg(&data)
            .output()
            .unwrap();
        assert!(!out.status.success());
        let out = text(&out);
        assert!(out.contains(&format!("host{i}.toml")), "{out}");
        assert!(!out.contains("sk-live-do-not-print"), "{out}");
    }
    // The data directory's own files (the host's key, the management token) are no secrets.
    std::fs::create_dir_all(&data).unwrap();
    private_file(&data.join("admin.token"), "t-0000");
    let m = manifest(
        dir.path(),
        "fetcher",
        "fetcher",
        "[secrets]\nTOKEN = { file = \"data/admin.token\" }\n",
    );
    let out = run(&m);
    assert!(
        out.contains("secret TOKEN") && out.contains("inside the data directory"),
        "{out}"
    );
    // A database password from a secret declared nowhere (refused before any connection).
    let m = manifest(
        dir.path(),
        "inventory",
        "inventory",
        "[interfaces.db]\nurl = \"postgres://theater@127.0.0.1:9/shop\"\npassword_secret = \"PG_PASSWORD\"\n",
    );
    let out = run(&m);
    assert!(
        out.contains("[interfaces.db]") && out.contains("secret PG_PASSWORD is not declared"),
        "{out}"
    );
}

#[test]
fn secret_list_shows_names_sources_and_users_never_values() {
    let dir = tempfile::tempdir().unwrap();
    private_file(&dir.path().join("signing.key"), "sk-signing-value-77");
    let signer = manifest(
        dir.path(),
        "signer",
        "signer",
        "[secrets]\nSIGNING_KEY = { file = \"signing.key\" }\n\n[interfaces.secrets]\nnames = [\"SIGNING_KEY\"]\n",
    );
    // Listed by the host config below.
    manifest(
        dir.path(),
        "fetcher",
        "fetcher",
        "[interfaces.http-client]\nallow = [\"api.example.com\"]\n\n\
         [[interfaces.http-client.credentials]]\nhost = \"api.example.com\"\nheader = \"authorization\"\nvalue = \"Bearer {secret:API_TOKEN}\"\n",
    );
    let config = dir.path().join("host.toml");
    std::fs::write(
        &config,
        "manifests = [\"signer.toml\", \"fetcher.toml\"]\n\n[secrets]\nAPI_TOKEN = { env = \"THEATER_TEST_API_TOKEN\" }\nSPARE = { file = \"spare.key\" }\n",
    )
    .unwrap();
    let list = |token: Option<&str>| {
        let mut cmd = bin();
        cmd.args(["secret", "list", "--config"]).arg(&config);
        match token {
            Some(t) => cmd.env("THEATER_TEST_API_TOKEN", t),
            None => cmd.env_remove("THEATER_TEST_API_TOKEN"),
        };
        cmd.output().unwrap()
    };
    // The spare's file is missing and the variable is not set: both said, exit 1.
    let out = list(None);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let t = text(&out);
    assert!(
        t.contains("API_TOKEN") && t.contains("environment variable THEATER_TEST_API_TOKEN"),
        "{t}"
    );
    assert!(t.contains("used by fetcher (http-client)"), "{t}");
    assert!(
        t.contains("SIGNING_KEY") && t.contains("used by signer (secrets)"),
        "{t}"
    );
    assert!(
        t.contains("SPARE") && t.contains("NOT READABLE") && t.contains("unused"),
        "{t}"
    );
    assert!(!t.contains("sk-signing-value-77"), "{t}");
    private_file(&dir.path().join("spare.key"), "sk-spare-value-88");
    let out = list(Some("sk-api-value-99"));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let t = text(&out);
    for v in [
        "sk-signing-value-77",
        "sk-spare-value-88",
        "sk-api-value-99",
    ] {
        assert!(!t.contains(v), "{t}");
    }
    // The host's config declares API_TOKEN for every actor: the fetcher starts with it, and
    // the signer with its own.
    let data = dir.path().join("data");
    let mut cmd = bin();
    cmd.args(["run", "--config"])
        .arg(&config)
        .env("THEATER_TEST_API_TOKEN", "sk-api-value-99")
        .stderr(Stdio::null());
    let host = Running::start_cmd(cmd, &data);
    let r = host.json(&["send", "signer", "{\"sign\": \"abc\"}", "--request"]);
    assert_eq!(r["reply"]["signature"].as_str().unwrap().len(), 64, "{r}");
    host.stop();
    // `theater chain replay` reads the key again: with it, bit for bit; with another value,
    // refused by its version (the data directory's key is at hand); without it, refused
    // naming it.
    let replay = || {
        let out = bin()
            .args(["chain", "replay"])
            .arg(data.join("chains/signer"))
            .arg("--manifest")
            .arg(&signer)
            .output()
            .unwrap();
        (out.status.code(), text(&out))
    };
    assert_eq!(replay().0, Some(0), "{}", replay().1);
    private_file(&dir.path().join("signing.key"), "sk-another-value-00");
    let (code, out) = replay();
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("SIGNING_KEY") && out.contains("another one"),
        "{out}"
    );
    std::fs::remove_file(dir.path().join("signing.key")).unwrap();
    let (code, out) = replay();
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("needs secret SIGNING_KEY"), "{out}");
    private_file(&dir.path().join("signing.key"), "sk-signing-value-77");
    // Without the variable the host does not start, and says which secret.
    let out = bin()
        .args(["run", "--config"])
        .arg(&config)
        .arg("--data-dir")
        .arg(&data)
        .env_remove("THEATER_TEST_API_TOKEN")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(text(&out).contains("secret API_TOKEN"), "{}", text(&out));
    // A manifest that declares a name the host's config declares: listed as refused.
    let dup = manifest(
        dir.path(),
        "counter",
        "dup",
        "[secrets]\nAPI_TOKEN = { env = \"THEATER_TEST_API_TOKEN\" }\n",
    );
    let out = bin()
        .args(["secret", "list", "--config"])
        .arg(&config)
        .arg(&dup)
        .env("THEATER_TEST_API_TOKEN", "sk-api-value-99")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("declared by the host's config too"),
        "{}",
        text(&out)
    );
}
