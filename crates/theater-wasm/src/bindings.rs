//! Host-side bindings of the `theater:actor` worlds, generated from the root `wit/`: what a
//! capability's host functions implement (`theater::actor::NAME::Host`) and add to the
//! linker (`theater::actor::NAME::add_to_linker`).
//!
//! Components are built for world `actor` (0.1.5), which is `actor-split` plus one export,
//! `handle-verified`. The host binds `actor-split`, which every component of 0.1.1 and later
//! exports, and finds `handle-verified` by name where a component has it
//! (`HandleVerified`); `actor-v1` is the world of components built for 0.1.0. All of them
//! import the same interfaces, generated once here.
#![allow(missing_docs, reason = "generated code; the WIT files document it")]

wasmtime::component::bindgen!({
    path: "../../wit",
    world: "actor-split",
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

/// The export world `actor` adds to `actor-split`: `handle`, then `verify` when the state
/// changed, in one call.
pub(crate) const HANDLE_VERIFIED: &str = "handle-verified";

/// `handle-verified`'s type: the input; the output, the change and whether the state it leaves
/// passed `verify`.
pub(crate) type HandleVerified =
    wasmtime::component::TypedFunc<(Payload,), (Result<(Payload, StateChange, bool), String>,)>;
