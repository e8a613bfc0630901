//! Host-side bindings of the `theater:actor` worlds, generated from the root `wit/`.
//!
//! `actor` (0.1.1) is the world components are built for today; `actor-v1` is the world of
//! components built for 0.1.0. Both import the same interfaces, generated once here.

wasmtime::component::bindgen!({
    path: "../../wit",
    world: "actor",
    imports: {
        "theater:actor/msg.request": async | trappable,
        default: trappable,
    },
    exports: { default: async },
});

/// The world of components built for `theater:actor@0.1.0`: the whole state crosses the
/// boundary on every input.
pub(crate) mod v1 {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "actor-v1",
        imports: { default: trappable },
        exports: { default: async },
        with: {
            "theater:actor/host": super::theater::actor::host,
            "theater:actor/msg": super::theater::actor::msg,
            "theater:actor/files": super::theater::actor::files,
            "theater:actor/timers": super::theater::actor::timers,
            "theater:actor/db": super::theater::actor::db,
        },
    });
}

pub(crate) use theater::actor::db::Host as DbHost;
pub(crate) use theater::actor::files::{
    DirEntry as WitDirEntry, FileInfo as WitFileInfo, Host as FilesHost,
};
pub(crate) use theater::actor::host::{Host, Level};
pub(crate) use theater::actor::msg::Host as MsgHost;
pub(crate) use theater::actor::timers::Host as TimersHost;
