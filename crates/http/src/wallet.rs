//! The grid's ledger over HTTP: an entity pays from, and reads, its own
//! account under its credential; the operator issues money.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use serde::Deserialize;

use super::hub::HasHub;
use super::{ApiError, ApiResult, Authorized, Bearer, Body, MINT, Params, blocking};
use powerplug_ledger::{
    self as wallet, Account, Batch, BatchAnswer, Outcome, PAY_BATCH, PayRequest, Transfer,
    WalletError,
};
use powerplug_roles::api;
use powerplug_roles::role::grid::Grid;

#[derive(utoipa::OpenApi)]
#[openapi(paths(account, pay, pay_batch, issue))]
pub struct Api;

/// Transfers one `GET /wallet` answers at most; page with `since`.
const MAX_TRANSFERS: usize = 1_000;

pub fn routes() -> Router<Arc<Grid>> {
    Router::new()
        .route("/wallet", get(account))
        .route("/wallet/transfers", post(pay))
        .route("/wallet/transfers/batch", post(pay_batch))
        .route("/wallet/issue", post(issue))
}

impl From<WalletError> for ApiError {
    fn from(e: WalletError) -> Self {
        let status = match &e {
            WalletError::KeyReused { .. } => StatusCode::CONFLICT,
            WalletError::Storage(_) => return ApiError::internal(e),
            _ => StatusCode::UNPROCESSABLE_ENTITY,
        };
        let field = match e.field() {
            // A payment names the account it pays as `to`.
            "account" => "to",
            field => field,
        };
        ApiError::new(status, field, e.to_string())
    }
}

fn check_key(key: &str) -> ApiResult<()> {
    if powerplug_storage::valid_name(key)
        || (key.len() <= 128 && key.split('/').all(powerplug_storage::valid_name))
    {
        Ok(())
    } else {
        Err(ApiError::unprocessable(
            "key",
            "1 to 128 of A-Z a-z 0-9 _ - . /",
        ))
    }
}

/// Where a payment goes: a receive address of this ledger, or the grid
/// itself; `None`: neither (or an address retention let go).
fn payee(grid: &Grid, to: &str) -> ApiResult<Option<String>> {
    if to == grid.account() {
        return Ok(Some(to.to_owned()));
    }
    Ok(grid.resolve(to)?)
}

/// One payment inside the caller's transaction; keys are per payer, so one
/// entity cannot collide with another's.
fn pay_one(
    grid: &Grid,
    tx: &dyn powerplug_storage::WriteTx,
    credential: &str,
    body: &PayRequest,
) -> ApiResult<Transfer> {
    check_key(&body.key)?;
    let payer = grid.hub().registry.authenticate(grid.db(), credential)?;
    let key = format!("{}/{}", payer.id, body.key);
    let Some(to) = payee(grid, &body.to)? else {
        // A payment made before its address was let go is still answered
        // as made: its payer may only be asking again after a lost answer.
        if let Some(first) = wallet::by_key_in(tx, &key)?
            && first.from.as_str() == payer.id
            && first.amount == body.amount
        {
            return Ok(first);
        }
        return Err(ApiError::unprocessable(
            "to",
            format!(
                "`{}` is no receive address of this ledger (or one so old it was let go: pay `{}` instead)",
                body.to,
                grid.account()
            ),
        ));
    };
    Ok(wallet::transfer(
        tx,
        &payer.id,
        &to,
        body.amount,
        &payer.id,
        &key,
        wallet::UnixMs::now(),
    )?)
}

#[utoipa::path(
    post,
    path = "/wallet/transfers",
    tag = "wallet",
    description = "Pays from the entity's account; a repeat under the same key moves nothing again.",
    request_body = PayRequest,
    responses((status = 201, description = "The transfer", body = serde_json::Value), crate::openapi::Refused),
    security(("entity" = [])),
)]
async fn pay(
    State(grid): State<Arc<Grid>>,
    bearer: Bearer,
    Body(body): Body<PayRequest>,
) -> ApiResult<(StatusCode, Json<Transfer>)> {
    // Who asks, before what they ask is looked at (found by schemathesis).
    let Some(credential) = bearer.0 else {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "authorization",
            "a credential is needed",
        ));
    };
    check_key(&body.key)?;
    blocking(move || {
        let credential = credential.as_str();
        let tx = grid.db().write()?;
        let transfer = pay_one(&grid, &*tx, credential, &body)?;
        tx.commit()?;
        Ok((StatusCode::CREATED, Json(transfer)))
    })
    .await
}

/// Many payers' payments, each under its own credential, in one ledger write:
/// a meter host with thousands of consumers pays for all of them at once. A
/// refused payment is reported in its place and moves nothing.
#[utoipa::path(
    post,
    path = "/wallet/transfers/batch",
    tag = "wallet",
    description = "Many payers' payments, each under its payer's credential, in one ledger write.",
    request_body = Batch,
    responses((status = 200, description = "Done", body = serde_json::Value), crate::openapi::Refused),
)]
async fn pay_batch(
    State(grid): State<Arc<Grid>>,
    Body(body): Body<Batch>,
) -> ApiResult<Json<BatchAnswer>> {
    if body.payments.len() > PAY_BATCH {
        return Err(ApiError::unprocessable(
            "payments",
            format!("at most {PAY_BATCH} a batch"),
        ));
    }
    blocking(move || {
        let tx = grid.db().write()?;
        let mut outcomes = Vec::with_capacity(body.payments.len());
        for p in &body.payments {
            let request = PayRequest {
                to: p.to.clone(),
                amount: p.amount,
                key: p.key.clone(),
            };
            outcomes.push(match pay_one(&grid, &*tx, &p.credential, &request) {
                Ok(transfer) => Outcome::Paid(transfer),
                Err(e) if e.status.is_client_error() => Outcome::Refused {
                    error: e.message,
                    field: e.field.unwrap_or_default(),
                },
                Err(e) => return Err(e),
            });
        }
        tx.commit()?;
        Ok(Json(BatchAnswer { outcomes }))
    })
    .await
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct Since {
    since: Option<u64>,
    /// Only the payment made under this key (the caller's own keys), if
    /// the ledger holds it: how a meter finds which of its payments a
    /// restored ledger lost.
    key: Option<String>,
}

#[utoipa::path(
    get,
    path = "/wallet",
    tag = "wallet",
    description = "The entity's balance and transfers.",
    params(Since),
    responses((status = 200, description = "Done", body = serde_json::Value), crate::openapi::Refused),
    security(("entity" = [])),
)]
async fn account(
    State(grid): State<Arc<Grid>>,
    bearer: Bearer,
    Params(query): Params<Since>,
) -> ApiResult<Json<Account>> {
    blocking(move || {
        let Some(credential) = bearer.0.as_deref() else {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "authorization",
                "a credential is needed",
            ));
        };
        let me = grid.hub().registry.authenticate(grid.db(), credential)?;
        let transfers = match &query.key {
            Some(key) => {
                check_key(key)?;
                wallet::by_key(grid.db(), &format!("{}/{key}", me.id))?
                    .into_iter()
                    .collect()
            }
            None => {
                wallet::transfers_page(grid.db(), &me.id, query.since.unwrap_or(0), MAX_TRANSFERS)?
            }
        };
        Ok(Json(Account {
            balance: wallet::balance(grid.db(), &me.id)?,
            account: me.id,
            transfers,
            last_seq: wallet::last_seq(grid.db())?,
            pruned_below: wallet::transfers_floor(grid.db())?,
        }))
    })
    .await
}

/// New money, only into an account that exists: a registered entity's (not
/// closed), the grid's own, or one the operator opens on purpose with
/// `"unregistered": true` (still a valid id).
#[utoipa::path(
    post,
    path = "/wallet/issue",
    tag = "wallet",
    description = "Issues new money to an account. Operator scope: `mint`.",
    request_body = powerplug_roles::api::Issue,
    responses((status = 201, description = "The transfer", body = serde_json::Value), crate::openapi::Refused),
    security(("operator" = []), ("session" = [])),
)]
async fn issue(
    State(grid): State<Arc<Grid>>,
    _: Authorized<MINT>,
    Body(body): Body<api::Issue>,
) -> ApiResult<(StatusCode, Json<Transfer>)> {
    check_key(&body.key)?;
    if !powerplug_storage::valid_name(&body.to) {
        return Err(ApiError::unprocessable(
            "to",
            "an account is an id: 1 to 64 of A-Z a-z 0-9 _ - . , not starting with a dot",
        ));
    }
    blocking(move || {
        let tx = grid.db().write()?;
        let known = body.to == grid.account()
            || powerplug_roles::registry::read(&*tx, &body.to)?.is_some_and(|r| !r.closed);
        if !known && !body.unregistered {
            return Err(ApiError::unprocessable(
                "to",
                format!(
                    "`{}` is no registered entity of this grid (to fund an id before it registers, say `\"unregistered\": true`)",
                    body.to
                ),
            ));
        }
        let transfer = wallet::issue(
            &*tx,
            &body.to,
            body.amount,
            &wallet::host_key(&format!("issue/{}", body.key)),
            wallet::UnixMs::now(),
        )?;
        tx.commit()?;
        Ok((StatusCode::CREATED, Json(transfer)))
    })
    .await
}
