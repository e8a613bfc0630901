//! Host-side bindings of the `theater:actor` world, generated from the root `wit/`.

wasmtime::component::bindgen!({
    path: "../../wit",
    world: "actor",
    imports: {
        "theater:actor/msg.request": async | trappable,
        default: trappable,
    },
    exports: { default: async },
});

pub(crate) use theater::actor::db::Host as DbHost;
pub(crate) use theater::actor::files::{
    DirEntry as WitDirEntry, FileInfo as WitFileInfo, Host as FilesHost,
};
pub(crate) use theater::actor::host::{Host, Level};
pub(crate) use theater::actor::msg::Host as MsgHost;
pub(crate) use theater::actor::timers::Host as TimersHost;
