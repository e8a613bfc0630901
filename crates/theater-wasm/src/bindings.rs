//! Host-side bindings of the `theater:actor` worlds, generated from the root `wit/`: what a
//! capability's host functions implement (`theater::actor::NAME::Host`) and add to the
//! linker (`theater::actor::NAME::add_to_linker`).
//!
//! `actor` (0.1.4) is the world components are built for today; `actor-v1` is the world of
//! components built for 0.1.0. Both import the same interfaces, generated once here.
#![allow(missing_docs, reason = "generated code; the WIT files document it")]

wasmtime::component::bindgen!({
    path: "../../wit",
    world: "actor",
    imports: { default: async | trappable },
    exports: { default: async },
});

/// The world of components built for `theater:actor@0.1.0`: the whole state crosses the
/// boundary on every input.
pub(crate) mod v1 {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "actor-v1",
        imports: { default: async | trappable },
        exports: { default: async },
        with: {
            "theater:actor": super::theater::actor,
        },
    });
}

pub(crate) use theater::actor::host::{Host, Level};
