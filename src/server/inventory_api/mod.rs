//! The inventory API: runtime changes to the live EC2 inventory
//! ([`InventoryStore`]) over HTTP/JSON and gRPC (`iamgate.v1.Inventory`,
//! `proto/iamgate/v1/inventory.proto`), served only on the authenticated
//! control listener ([`super::control`]).
//!
//! - `POST /v1/inventory`: a batch of changes (`upsert`, `delete`,
//!   `grants`), applied atomically.
//! - `GET /v1/inventory/{id}`: one resource.
//! - `POST /v1/inventory/cli?account=…&region=…`: one AWS CLI `describe-*`
//!   output document, read as the bundle's `ec2/` files are.
//!
//! Who writes: the control plane, after its backend confirmed a change
//! (an instance launched, a launch permission removed, ...). ext_authz never
//! writes here, since it does not see the backend's answer. Changes are
//! runtime overlay entries over the bundle's seed (see [`InventoryStore`]
//! for what survives reloads and restarts); a write that cannot be
//! persisted is refused (500) and changes nothing, and writes before the
//! first bundle are 503.
//!
//! A thin adapter: bound the input, check every change of a batch before
//! applying any (a refused batch changes nothing), apply on a blocking
//! thread, shape the answer. Writes never block decisions: the store swaps
//! in a new copy-on-write inventory. The wire shape of a resource is
//! defined here (JSON) and in the proto (gRPC); both are converted through
//! [`ResourceJson`], so they are validated by the same code. The gRPC
//! `Resource` is a typed message mirroring [`Resource`], not a JSON string,
//! so that generated clients and reflection see the schema. Errors become
//! statuses only through [`ServeError`]. No EC2 authorization semantics
//! live here.
//!
//! Files: [`wire`] holds the JSON wire shape and its validation into the
//! inventory model (and back), [`grpc`] the `iamgate.v1.Inventory` service
//! and its proto conversion (through the same validation); this file holds
//! the HTTP routes and the atomic apply both front-ends share.

mod grpc;
mod wire;

use axum::Router;
use axum::extract::{RawQuery, State};
use axum::routing::{get, post};
use http::{Response, StatusCode, Uri};
use serde_json::{Value, json};

use std::sync::Arc;

use crate::ec2::inventory::InventoryCounts;
use crate::ec2::inventory_store::{Applied, Change, InventoryStore, InventoryStoreError};
use crate::ec2::service::Ec2Service;
use crate::server::errors::ServeError;
use crate::server::http_util::{Body, json as json_response};
use crate::server::router::{Json, JsonBody};
use crate::server::state::AppState;
use crate::telemetry::Frontend;

pub use grpc::InventoryService;
use wire::{BatchJson, check_account, check_id, check_region, resource_value};
pub use wire::{InvalidInventory, ResourceJson, resource_from_json, resource_to_json};

// ── Applying ────────────────────────────────────────────────────────────

/// Refuses batches over the configured limit.
pub(super) fn check_batch(state: &AppState, n: usize) -> Result<(), ServeError> {
    let limit = state.config.limits.max_inventory_batch;
    if n > limit {
        return Err(ServeError::BatchTooLarge { got: n, limit });
    }
    Ok(())
}

/// The status of a store refusal: no seed yet is 503 (as decisions are),
/// a document that does not read is the caller's, a state directory that
/// cannot be written is ours.
fn store_error(e: InventoryStoreError) -> ServeError {
    match e {
        InventoryStoreError::NotSeeded => ServeError::NotReady,
        InventoryStoreError::Invalid(e) => ServeError::BadRequest(e.to_string()),
        InventoryStoreError::State { .. } => {
            tracing::error!(error = %e, "inventory change refused: the state directory cannot be written");
            ServeError::Internal(e.to_string())
        }
    }
}

/// Runs a store write on a blocking thread (it may write the state
/// directory).
async fn blocking<T: Send + 'static>(
    state: &AppState,
    write: impl FnOnce(&InventoryStore) -> Result<T, InventoryStoreError> + Send + 'static,
) -> Result<T, ServeError> {
    let inventory = store(state)?.clone();
    tokio::task::spawn_blocking(move || write(&inventory))
        .await
        .map_err(|e| ServeError::Internal(format!("inventory write: {e}")))?
        .map_err(store_error)
}

/// Applies checked changes; returns what they did and the counts after.
pub(super) async fn apply(
    state: &AppState,
    frontend: Frontend,
    changes: Vec<Change>,
) -> Result<(Applied, InventoryCounts), ServeError> {
    let n = changes.len();
    let applied = if changes.is_empty() {
        Applied::default()
    } else {
        blocking(state, move |inv| inv.apply(changes)).await?
    };
    tracing::info!(
        frontend = frontend.as_str(),
        changes = n,
        upserted = applied.upserted,
        deleted = applied.deleted,
        grants_changed = applied.grants_changed,
        not_found = applied.not_found,
        "inventory batch applied"
    );
    Ok((applied, store(state)?.counts()))
}

/// The live inventory: the EC2 service's.
pub(super) fn store(state: &AppState) -> Result<&Arc<InventoryStore>, ServeError> {
    Ok(state.service::<Ec2Service>()?.inventory())
}

// ── HTTP ────────────────────────────────────────────────────────────────

/// The inventory API's HTTP routes, for the control listener's router.
pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/v1/inventory", post(apply_batch))
        .route("/v1/inventory/cli", post(apply_cli))
        .route("/v1/inventory/{*id}", get(get_one))
}

/// `POST /v1/inventory`: a batch of changes, applied atomically.
async fn apply_batch(
    State(state): State<Arc<AppState>>,
    Json(batch): Json<BatchJson>,
) -> Result<Response<Body>, ServeError> {
    check_batch(&state, batch.changes.len())?;
    let changes = batch
        .changes
        .into_iter()
        .enumerate()
        .map(|(i, c)| c.into_change(&format!("$.changes[{i}]")))
        .collect::<Result<Vec<_>, _>>()
        .map_err(ServeError::from)?;
    let (applied, counts) = apply(&state, Frontend::Http, changes).await?;
    ok(json!({"applied": applied, "counts": counts}))
}

/// `POST /v1/inventory/cli?account=…&region=…`: one AWS CLI document.
async fn apply_cli(
    State(state): State<Arc<AppState>>,
    RawQuery(query): RawQuery,
    JsonBody(body): JsonBody,
) -> Result<Response<Body>, ServeError> {
    let (account, region) = cli_params(query.as_deref().unwrap_or(""))?;
    let doc: Value = crate::server::http_util::parse_json(&body)?;
    let (acct, reg) = (account.clone(), region.clone());
    let loaded = blocking(&state, move |inv| inv.apply_cli(&doc, &acct, &reg)).await?;
    tracing::info!(%account, %region, loaded, "inventory CLI document applied");
    ok(json!({"loaded": loaded, "counts": store(&state)?.counts()}))
}

/// `GET /v1/inventory/{id}`: one resource. The id is taken from the path
/// as sent, not percent-decoded (as axum's path extractors do), so it is
/// checked exactly as the client wrote it.
async fn get_one(
    State(state): State<Arc<AppState>>,
    uri: Uri,
) -> Result<Response<Body>, ServeError> {
    let id = uri
        .path()
        .strip_prefix("/v1/inventory/")
        .unwrap_or_default();
    check_id(id, "id").map_err(ServeError::from)?;
    let inventory = store(&state)?.load();
    let resource = inventory.get(id).ok_or(ServeError::NotFound)?;
    ok(json!({"resource": resource_value(resource)}))
}

fn ok(body: Value) -> Result<Response<Body>, ServeError> {
    Ok(json_response(StatusCode::OK, body.to_string().into_bytes()))
}

/// `account` and `region` of `POST /v1/inventory/cli`, both required.
fn cli_params(query: &str) -> Result<(String, String), ServeError> {
    let (mut account, mut region) = (None, None);
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let v = percent_encoding::percent_decode_str(v)
            .decode_utf8()
            .map_err(|_| ServeError::BadRequest(format!("query parameter `{k}` is not UTF-8")))?
            .into_owned();
        let slot = match k {
            "account" => &mut account,
            "region" => &mut region,
            _ => {
                return Err(ServeError::BadRequest(format!(
                    "unknown query parameter `{k}` (expected `account` and `region`)"
                )));
            }
        };
        if slot.replace(v).is_some() {
            return Err(ServeError::BadRequest(format!(
                "query parameter `{k}` given twice"
            )));
        }
    }
    let missing = |k: &str| ServeError::BadRequest(format!("query parameter `{k}` is required"));
    let account = account.ok_or_else(|| missing("account"))?;
    let region = region.ok_or_else(|| missing("region"))?;
    check_account(&account, "account").map_err(ServeError::from)?;
    check_region(&region, "region").map_err(ServeError::from)?;
    Ok((account, region))
}

#[cfg(test)]
mod tests;
