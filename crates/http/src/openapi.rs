//! `GET /openapi.json`: the host's API as OpenAPI 3.1, generated from the
//! handlers' `#[utoipa::path]` and the body types beside them, so that it
//! changes with them. A grid's and a producer's differ by their own routes.

use std::sync::{Arc, OnceLock};

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::routing::get;
use utoipa::OpenApi;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};

use crate::hub::HasHub;

/// Every refusal: `{"error": "...", "field": "..."}`.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct ErrorBody {
    /// Why, for a person.
    error: String,
    /// The field, header, parameter or path part it is about.
    field: Option<String>,
}

/// Every refusal, in each operation's answers.
#[derive(utoipa::IntoResponses)]
#[response(
    status = "4XX",
    description = "Refused, changing nothing: `error` says why, `field` names what"
)]
#[allow(dead_code)]
pub struct Refused(ErrorBody);

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Powerplug",
        description = "A grid's or producer's HTTP API. Operator routes take an operator token (`Authorization: Bearer`, or the console's session cookie) with the scope each names; entity routes take the entity's credential from its registration. Every refusal is JSON naming the field and changes nothing.",
    ),
    paths(openapi),
    components(schemas(ErrorBody)),
    modifiers(&Security),
)]
struct Common;

struct Security;

impl utoipa::Modify for Security {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        let bearer = |what: &str| {
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(what))
                    .build(),
            )
        };
        components.add_security_scheme(
            "operator",
            bearer("An operator token of this host (`operator_token`, `operator_tokens`)"),
        );
        components.add_security_scheme(
            "entity",
            bearer("The credential a registration answered with"),
        );
        components.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                crate::console::session::COOKIE,
                "The console's session, from `POST /console/sign-in`",
            ))),
        );
    }
}

/// The document of a host like `role`.
pub fn document(grid: bool) -> utoipa::openapi::OpenApi {
    let mut doc = Common::openapi();
    for part in [
        crate::hub::Api::openapi(),
        crate::hub::browse::Api::openapi(),
        crate::hub::metrics::Api::openapi(),
        crate::hub::timeline::Api::openapi(),
        crate::admin::Api::openapi(),
        crate::strategies::Api::openapi(),
        crate::console::Api::openapi(),
        crate::status_api(),
    ] {
        doc.merge(part);
    }
    let own = match grid {
        true => [
            crate::wallet::Api::openapi(),
            crate::experiments::Api::openapi(),
            crate::console::GridApi::openapi(),
        ]
        .into_iter()
        .reduce(|mut a, b| {
            a.merge(b);
            a
        }),
        false => Some(crate::membership::Api::openapi()),
    };
    if let Some(own) = own {
        doc.merge(own);
    }
    doc
}

pub fn routes<R: HasHub>() -> Router<Arc<R>> {
    Router::new().route("/openapi.json", get(openapi::<R>))
}

#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "monitoring",
    description = "This document.",
    responses((status = 200, description = "OpenAPI 3.1", body = serde_json::Value))
)]
async fn openapi<R: HasHub>(State(role): State<Arc<R>>) -> Json<serde_json::Value> {
    // Built once per kind: it does not change while the host runs.
    static GRID: OnceLock<serde_json::Value> = OnceLock::new();
    static PRODUCER: OnceLock<serde_json::Value> = OnceLock::new();
    let grid = role.is_grid();
    let cell = if grid { &GRID } else { &PRODUCER };
    Json(
        cell.get_or_init(|| serde_json::to_value(document(grid)).unwrap_or_default())
            .clone(),
    )
}

#[cfg(test)]
mod tests {
    use super::document;

    /// Every route the router serves is in the document, and nothing else:
    /// the paths in the source's `.route("…")` calls against the document's.
    #[test]
    fn the_document_has_every_route_of_each_kind_of_host() {
        let sources = [
            include_str!("hub.rs"),
            include_str!("hub/browse.rs"),
            include_str!("hub/metrics.rs"),
            include_str!("hub/timeline.rs"),
            include_str!("admin.rs"),
            include_str!("strategies.rs"),
            include_str!("wallet.rs"),
            include_str!("experiments.rs"),
            include_str!("membership.rs"),
            include_str!("console/mod.rs"),
            include_str!("openapi.rs"),
            include_str!("lib.rs"),
        ];
        let mut routed = std::collections::BTreeSet::new();
        for source in sources {
            for piece in source.split(".route(").skip(1) {
                let piece = piece.trim_start();
                if let Some(rest) = piece.strip_prefix('"') {
                    let path = &rest[..rest.find('"').unwrap()];
                    if path.starts_with('/') {
                        routed.insert(path.to_owned());
                    }
                }
            }
        }
        let grid = document(true);
        let producer = document(false);
        let documented: std::collections::BTreeSet<String> = grid
            .paths
            .paths
            .keys()
            .chain(producer.paths.paths.keys())
            .cloned()
            .collect();
        assert_eq!(routed, documented);
        assert!(grid.paths.paths.contains_key("/experiments"));
        assert!(!producer.paths.paths.contains_key("/experiments"));
        assert!(producer.paths.paths.contains_key("/initialise"));
        // Every operation has its own id and says what it answers.
        let json = serde_json::to_value(&grid).unwrap();
        let mut ids = std::collections::BTreeSet::new();
        for (path, item) in json["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                let responses = op["responses"].as_object().unwrap();
                assert!(!responses.is_empty(), "{method} {path}");
                if op.get("security").is_some() {
                    let refused = &responses["4XX"]["content"]["application/json"]["schema"];
                    assert_eq!(
                        refused["$ref"], "#/components/schemas/ErrorBody",
                        "{method} {path}"
                    );
                }
                let id = op["operationId"].as_str().unwrap().to_owned();
                assert!(ids.insert(id.clone()), "operationId {id} twice");
            }
        }
    }
}
