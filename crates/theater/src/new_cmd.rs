//! `theater new NAME`: a new Rust actor project anywhere, with this Theater's guest SDK in it,
//! ready to build with `theater build` and to run with `theater run`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

pub(crate) fn run(
    name: &str,
    path: Option<PathBuf>,
    sdk: Option<PathBuf>,
) -> anyhow::Result<ExitCode> {
    if !valid_name(name) {
        bail!(
            "{name:?} is not a usable actor name: lowercase letters, digits, '-' and '_', starting with a letter"
        );
    }
    let dir = path.unwrap_or_else(|| PathBuf::from(name));
    if dir.exists()
        && std::fs::read_dir(&dir)
            .map(|mut d| d.next().is_some())
            .unwrap_or(true)
    {
        bail!("{} already exists and is not empty", dir.display());
    }
    if let Some(sdk) = &sdk
        && !sdk.join("Cargo.toml").is_file()
    {
        bail!("no guest SDK at {} (no Cargo.toml there)", sdk.display());
    }
    std::fs::create_dir_all(dir.join("src"))
        .with_context(|| format!("cannot create {}", dir.display()))?;
    let sdk_dep = match sdk {
        Some(sdk) => std::path::absolute(&sdk)?.display().to_string(),
        None => {
            theater_build::sdk::write(&dir)
                .with_context(|| format!("cannot write the guest SDK into {}", dir.display()))?;
            theater_build::sdk::DIR.to_string()
        }
    };
    let files = [
        ("Cargo.toml", cargo_toml(name, &sdk_dep)),
        ("src/lib.rs", LIB_RS.to_string()),
        (&format!("{name}.toml"), manifest(name)),
        ("README.md", readme(name)),
        (".gitignore", "/target\n/theater-data\n".to_string()),
    ];
    for (file, text) in &files {
        let p = dir.join(file);
        std::fs::write(&p, text).with_context(|| format!("cannot write {}", p.display()))?;
    }
    println!("created the actor {name:?} in {}", dir.display());
    println!("next:");
    println!(
        "  cd {} && theater build && theater run {name}.toml",
        dir.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn cargo_toml(name: &str, sdk: &str) -> String {
    // A TOML string, escaped as TOML wants (a path may hold quotes or backslashes).
    let sdk = toml::Value::String(sdk.to_string());
    format!(
        r#"[package]
name = "{name}"
version = "0.1.0"
edition = "2024"
publish = false

[lib]
crate-type = ["cdylib"]

[dependencies]
# The guest SDK, written here by `theater new` (the version of the host that runs it).
theater-guest = {{ path = {sdk} }}
serde = {{ version = "1", features = ["derive"] }}

# A project of its own, not part of an enclosing workspace.
[workspace]

[profile.release]
opt-level = "s"
lto = true
codegen-units = 1
panic = "abort"
strip = true
"#
    )
}

fn manifest(name: &str) -> String {
    format!(
        r#"name = "{name}"
component = "target/theater/{name}.wasm"

# Parameters given to init.
[init]
greeting = "hello"

# [interfaces.msg]                   # let it message other actors
# [interfaces.http]                  # serve it over HTTP
# addr = "127.0.0.1:8080"
"#
    )
}

fn readme(name: &str) -> String {
    format!(
        r#"# {name}

A Theater actor. Every input it handles, and every state it reaches, is recorded in its
hash chain.

```sh
theater build                  # -> target/theater/{name}.wasm (sets up the wasm32 target if missing)
theater run {name}.toml        # then, from another terminal in this directory:
theater send {name} '{{"greet": "you"}}' --request
theater state {name}
theater chain verify theater-data/chains/{name}
```

The actor is `src/lib.rs`; `{name}.toml` is its manifest (what it is granted). The guest SDK
in `theater-guest/` was written by `theater new`; its docs: `cargo doc -p theater-guest --open`.
"#
    )
}

const LIB_RS: &str = r#"//! An actor that greets whoever asks and counts how many it has greeted.

use serde::{Deserialize, Serialize};
use theater_guest::{Actor, Input, Output, Value, json};

#[derive(Serialize, Deserialize)]
struct State {
    greeting: String,
    greeted: u64,
}

struct Greeter;

impl Actor for Greeter {
    type State = State;

    fn init(params: Value) -> Result<State, String> {
        let greeting = params["greeting"].as_str().unwrap_or("hello").to_string();
        Ok(State { greeting, greeted: 0 })
    }

    fn handle(mut state: State, input: Input) -> Result<(Output, State), String> {
        let p = input.payload().ok_or("send a message or a request")?;
        let who = p["greet"].as_str().ok_or("expected {\"greet\": \"name\"}")?;
        state.greeted += 1;
        let reply = json!({"text": format!("{}, {who}!", state.greeting), "greeted": state.greeted});
        Ok((Output::reply(reply), state))
    }
}

theater_guest::export_actor!(Greeter);
"#;
