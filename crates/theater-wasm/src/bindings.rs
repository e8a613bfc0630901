//! Host-side bindings of the `theater:actor` world, generated from the root `wit/`.

wasmtime::component::bindgen!({
    path: "../../wit",
    world: "actor",
    imports: { default: trappable },
    exports: { default: async },
});

pub(crate) use theater::actor::host::{Host, Level};
