//! The operator's console at `/console`: pages served from the binary (no
//! CDN, no build step, works offline) whose little script reads and drives
//! the same JSON API as curl does, signed in by a session cookie instead of
//! a bearer token (see [`session`]). What a page offers follows the token's
//! scopes; the API checks them again on every call.

pub mod session;

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;

use crate::hub::HasHub;
use crate::{ApiError, MAX_BODY_BYTES, OperatorToken};
use powerplug_roles::role::config::Scope;
use session::Sessions;

/// The console's routes in the API description.
#[derive(utoipa::OpenApi)]
#[openapi(paths(
    root, overview, strategies, admissions, sign_in, sign_out, whoami, script, style
))]
pub struct Api;

/// Those only a grid has.
#[derive(utoipa::OpenApi)]
#[openapi(paths(experiments))]
pub struct GridApi;

/// The pages, by path: (path, title, body, grid only).
const PAGES: &[(&str, &str, &str, bool)] = &[
    (
        "/console",
        "Overview",
        include_str!("assets/overview.html"),
        false,
    ),
    (
        "/console/strategies",
        "Strategies",
        include_str!("assets/strategies.html"),
        false,
    ),
    (
        "/console/experiments",
        "Experiments",
        include_str!("assets/experiments.html"),
        true,
    ),
    (
        "/console/admissions",
        "Admissions",
        include_str!("assets/admissions.html"),
        false,
    ),
];

pub fn routes<R: HasHub>() -> Router<Arc<R>> {
    Router::new()
        .route("/", get(root))
        .route("/console/sign-in", post(sign_in::<R>))
        .route("/console/sign-out", post(sign_out))
        .route("/console/session", get(whoami::<R>))
        .route("/console/app.js", get(script))
        .route("/console/app.css", get(style))
        .route("/console", get(overview::<R>))
        .route("/console/strategies", get(strategies::<R>))
        .route("/console/admissions", get(admissions::<R>))
}

/// The pages only a grid has.
pub fn grid_routes<R: HasHub>() -> Router<Arc<R>> {
    Router::new().route("/console/experiments", get(experiments::<R>))
}

#[utoipa::path(get, path = "/", tag = "console", description = "To the console.", responses((status = 303, description = "To `/console`")))]
async fn root() -> Redirect {
    Redirect::to("/console")
}

const PAGE: &str = "The page for a signed-in operator, or the sign-in form.";

#[utoipa::path(get, path = "/console", tag = "console", description = PAGE, responses((status = 200, description = "HTML", body = String, content_type = "text/html")))]
async fn overview<R: HasHub>(role: State<Arc<R>>, request: Request) -> Response {
    page(role, request, 0).await
}

#[utoipa::path(get, path = "/console/strategies", operation_id = "console_strategies", tag = "console", description = PAGE, responses((status = 200, description = "HTML", body = String, content_type = "text/html")))]
async fn strategies<R: HasHub>(role: State<Arc<R>>, request: Request) -> Response {
    page(role, request, 1).await
}

#[utoipa::path(get, path = "/console/experiments", operation_id = "console_experiments", tag = "console", description = PAGE, responses((status = 200, description = "HTML", body = String, content_type = "text/html")))]
async fn experiments<R: HasHub>(role: State<Arc<R>>, request: Request) -> Response {
    page(role, request, 2).await
}

#[utoipa::path(get, path = "/console/admissions", operation_id = "console_admissions", tag = "console", description = PAGE, responses((status = 200, description = "HTML", body = String, content_type = "text/html")))]
async fn admissions<R: HasHub>(role: State<Arc<R>>, request: Request) -> Response {
    page(role, request, 3).await
}

fn sessions(extensions: &axum::http::Extensions) -> Option<&Arc<Sessions>> {
    extensions.get::<Arc<Sessions>>()
}

/// A page for a signed-in operator, or the sign-in form.
async fn page<R: HasHub>(State(role): State<Arc<R>>, request: Request, index: usize) -> Response {
    let grid = role.is_grid();
    let (parts, _) = request.into_parts();
    let token = sessions(&parts.extensions).and_then(|s| s.token(&parts.headers));
    let signed_in = role
        .hub()
        .operators
        .check(token.as_deref(), Scope::Read)
        .is_ok();
    if !signed_in {
        return sign_in_page(StatusCode::OK, None);
    }
    let (_, title, body, _) = PAGES[index];
    let nav: String = PAGES
        .iter()
        .enumerate()
        .filter(|(_, p)| grid || !p.3)
        .map(|(i, (path, title, ..))| {
            let current = if i == index {
                " aria-current=\"page\""
            } else {
                ""
            };
            format!("<a href=\"{path}\"{current}>{title}</a>")
        })
        .collect();
    let kind = if grid { "grid" } else { "producer" };
    html(
        StatusCode::OK,
        &format!(
            include_str!("assets/shell.html"),
            title = title,
            kind = kind,
            id = escape(&role.hub().id),
            nav = nav,
            body = body,
        ),
    )
}

fn html(status: StatusCode, text: &str) -> Response {
    (
        status,
        [
            // Nothing of the console loads from elsewhere, nor may it be framed.
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'self'; img-src 'self' data:; style-src 'self'; frame-ancestors 'none'; form-action 'self'",
            ),
            (header::CACHE_CONTROL, "no-store"),
            (header::X_FRAME_OPTIONS, "DENY"),
        ],
        Html(text.to_owned()),
    )
        .into_response()
}

fn sign_in_page(status: StatusCode, error: Option<&str>) -> Response {
    let error = error
        .map(|e| format!("<p class=\"error\" role=\"alert\">{}</p>", escape(e)))
        .unwrap_or_default();
    html(
        status,
        &format!(include_str!("assets/sign-in.html"), error = error),
    )
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

#[derive(Deserialize, utoipa::ToSchema)]
struct SignIn {
    token: String,
}

/// Takes the token from a form (never a URL) and answers with the cookie.
#[utoipa::path(
    post,
    path = "/console/sign-in",
    tag = "console",
    description = "Signs in with an operator token (a form field, never a URL): a session cookie (`HttpOnly`, `SameSite=Strict`, 12 h) and to `/console`.",
    request_body(content = SignIn, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 303, description = "Signed in: `Set-Cookie` and `Location: /console`"),
        (status = "4XX", description = "Refused: the form again, with why", body = String, content_type = "text/html"),
    )
)]
async fn sign_in<R: HasHub>(State(role): State<Arc<R>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let Some(sessions) = sessions(&parts.extensions).cloned() else {
        return ApiError::internal("no session store").into_response();
    };
    let Ok(bytes) = axum::body::to_bytes(body, MAX_BODY_BYTES).await else {
        return sign_in_page(StatusCode::BAD_REQUEST, Some("the form could not be read"));
    };
    let Ok(SignIn { token }) = serde_urlencoded::from_bytes::<SignIn>(&bytes) else {
        return sign_in_page(StatusCode::BAD_REQUEST, Some("the form needs a `token`"));
    };
    if let Err(why) = role.hub().operators.check(Some(token.trim()), Scope::Read) {
        let status = match why {
            powerplug_roles::role::config::Denied::NoOperator => StatusCode::FORBIDDEN,
            _ => StatusCode::UNAUTHORIZED,
        };
        return sign_in_page(status, Some(&crate::denied(why).message));
    }
    match sessions.open(token.trim().to_owned()) {
        Ok(id) => (
            StatusCode::SEE_OTHER,
            [
                (header::SET_COOKIE, session::set_cookie(&id)),
                (header::LOCATION, "/console".to_owned()),
            ],
        )
            .into_response(),
        Err(e) => ApiError::internal(e).into_response(),
    }
}

#[utoipa::path(post, path = "/console/sign-out", tag = "console", description = "Ends the session on the host and clears the cookie.", responses((status = 303, description = "Signed out: to `/console`")))]
async fn sign_out(request: Request) -> Response {
    let (parts, _) = request.into_parts();
    if let Some(sessions) = sessions(&parts.extensions) {
        sessions.close(&parts.headers);
    }
    (
        StatusCode::SEE_OTHER,
        [
            (header::SET_COOKIE, session::clear_cookie()),
            (header::LOCATION, "/console".to_owned()),
        ],
    )
        .into_response()
}

/// What the signed-in token may do, so a page offers only that.
#[utoipa::path(
    get,
    path = "/console/session",
    tag = "console",
    description = "What the session's (or bearer's) token may do. Operator scope: `read`.",
    responses(
        (status = 200, description = "Its scopes", body = serde_json::Value),
        (status = "4XX", description = "No session", body = crate::openapi::ErrorBody),
    ),
    security(("operator" = []), ("session" = []))
)]
async fn whoami<R: HasHub>(
    State(role): State<Arc<R>>,
    OperatorToken(token): OperatorToken,
) -> Result<axum::Json<serde_json::Value>, ApiError> {
    let operators = &role.hub().operators;
    operators
        .check(token.as_deref(), Scope::Read)
        .map_err(crate::denied)?;
    let may = |scope| operators.check(token.as_deref(), scope).is_ok();
    Ok(axum::Json(serde_json::json!({
        "id": role.hub().id,
        "leading": role.leading(),
        "deploy": may(Scope::Deploy),
        "admit": may(Scope::Admit),
        "mint": may(Scope::Mint),
    })))
}

fn asset(content_type: &'static str, text: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        text,
    )
        .into_response()
}

#[utoipa::path(get, path = "/console/app.js", tag = "console", description = "The console's script.", responses((status = 200, description = "JavaScript", body = String, content_type = "text/javascript")))]
async fn script() -> Response {
    asset(
        "text/javascript; charset=utf-8",
        include_str!("assets/app.js"),
    )
}

#[utoipa::path(get, path = "/console/app.css", tag = "console", description = "The console's style sheet.", responses((status = 200, description = "CSS", body = String, content_type = "text/css")))]
async fn style() -> Response {
    asset("text/css; charset=utf-8", include_str!("assets/app.css"))
}
