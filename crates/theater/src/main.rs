//! `theater`: the Theater host binary (see the library, [`theater`], for what it runs).

fn main() -> std::process::ExitCode {
    theater::cli()
}
