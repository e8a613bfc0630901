//! The capabilities this host runs with: the one list that names them. Adding a capability
//! to Theater is adding its crate here (see docs/ARCHITECTURE.md, "Adding a capability").

use theater_msg::Registry;
use theater_wasm::Capabilities;

/// Every capability, for actors messaging through `registry`; no host spawns their children
/// (for replay and offline tools, which answer from the recording), and a manifest's named
/// database connection is taken unchecked.
pub(crate) fn all(registry: &Registry) -> Capabilities {
    hosted(registry, &crate::children::Actors::new(), None)
}

/// Every capability, for actors messaging through `registry` and spawning children through
/// `children`, with the host's named database `connections` (`None`: not known here).
pub(crate) fn hosted(
    registry: &Registry,
    children: &crate::children::Actors,
    connections: Option<theater_db::Connections>,
) -> Capabilities {
    let db = match connections {
        Some(c) => theater_db::Db::with_connections(c),
        None => theater_db::Db::new(),
    };
    Capabilities::new()
        .with(children.clone())
        .with(theater_msg::Msg::new(registry.clone()))
        .with(theater_files::Files)
        .with(theater_timers::Timers::system())
        .with(db)
        .with(theater_http::Http::new())
        .with(theater_http_client::HttpClient)
        .with(theater_secrets::Secrets::default())
}
