//! `[interfaces.timers]`: nothing to configure yet.

use serde::Deserialize;

/// What `[interfaces.timers]` holds: an empty section grants timers.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimersConfig {}
