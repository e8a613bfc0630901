//! Progress bars for long verifies and replays (drawn on stderr, only when it is a terminal).

use indicatif::{ProgressBar, ProgressStyle};

/// A bar over `total` entries, labelled `what`.
pub(crate) fn bar(total: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(total);
    if let Ok(style) =
        ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} entries ({per_sec}, {eta} left)")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(what.to_string());
    bar
}
