//! wit-bindgen output for both worlds. The producer world reuses the grid world's
//! `types` and `log` so that an `Entity` is one Rust type whichever world uses it.

pub mod grid {
    wit_bindgen::generate!({
        world: "grid-strategy",
        path: "../wit",
        additional_derives: [Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize],
        pub_export_macro: true,
        export_macro_name: "__export_grid_world",
        default_bindings_module: "powerplug_sdk::bindings::grid",
    });
}

pub mod producer {
    wit_bindgen::generate!({
        world: "producer-strategy",
        path: "../wit",
        with: {
            "powerplug:strategy/types@0.1.0": crate::bindings::grid::powerplug::strategy::types,
            "powerplug:strategy/log@0.1.0": crate::bindings::grid::powerplug::strategy::log,
        },
        additional_derives: [Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize],
        pub_export_macro: true,
        export_macro_name: "__export_producer_world",
        default_bindings_module: "powerplug_sdk::bindings::producer",
    });
}
