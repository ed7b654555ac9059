//! What a component is, read from its bytes before anything is compiled: a
//! refused component costs a parse, not a compile.

use serde::Serialize;
use wasmparser::{KnownCustom, Parser, Payload};

use super::LoadError;
use powerplug_domain::{Sha256, StrategyKind};

/// The version of the `powerplug:strategy` package this host implements.
pub const WORLD_VERSION: &str = "0.1.0";

/// The interface a component of this kind exports.
pub fn export_name(kind: StrategyKind) -> String {
    format!("powerplug:strategy/{kind}@{WORLD_VERSION}")
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
    pub kind: StrategyKind,
    pub world: String,
    pub imports: Vec<String>,
    pub exports: Vec<String>,
    pub size: usize,
    /// SHA-256 of the bytes, hex: the component's identity everywhere.
    pub sha256: Sha256,
    /// The format of its state and cells, as its `powerplug:books` custom
    /// section declares it (`name@version`); `None` for a component that
    /// declares none (every 0.1.0 component built before formats existed).
    pub books: Option<String>,
    /// The language it was written in, as far as its toolchain says.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub language: Option<Language>,
}

/// A guest's source language, from what its toolchain leaves in custom
/// sections: the name of the runtime a Python or JavaScript kit links in, or
/// the `producers` section's `language` and `processed-by` fields. The
/// interpreters are written in C and Rust, so those are named last.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    Python,
    JavaScript,
    Rust,
    C,
}

impl Language {
    /// What a wasm `unreachable` trap means in a guest of this language.
    pub fn unreachable_means(language: Option<Self>) -> &'static str {
        match language {
            Some(Language::Rust) => "a Rust panic or abort",
            Some(Language::C) => "a C abort() or __builtin_trap()",
            Some(Language::Python) => {
                "a Python exception other than Err, or an abort in the interpreter"
            }
            Some(Language::JavaScript) => {
                "a value the bindings could not convert (a negative, fractional or too large u64, say) or an abort in QuickJS"
            }
            None => "the guest panicked or aborted",
        }
    }

    /// The languages `section` names.
    fn named_in(section: &wasmparser::CustomSectionReader<'_>, found: &mut Vec<Language>) {
        if let KnownCustom::Producers(fields) = section.as_known() {
            for field in fields.into_iter().flatten() {
                for value in field.values.into_iter().flatten() {
                    match (field.name, value.name) {
                        ("language", "Rust") | ("processed-by", "wit-bindgen-rust") => {
                            found.push(Language::Rust)
                        }
                        ("language", "C89" | "C99" | "C11" | "C17" | "C23")
                        | ("processed-by", "wit-bindgen-c") => found.push(Language::C),
                        _ => {}
                    }
                }
            }
            return;
        }
        for (runtime, language) in [
            (&b"componentize_py_runtime"[..], Language::Python),
            (&b"componentize_qjs_runtime"[..], Language::JavaScript),
        ] {
            if memchr::memmem::find(section.data(), runtime).is_some() {
                found.push(language);
            }
        }
    }
}

/// The custom section that declares a strategy's books format: UTF-8
/// `name@version`, in the component or in a core module inside it. A section
/// and not a WIT export, so that 0.1.0 components keep loading unchanged and
/// any toolchain can add it (a build script appends it to the component).
pub const BOOKS_SECTION: &str = "powerplug:books";

/// A books format is 1–64 of `a-z 0-9 . _ -`, then `@`, then a version of digits.
pub fn valid_books_format(format: &str) -> bool {
    let Some((name, version)) = format.rsplit_once('@') else {
        return false;
    };
    format.len() <= 64
        && !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
        && !version.is_empty()
        && version.bytes().all(|b| b.is_ascii_digit())
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
    let mut books: Option<String> = None;
    let mut languages = Vec::new();
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
            Payload::CustomSection(section) if section.name() == BOOKS_SECTION => {
                let declared = std::str::from_utf8(section.data())
                    .ok()
                    .filter(|f| valid_books_format(f))
                    .ok_or_else(|| {
                        LoadError::Invalid(format!(
                            "custom section `{BOOKS_SECTION}`: not a books format (`name@version`: 1-64 of a-z 0-9 . _ -, then @ and digits)"
                        ))
                    })?;
                if books.as_deref().is_some_and(|b| b != declared) {
                    return Err(LoadError::Invalid(format!(
                        "custom section `{BOOKS_SECTION}`: declares both {} and {declared}",
                        books.unwrap_or_default()
                    )));
                }
                books = Some(declared.to_owned());
            }
            Payload::CustomSection(section) => Language::named_in(&section, &mut languages),
            _ => {}
        }
    }

    if let Some(bad) = imports.iter().find(|i| !allowed_import(i)) {
        return Err(LoadError::ForbiddenImport(bad.clone()));
    }
    let kind = [StrategyKind::Grid, StrategyKind::Producer]
        .into_iter()
        .find(|&k| exports.contains(&export_name(k)))
        .ok_or_else(|| LoadError::UnsupportedWorld {
            exports: exports.clone(),
        })?;

    Ok(ComponentInfo {
        kind,
        world: format!("powerplug:strategy/{kind}-strategy@{WORLD_VERSION}"),
        imports,
        exports,
        size: bytes.len(),
        sha256: Sha256::of(bytes),
        books,
        language: languages.into_iter().min(),
    })
}

/// `component` with a `powerplug:books` section declaring `format` appended
/// (what the Python and JavaScript build scripts do with `printf`). A custom
/// section may come anywhere in a component, so appending keeps it valid.
pub fn declare_books(component: &[u8], format: &str) -> anyhow::Result<Vec<u8>> {
    anyhow::ensure!(
        valid_books_format(format),
        "{format:?} is not a books format (name@version)"
    );
    let mut section = Vec::new();
    leb128(&mut section, BOOKS_SECTION.len() as u64);
    section.extend_from_slice(BOOKS_SECTION.as_bytes());
    section.extend_from_slice(format.as_bytes());
    let mut out = component.to_vec();
    out.push(0); // custom section id
    leb128(&mut out, section.len() as u64);
    out.extend_from_slice(&section);
    Ok(out)
}

fn leb128(out: &mut Vec<u8>, mut n: u64) {
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}
