//! `[interfaces.msg]`: nothing to configure yet.

use serde::Deserialize;

/// What `[interfaces.msg]` holds: an empty section grants messaging.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MsgConfig {}
