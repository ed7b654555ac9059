//! The grid operator's experiments and shadow runs: start, list, stop,
//! promote, and the report (JSON, or an HTML page with charts).

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Html;
use axum::routing::{get, post};
use serde::Deserialize;

use super::{ApiError, ApiResult, Authorized, Body, DEPLOY, Params, READ, blocking};
use powerplug_roles::experiment::shadow::{self, Shadow};
use powerplug_roles::experiment::{self as experiment, Experiment, page, report, results};
use powerplug_roles::role::grid::{Grid, NewExperiment, Refused};

#[derive(utoipa::OpenApi)]
#[openapi(paths(
    create,
    list,
    one,
    stop,
    promote,
    report_json,
    report_html,
    report_csv,
    billing,
    export,
    shadow_start,
    shadow_get,
    shadow_stop
))]
pub struct Api;

pub fn routes() -> Router<Arc<Grid>> {
    Router::new()
        .route("/experiments", post(create).get(list))
        .route("/experiments/{id}", get(one))
        .route("/experiments/{id}/stop", post(stop))
        .route("/experiments/{id}/promote/{variant}", post(promote))
        .route("/experiments/{id}/report", get(report_json))
        .route("/experiments/{id}/report.html", get(report_html))
        .route("/experiments/{id}/report.csv", get(report_csv))
        .route("/billing/consumers", get(billing))
        .route("/ticks/export", get(export))
        .route(
            "/strategies/grid/shadow",
            post(shadow_start).get(shadow_get).delete(shadow_stop),
        )
}

impl From<Refused> for ApiError {
    fn from(e: Refused) -> Self {
        match e {
            Refused::Invalid { field, why } => ApiError::unprocessable(&field, why),
            Refused::Conflict { field, why } => ApiError::new(StatusCode::CONFLICT, &field, why),
            Refused::NotFound(id) => {
                ApiError::new(StatusCode::NOT_FOUND, "id", format!("no experiment `{id}`"))
            }
            Refused::Storage(e) => ApiError::internal(e),
        }
    }
}

#[utoipa::path(
    post,
    path = "/experiments",
    tag = "experiments",
    description = "Starts an A/B test of stored versions on cohorts of consumers. Operator scope: `deploy`.",
    request_body = powerplug_roles::role::grid::NewExperiment,
    responses((status = 201, description = "The experiment", body = serde_json::Value), crate::openapi::Refused),
    security(("operator" = []), ("session" = [])),
)]
async fn create(
    State(grid): State<Arc<Grid>>,
    _: Authorized<DEPLOY>,
    Body(new): Body<NewExperiment>,
) -> ApiResult<(StatusCode, Json<Experiment>)> {
    blocking(move || Ok((StatusCode::CREATED, Json(grid.create_experiment(new)?)))).await
}

#[utoipa::path(
    get,
    path = "/experiments",
    operation_id = "list_experiments",
    tag = "experiments",
    description = "Every experiment. Operator scope: `read`.",
    responses((status = 200, description = "Done", body = serde_json::Value), crate::openapi::Refused),
    security(("operator" = []), ("session" = [])),
)]
async fn list(
    State(grid): State<Arc<Grid>>,
    _: Authorized<READ>,
) -> ApiResult<Json<Vec<Experiment>>> {
    blocking(move || Ok(Json(experiment::list(grid.db())?))).await
}

fn find(grid: &Grid, id: &str) -> ApiResult<Experiment> {
    experiment::get(grid.db(), id)?.ok_or_else(|| Refused::NotFound(id.to_owned()).into())
}

#[utoipa::path(
    get,
    path = "/experiments/{id}",
    tag = "experiments",
    description = "One experiment. Operator scope: `read`.",
    params(("id" = String, Path, description = "The experiment's id")),
    responses((status = 200, description = "Done", body = serde_json::Value), crate::openapi::Refused),
    security(("operator" = []), ("session" = [])),
)]
async fn one(
    State(grid): State<Arc<Grid>>,
    Path(id): Path<String>,
    _: Authorized<READ>,
) -> ApiResult<Json<Experiment>> {
    blocking(move || Ok(Json(find(&grid, &id)?))).await
}

#[utoipa::path(
    post,
    path = "/experiments/{id}/stop",
    tag = "experiments",
    description = "Stops an experiment: everyone is billed by the active version again. Operator scope: `deploy`.",
    params(("id" = String, Path, description = "The experiment's id")),
    responses((status = 200, description = "Done", body = serde_json::Value), crate::openapi::Refused),
    security(("operator" = []), ("session" = [])),
)]
async fn stop(
    State(grid): State<Arc<Grid>>,
    Path(id): Path<String>,
    _: Authorized<DEPLOY>,
) -> ApiResult<Json<Experiment>> {
    blocking(move || Ok(Json(grid.stop_experiment(&id)?))).await
}

#[utoipa::path(
    post,
    path = "/experiments/{id}/promote/{variant}",
    tag = "experiments",
    description = "Ends an experiment by activating one variant's version. Operator scope: `deploy`.",
    params(("id" = String, Path, description = "The experiment's id"), ("variant" = String, Path, description = "The variant's name")),
    responses((status = 200, description = "Done", body = serde_json::Value), crate::openapi::Refused),
    security(("operator" = []), ("session" = [])),
)]
async fn promote(
    State(grid): State<Arc<Grid>>,
    Path((id, variant)): Path<(String, String)>,
    _: Authorized<DEPLOY>,
) -> ApiResult<Json<Experiment>> {
    blocking(move || Ok(Json(grid.promote(&id, &variant)?))).await
}

/// The report page shows `page` of the consumer table.
#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct PageNumber {
    #[param(minimum = 1, maximum = 4294967295_u64)]
    page: Option<usize>,
}

fn build(grid: &Grid, id: &str) -> ApiResult<report::Report> {
    let e = find(grid, id)?;
    if let Some(at) = experiment::rows_deleted_at(grid.db(), id)? {
        return Err(ApiError::new(
            StatusCode::GONE,
            "id",
            format!(
                "the experiment's rows were deleted by retention at {} (retention.experiments_ms after it ended)",
                powerplug_domain::UnixMs(at).utc()
            ),
        ));
    }
    let consumers = results::consumers(grid.db(), id)?;
    let ticks = results::ticks(grid.db(), id)?;
    let id_of = |index| {
        powerplug_roles::registry::id_of(grid.db(), index)
            .ok()
            .flatten()
    };
    Ok(report::build(&e, &consumers, &ticks, &id_of))
}

/// The consumer table, for a spreadsheet.
#[utoipa::path(
    get,
    path = "/experiments/{id}/report.csv",
    tag = "experiments",
    description = "The report's consumer table. Operator scope: `read`.",
    params(("id" = String, Path, description = "The experiment's id")),
    responses((status = 200, description = "CSV", body = String, content_type = "text/csv"), crate::openapi::Refused),
    security(("operator" = []), ("session" = [])),
)]
async fn report_csv(
    State(grid): State<Arc<Grid>>,
    Path(id): Path<String>,
    _: Authorized<READ>,
) -> ApiResult<([(axum::http::HeaderName, &'static str); 1], String)> {
    blocking(move || {
        Ok((
            [(axum::http::header::CONTENT_TYPE, "text/csv; charset=utf-8")],
            report::csv(&build(&grid, &id)?),
        ))
    })
    .await
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct Page {
    after: Option<u32>,
    #[param(minimum = 1, maximum = 10000)]
    limit: Option<usize>,
}

/// Each consumer's lifetime billing as the grid carried it out, by index.
#[utoipa::path(
    get,
    path = "/billing/consumers",
    tag = "experiments",
    description = "Each consumer's lifetime billing, by index. Operator scope: `read`.",
    params(Page),
    responses((status = 200, description = "Done", body = serde_json::Value), crate::openapi::Refused),
    security(("operator" = []), ("session" = [])),
)]
async fn billing(
    State(grid): State<Arc<Grid>>,
    _: Authorized<READ>,
    Params(query): Params<Page>,
) -> ApiResult<Json<serde_json::Value>> {
    let limit = query.limit.unwrap_or(1_000);
    if !(1..=10_000).contains(&limit) {
        return Err(ApiError::unprocessable("limit", "1 to 10,000"));
    }
    blocking(move || {
        let page = powerplug_roles::experiment::billing::page(grid.db(), query.after, limit)?;
        let next = (page.len() == limit)
            .then(|| page.last().map(|p| p.0))
            .flatten();
        let mut consumers = Vec::with_capacity(page.len());
        for (index, b) in page {
            consumers.push(serde_json::json!({
                "consumer": index,
                "id": powerplug_roles::registry::id_of(grid.db(), index).map_err(ApiError::internal)?,
                "used_wh": b.used_wh,
                "billed_wh": b.billed_wh,
                "requested": b.requested,
                "paid": b.paid,
            }));
        }
        Ok(Json(
            serde_json::json!({ "consumers": consumers, "next": next }),
        ))
    })
    .await
}

#[utoipa::path(
    get,
    path = "/experiments/{id}/report",
    tag = "experiments",
    description = "The report: per variant on its cohort, and counterfactual bills. Operator scope: `read`.",
    params(("id" = String, Path, description = "The experiment's id")),
    responses((status = 200, description = "Done", body = serde_json::Value), crate::openapi::Refused),
    security(("operator" = []), ("session" = [])),
)]
async fn report_json(
    State(grid): State<Arc<Grid>>,
    Path(id): Path<String>,
    _: Authorized<READ>,
) -> ApiResult<Json<report::Report>> {
    blocking(move || Ok(Json(build(&grid, &id)?))).await
}

/// A browser that opens the page without a token is asked for it by its
/// login prompt (any user name, the token as password): never in the URL.
#[utoipa::path(
    get,
    path = "/experiments/{id}/report.html",
    tag = "experiments",
    description = "The report as a page with charts. Operator scope: `read`.",
    params(("id" = String, Path, description = "The experiment's id"), PageNumber),
    responses((status = 200, description = "The page", body = String, content_type = "text/html"), crate::openapi::Refused),
    security(("operator" = []), ("session" = [])),
)]
async fn report_html(
    State(grid): State<Arc<Grid>>,
    Path(id): Path<String>,
    _: Authorized<READ>,
    Params(query): Params<PageNumber>,
) -> ApiResult<Html<String>> {
    let number = query.page.unwrap_or(1);
    blocking(move || {
        let report = build(&grid, &id)?;
        if number == 0 || number > page::pages(&report) {
            return Err(ApiError::unprocessable(
                "page",
                format!("1 to {}", page::pages(&report)),
            ));
        }
        Ok(Html(page::render(&report, number)))
    })
    .await
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct ShadowStart {
    version: String,
}

#[utoipa::path(
    post,
    path = "/strategies/grid/shadow",
    tag = "strategies",
    description = "Runs a stored version beside the active one on every tick, acting on nothing. Operator scope: `deploy`.",
    request_body = ShadowStart,
    responses((status = 201, description = "The shadow run", body = serde_json::Value), crate::openapi::Refused),
    security(("operator" = []), ("session" = [])),
)]
async fn shadow_start(
    State(grid): State<Arc<Grid>>,
    _: Authorized<DEPLOY>,
    Body(body): Body<ShadowStart>,
) -> ApiResult<(StatusCode, Json<Shadow>)> {
    blocking(move || Ok((StatusCode::CREATED, Json(grid.start_shadow(&body.version)?)))).await
}

#[utoipa::path(
    get,
    path = "/strategies/grid/shadow",
    tag = "strategies",
    description = "The shadow run and its divergence. Operator scope: `read`.",
    responses((status = 200, description = "Done", body = serde_json::Value), crate::openapi::Refused),
    security(("operator" = []), ("session" = [])),
)]
async fn shadow_get(State(grid): State<Arc<Grid>>, _: Authorized<READ>) -> ApiResult<Json<Shadow>> {
    blocking(move || {
        shadow::get(grid.db())?
            .map(Json)
            .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "version", "no shadow run yet"))
    })
    .await
}

#[utoipa::path(
    delete,
    path = "/strategies/grid/shadow",
    tag = "strategies",
    description = "Stops the shadow run. Operator scope: `deploy`.",
    responses((status = 200, description = "Done", body = serde_json::Value), crate::openapi::Refused),
    security(("operator" = []), ("session" = [])),
)]
async fn shadow_stop(
    State(grid): State<Arc<Grid>>,
    _: Authorized<DEPLOY>,
) -> ApiResult<Json<Shadow>> {
    blocking(move || {
        grid.stop_shadow("stopped by the operator")?
            .map(Json)
            .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "version", "no shadow run is on"))
    })
    .await
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct Slot {
    #[serde(default = "grid_slot")]
    slot: String,
}

fn grid_slot() -> String {
    powerplug_roles::role::grid::SLOT.to_owned()
}

/// The tick log of a slot as a file for `powerplug replay --input`.
#[utoipa::path(
    get,
    path = "/ticks/export",
    tag = "experiments",
    description = "A slot's tick log, for `powerplug replay --input`. Operator scope: `read`.",
    params(Slot),
    responses((status = 200, description = "The log", body = Vec<u8>, content_type = "application/octet-stream"), crate::openapi::Refused),
    security(("operator" = []), ("session" = [])),
)]
async fn export(
    State(grid): State<Arc<Grid>>,
    _: Authorized<READ>,
    Params(query): Params<Slot>,
) -> ApiResult<([(axum::http::HeaderName, &'static str); 1], Vec<u8>)> {
    blocking(move || {
        let mut out = Vec::new();
        powerplug_roles::replay::recording::export(grid.db(), &query.slot, &mut out)?;
        Ok((
            [(axum::http::header::CONTENT_TYPE, "application/octet-stream")],
            out,
        ))
    })
    .await
}
