//! The API's HTTP server (axum).

use super::*;
use crate::lifecycle::SectorEvent;
use crate::pipeline::packing::{self, PackingError};
use crate::pipeline::{lock, now_ms, PipelineConfig, ProgressMap, SharedLedger};
use crate::store::StoreError;
use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, Path as UrlPath, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use std::sync::Arc;

/// What the handlers share.
pub struct ApiContext {
    /// Sectors and chain.
    pub ledger: SharedLedger,
    /// The driver's settings (paths, sector size).
    pub config: PipelineConfig,
    /// Running tasks' progress.
    pub progress: ProgressMap,
    /// The bearer token.
    pub token: String,
}

/// An error answer.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    body: ApiErrorBody,
}

impl ApiError {
    fn new(status: StatusCode, kind: &str, message: impl Into<String>) -> Self {
        Self { status, body: ApiErrorBody { kind: kind.into(), message: message.into() } }
    }
    fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_argument", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body)).into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::UnknownSector(_) => Self::new(StatusCode::NOT_FOUND, "not_found", e.to_string()),
            StoreError::Transition { .. } | StoreError::NotPacking { .. } => {
                Self::new(StatusCode::CONFLICT, "conflict", e.to_string())
            }
            _ => Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()),
        }
    }
}

impl From<crate::chain::ChainError> for ApiError {
    fn from(e: crate::chain::ChainError) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string())
    }
}

impl From<PackingError> for ApiError {
    fn from(e: PackingError) -> Self {
        match e {
            PackingError::Store(e) => e.into(),
            e => Self::invalid(e.to_string()),
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(e: JsonRejection) -> Self {
        Self::new(e.status(), "invalid_argument", e.body_text())
    }
}

type Ctx = State<Arc<ApiContext>>;
type ApiResult<T> = Result<Json<T>, ApiError>;

/// The API's routes, behind the token check.
pub fn router(ctx: Arc<ApiContext>) -> Router {
    let api = Router::new()
        .route("/sectors", get(list_sectors))
        .route("/sectors/pledge", post(pledge))
        .route("/sectors/add-piece", post(add_piece))
        .route("/sectors/:number", get(sector_status))
        .route("/sectors/:number/remove", post(remove_sector))
        .route("/chain/head", get(chain_head))
        .route("/chain/messages", get(chain_messages))
        .layer(middleware::from_fn_with_state(ctx.clone(), authenticate))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(ctx);
    Router::new()
        .nest(API_PREFIX, api)
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such API endpoint") })
}

/// Constant-time comparison, so the token cannot be guessed byte by byte from timings.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn authenticate(State(ctx): Ctx, request: Request, next: Next) -> Response {
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match given {
        Some(token) if same(token.as_bytes(), ctx.token.as_bytes()) => next.run(request).await,
        Some(_) => {
            ApiError::new(StatusCode::UNAUTHORIZED, "unauthenticated", "invalid API token").into_response()
        }
        None => ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "missing `Authorization: Bearer <token>` (the token is in the daemon's data directory)",
        )
        .into_response(),
    }
}

/// Runs blocking ledger work off the async workers.
async fn blocking<T: Send + 'static>(
    ctx: Arc<ApiContext>,
    f: impl FnOnce(&ApiContext) -> Result<T, ApiError> + Send + 'static,
) -> ApiResult<T> {
    tokio::task::spawn_blocking(move || f(&ctx))
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?
        .map(Json)
}

fn sector_number(raw: &str) -> Result<u64, ApiError> {
    raw.parse().map_err(|_| ApiError::invalid(format!("sector number {raw:?} is not a non-negative integer")))
}

fn progress_of(ctx: &ApiContext, number: u64) -> Option<crate::pipeline::TaskProgress> {
    ctx.progress.lock().unwrap_or_else(|p| p.into_inner()).get(&number).cloned()
}

async fn list_sectors(State(ctx): Ctx) -> ApiResult<Vec<SectorListEntry>> {
    blocking(ctx, |ctx| {
        let rows = lock(&ctx.ledger).store.sectors()?;
        Ok(rows
            .into_iter()
            .map(|sector| SectorListEntry { progress: progress_of(ctx, sector.number), sector })
            .collect())
    })
    .await
}

async fn sector_status(State(ctx): Ctx, UrlPath(number): UrlPath<String>) -> ApiResult<SectorStatus> {
    let number = sector_number(&number)?;
    blocking(ctx, move |ctx| {
        let mut l = lock(&ctx.ledger);
        let sector = l.store.sector(number)?.ok_or(StoreError::UnknownSector(number))?;
        let pieces = l.store.pieces(number)?;
        let events = l.store.events(number)?;
        let now = now_ms();
        let on_chain = l.chain.precommit(number, now)?;
        let commit_receipt = match sector.commit_message.as_deref().map(str::parse::<u64>) {
            Some(Ok(id)) => l.chain.receipt(id, now)?,
            _ => None,
        };
        drop(l);
        Ok(SectorStatus {
            progress: progress_of(ctx, number),
            sector,
            pieces,
            events,
            on_chain,
            commit_receipt,
        })
    })
    .await
}

async fn pledge(
    State(ctx): Ctx,
    body: Result<Json<PledgeRequest>, JsonRejection>,
) -> ApiResult<PledgeResponse> {
    let Json(req) = body?;
    if !(1..=1000).contains(&req.count) {
        return Err(ApiError::invalid(format!("count {} is not between 1 and 1000", req.count)));
    }
    blocking(ctx, move |ctx| {
        let sectors = packing::pledge(&ctx.ledger, &ctx.config, req.count, now_ms())?;
        tracing::info!(?sectors, "pledged");
        Ok(PledgeResponse { sectors })
    })
    .await
}

async fn add_piece(
    State(ctx): Ctx,
    body: Result<Json<AddPieceRequest>, JsonRejection>,
) -> ApiResult<packing::AddedPiece> {
    let Json(req) = body?;
    blocking(ctx, move |ctx| Ok(packing::add_piece(&ctx.ledger, &ctx.config, &req.path, now_ms())?)).await
}

async fn remove_sector(
    State(ctx): Ctx,
    UrlPath(number): UrlPath<String>,
) -> ApiResult<crate::store::SectorRow> {
    let number = sector_number(&number)?;
    blocking(ctx, move |ctx| Ok(lock(&ctx.ledger).store.apply(number, &SectorEvent::Remove, now_ms())?)).await
}

async fn chain_head(State(ctx): Ctx) -> ApiResult<ChainHead> {
    blocking(ctx, |ctx| {
        let mut l = lock(&ctx.ledger);
        let now = now_ms();
        let epoch = l.chain.head(now)?;
        let messages = l.chain.messages(now)?;
        Ok(ChainHead {
            epoch,
            messages: messages.len() as u64,
            executed: messages.iter().filter(|m| m.2.is_some()).count() as u64,
        })
    })
    .await
}

async fn chain_messages(State(ctx): Ctx) -> ApiResult<Vec<ChainMessage>> {
    blocking(ctx, |ctx| {
        let messages = lock(&ctx.ledger).chain.messages(now_ms())?;
        Ok(messages.into_iter().map(|(id, message, receipt)| ChainMessage { id, message, receipt }).collect())
    })
    .await
}
