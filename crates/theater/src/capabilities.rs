//! The capabilities this host runs with: the one list that names them. Adding a capability
//! to Theater is adding its crate here (see docs/ARCHITECTURE.md, "Adding a capability").

use theater_msg::Registry;
use theater_wasm::Capabilities;

/// Every capability, for actors messaging through `registry`; no host spawns their children
/// (for replay and offline tools, which answer from the recording).
pub(crate) fn all(registry: &Registry) -> Capabilities {
    hosted(registry, &crate::children::Actors::new())
}

/// Every capability, for actors messaging through `registry` and spawning children through
/// `children`.
pub(crate) fn hosted(registry: &Registry, children: &crate::children::Actors) -> Capabilities {
    Capabilities::new()
        .with(children.clone())
        .with(theater_msg::Msg::new(registry.clone()))
        .with(theater_files::Files)
        .with(theater_timers::Timers::system())
        .with(theater_db::Db::new())
        .with(theater_http::Http::new())
        .with(theater_http_client::HttpClient)
        .with(theater_secrets::Secrets::default())
}
