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
use super::{ApiError, ApiResult, Bearer, Body, Params, blocking, operator};
use crate::api;
use crate::role::grid::Grid;
use crate::wallet::{self, Account, PayRequest, Transfer, WalletError};

/// Transfers one `GET /wallet` answers at most; page with `since`.
const MAX_TRANSFERS: usize = 1_000;

pub fn routes() -> Router<Arc<Grid>> {
    Router::new()
        .route("/wallet", get(account))
        .route("/wallet/transfers", post(pay))
        .route("/wallet/issue", post(issue))
}

impl From<WalletError> for ApiError {
    fn from(e: WalletError) -> Self {
        let status = match &e {
            WalletError::KeyReused { .. } => StatusCode::CONFLICT,
            WalletError::Storage(_) => return ApiError::internal(e),
            _ => StatusCode::UNPROCESSABLE_ENTITY,
        };
        let message = e.to_string();
        let field = message.split(':').next().unwrap_or("").to_owned();
        let field = if field == "account" { "to".to_owned() } else { field };
        ApiError::new(status, &field, message)
    }
}

fn check_key(key: &str) -> ApiResult<()> {
    if crate::storage::valid_name(key) || (key.len() <= 128 && key.split('/').all(crate::storage::valid_name)) {
        Ok(())
    } else {
        Err(ApiError::unprocessable("key", "1 to 128 of A-Z a-z 0-9 _ - . /"))
    }
}

async fn pay(
    State(grid): State<Arc<Grid>>,
    bearer: Bearer,
    Body(body): Body<PayRequest>,
) -> ApiResult<(StatusCode, Json<Transfer>)> {
    check_key(&body.key)?;
    blocking(move || {
        let Some(credential) = bearer.0.as_deref() else {
            return Err(ApiError::new(StatusCode::UNAUTHORIZED, "authorization", "a credential is needed"));
        };
        let payer = grid.hub().registry.authenticate(grid.db(), credential)?;
        let to = if body.to == grid.account() {
            body.to.clone()
        } else {
            wallet::resolve(grid.db(), &body.to)?
                .ok_or_else(|| ApiError::unprocessable("to", format!("`{}` is no receive address of this ledger", body.to)))?
        };
        // Keys are per payer, so one entity cannot collide with another's.
        let key = format!("{}/{}", payer.id, body.key);
        let tx = grid.db().write().map_err(ApiError::internal)?;
        let transfer = wallet::transfer(&*tx, &payer.id, &to, body.amount, &payer.id, &key, crate::role::unix_ms())?;
        tx.commit().map_err(ApiError::internal)?;
        Ok((StatusCode::CREATED, Json(transfer)))
    })
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Since {
    since: Option<u64>,
}

async fn account(
    State(grid): State<Arc<Grid>>,
    bearer: Bearer,
    Params(query): Params<Since>,
) -> ApiResult<Json<Account>> {
    blocking(move || {
        let Some(credential) = bearer.0.as_deref() else {
            return Err(ApiError::new(StatusCode::UNAUTHORIZED, "authorization", "a credential is needed"));
        };
        let me = grid.hub().registry.authenticate(grid.db(), credential)?;
        let mut transfers = wallet::transfers_since(grid.db(), &me.id, query.since.unwrap_or(0))?;
        transfers.truncate(MAX_TRANSFERS);
        Ok(Json(Account {
            balance: wallet::balance(grid.db(), &me.id)?,
            account: me.id,
            transfers,
        }))
    })
    .await
}

async fn issue(
    State(grid): State<Arc<Grid>>,
    bearer: Bearer,
    Body(body): Body<api::Issue>,
) -> ApiResult<(StatusCode, Json<Transfer>)> {
    operator(grid.hub().operator_token.as_deref(), &bearer)?;
    check_key(&body.key)?;
    blocking(move || {
        let tx = grid.db().write().map_err(ApiError::internal)?;
        let transfer = wallet::issue(&*tx, &body.to, body.amount, &format!("$issue/{}", body.key), crate::role::unix_ms())?;
        tx.commit().map_err(ApiError::internal)?;
        Ok((StatusCode::CREATED, Json(transfer)))
    })
    .await
}
