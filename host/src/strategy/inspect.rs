//! What a component is, read from its bytes before anything is compiled: a
//! refused component costs a parse, not a compile.

use std::fmt;

use serde::Serialize;
use sha2::{Digest, Sha256};
use wasmparser::{Parser, Payload};

use super::LoadError;

/// The version of the `powerplug:strategy` package this host implements.
pub const WORLD_VERSION: &str = "0.1.0";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Grid,
    Producer,
}

impl Kind {
    /// The interface a component of this kind exports.
    pub fn export_name(self) -> String {
        format!("powerplug:strategy/{self}@{WORLD_VERSION}")
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::Grid => "grid",
            Kind::Producer => "producer",
        })
    }
}

/// What a strategy may import: `log`, and `types`, which holds only types
/// (a component that uses them imports the interface by name).
fn allowed_import(name: &str) -> bool {
    name.strip_prefix("powerplug:strategy/")
        .and_then(|rest| rest.strip_suffix(WORLD_VERSION))
        .is_some_and(|iface| iface == "log@" || iface == "types@")
}

/// A component's identity and interface, as `powerplug strategy inspect` prints it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ComponentInfo {
    pub kind: Kind,
    pub world: String,
    pub imports: Vec<String>,
    pub exports: Vec<String>,
    pub size: usize,
    /// SHA-256 of the bytes, hex: the component's identity everywhere.
    pub sha256: String,
}

/// Checks that `bytes` are a component for a world and version this host
/// supports, importing nothing but `log`.
pub fn inspect(bytes: &[u8]) -> Result<ComponentInfo, LoadError> {
    if !bytes.starts_with(b"\0asm") {
        return Err(LoadError::NotWasm);
    }
    if Parser::is_core_wasm(bytes) {
        return Err(LoadError::CoreModule);
    }
    if !Parser::is_component(bytes) {
        return Err(LoadError::Invalid(
            "unknown WebAssembly binary version".into(),
        ));
    }

    let (mut imports, mut exports) = (Vec::new(), Vec::new());
    // Nested modules and components come inline; only the outermost level's
    // imports and exports are the component's own.
    let mut depth = 0usize;
    for payload in Parser::new(0).parse_all(bytes) {
        match payload.map_err(|e| LoadError::Invalid(e.to_string()))? {
            Payload::Version { .. } => depth += 1,
            Payload::End(_) => depth = depth.saturating_sub(1),
            Payload::ComponentImportSection(reader) if depth == 1 => {
                for import in reader {
                    let import = import.map_err(|e| LoadError::Invalid(e.to_string()))?;
                    imports.push(import.name.name.to_owned());
                }
            }
            Payload::ComponentExportSection(reader) if depth == 1 => {
                for export in reader {
                    let export = export.map_err(|e| LoadError::Invalid(e.to_string()))?;
                    exports.push(export.name.name.to_owned());
                }
            }
            _ => {}
        }
    }

    if let Some(bad) = imports.iter().find(|i| !allowed_import(i)) {
        return Err(LoadError::ForbiddenImport(bad.clone()));
    }
    let kind = [Kind::Grid, Kind::Producer]
        .into_iter()
        .find(|k| exports.contains(&k.export_name()))
        .ok_or_else(|| LoadError::UnsupportedWorld {
            exports: exports.clone(),
        })?;

    Ok(ComponentInfo {
        kind,
        world: format!("powerplug:strategy/{kind}-strategy@{WORLD_VERSION}"),
        imports,
        exports,
        size: bytes.len(),
        sha256: hex::encode(Sha256::digest(bytes)),
    })
}
