//! The API's HTTP server (axum).

use super::views::{self, worker_view};
use super::*;
use crate::ledger::SharedLedger;
use crate::lifecycle::{SectorEvent, SectorState};
use crate::pipeline::packing::{self, PackingError};
use crate::pipeline::{PauseMap, PipelineConfig, ProgressMap};
use crate::store::{StoreError, TokenRow};
use crate::workers::scheduler::worker_state;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, JsonRejection};
use axum::extract::{DefaultBodyLimit, Extension, Path as UrlPath, Query, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use std::sync::Arc;
use wire::worker::{self as protocol, PROTOCOL_VERSION};

/// What the handlers share.
pub struct ApiContext {
    /// Sectors and chain.
    pub ledger: SharedLedger,
    /// The driver's settings (paths, sector size).
    pub config: PipelineConfig,
    /// Running tasks' progress.
    pub progress: ProgressMap,
    /// Task kinds paused by a node fault.
    pub paused: PauseMap,
    /// The daemon's own bearer token.
    pub token: String,
    /// This daemon process's random id (workers re-register when it changes).
    pub instance: String,
    /// Sectors per state over time.
    pub history: Arc<super::metrics::History>,
    /// The web view's signed-in sessions.
    pub sessions: super::ui::Sessions,
    /// Whether the API serves HTTPS (session cookies are then `Secure`).
    pub tls: bool,
    /// How file descriptors are shared (shown by `/v0/status`).
    pub descriptors: wire::descriptors::Budget,
    /// The API's port (names the web view's session cookie).
    pub port: u16,
    /// When each worker last registered and heartbeated (rate limits).
    pub worker_calls: WorkerCalls,
}

/// When each worker last registered and heartbeated: each is a durable
/// transaction, so a worker calling faster than its heartbeat needs is
/// answered 429 (`busy`), which it retries later.
#[derive(Default)]
pub struct WorkerCalls(std::sync::Mutex<std::collections::HashMap<(String, String), std::time::Instant>>);

impl WorkerCalls {
    /// Whether worker `name` may make call `what` now, given at most one per
    /// `every`; records the call if so.
    fn allow(&self, name: &str, what: &str, every: std::time::Duration) -> bool {
        let now = std::time::Instant::now();
        let mut last = self.0.lock().unwrap_or_else(|p| p.into_inner());
        // Bounded by the worker tokens: entries of names no longer calling are dropped.
        if last.len() > 4096 {
            last.retain(|_, t| now.duration_since(*t) < std::time::Duration::from_secs(3600));
        }
        let key = (name.to_string(), what.to_string());
        match last.get(&key) {
            Some(t) if now.duration_since(*t) < every => false,
            _ => {
                last.insert(key, now);
                true
            }
        }
    }
}

/// At most one registration per worker in this time.
const REGISTER_EVERY: std::time::Duration = std::time::Duration::from_millis(500);

fn slow_down(what: &str, every: std::time::Duration) -> ApiError {
    ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        ErrorKind::Busy,
        format!("{what} at most once every {} ms; try again later", every.as_millis()),
    )
}

/// Refuses a worker URL whose host is not the address the registration came
/// from (unless `[workers] trust_advertised_urls`).
fn check_worker_url(ctx: &ApiContext, url: &str, peer: Option<std::net::SocketAddr>) -> Result<(), ApiError> {
    if ctx.config.workers.trust_advertised_urls {
        return Ok(());
    }
    let Some(peer) = peer else { return Ok(()) };
    let authority = url.split_once("://").map_or(url, |(_, rest)| rest).split('/').next().unwrap_or_default();
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let with_port = if host_port.starts_with('[') && host_port.ends_with(']') || !host_port.contains(':') {
        format!("{host_port}:0")
    } else {
        host_port.to_string()
    };
    let resolved: Vec<std::net::IpAddr> = std::net::ToSocketAddrs::to_socket_addrs(&with_port)
        .map(|addrs| addrs.map(|a| a.ip().to_canonical()).collect())
        .unwrap_or_default();
    if resolved.contains(&peer.ip()) {
        return Ok(());
    }
    Err(ApiError::invalid(format!(
        "worker url {url:?} names {}, but this registration comes from {}: a worker registers the URL it is \
         reached at on this machine (kiln-worker --advertise); the operator may allow URLs elsewhere with \
         [workers] trust_advertised_urls = true",
        if resolved.is_empty() { "no address it resolves to".to_string() } else { format!("{resolved:?}") },
        peer.ip()
    )))
}

/// An error answer.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    body: ApiErrorBody,
}

impl ApiError {
    /// Control characters in the message (echoed from a request: a query
    /// key, a path) are escaped, so no answer carries terminal escapes.
    pub(super) fn new(status: StatusCode, kind: ErrorKind, message: impl Into<String>) -> Self {
        let message: String = message.into();
        let message = if message.chars().any(char::is_control) {
            message
                .chars()
                .flat_map(|c| if c.is_control() { c.escape_default().collect::<Vec<_>>() } else { vec![c] })
                .collect()
        } else {
            message
        };
        Self { status, body: ApiErrorBody { kind, message } }
    }
    pub(super) fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, ErrorKind::Internal, message)
    }

    pub(super) fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, ErrorKind::InvalidArgument, message)
    }

    pub(super) fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, ErrorKind::NotFound, message)
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
            StoreError::UnknownSector(_) | StoreError::UnknownWorker(_) => {
                Self::new(StatusCode::NOT_FOUND, ErrorKind::NotFound, e.to_string())
            }
            StoreError::Transition { .. } | StoreError::NotPacking { .. } | StoreError::Conflict(_) => {
                Self::new(StatusCode::CONFLICT, ErrorKind::Conflict, e.to_string())
            }
            _ => Self::new(StatusCode::INTERNAL_SERVER_ERROR, ErrorKind::Internal, e.to_string()),
        }
    }
}

impl From<crate::chain::ChainError> for ApiError {
    fn from(e: crate::chain::ChainError) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, ErrorKind::Internal, e.to_string())
    }
}

impl From<PackingError> for ApiError {
    fn from(e: PackingError) -> Self {
        match e {
            PackingError::Store(e) => e.into(),
            e @ PackingError::NoSpace { .. } => {
                Self::new(StatusCode::INSUFFICIENT_STORAGE, ErrorKind::FailedPrecondition, e.to_string())
            }
            e => Self::invalid(e.to_string()),
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(e: JsonRejection) -> Self {
        Self::new(e.status(), wire::server::rejection_kind(e.status()), e.body_text())
    }
}

impl From<BytesRejection> for ApiError {
    fn from(e: BytesRejection) -> Self {
        Self::new(e.status(), wire::server::rejection_kind(e.status()), e.body_text())
    }
}

pub(super) type Ctx = State<Arc<ApiContext>>;
pub(super) type ApiResult<T> = Result<Json<T>, ApiError>;

/// The API's routes: the operator's behind the daemon's token, the workers'
/// (`/v0/worker/*`) behind worker tokens.
pub fn router(ctx: Arc<ApiContext>) -> Router {
    let operator = Router::new()
        .route("/status", get(status))
        .route("/sectors", get(list_sectors))
        .route("/sectors/pledge", post(pledge))
        .route("/sectors/add-piece", post(add_piece))
        .route("/sectors/:number", get(sector_status))
        .route("/sectors/:number/remove", post(remove_sector))
        .route("/sectors/:number/retry", post(retry_sector))
        .route("/sectors/:number/abort", post(abort_sector))
        .route("/chain/head", get(chain_head))
        .route("/chain/messages", get(chain_messages))
        .route("/chain/messages/:id", get(chain_message))
        .route("/proving", get(super::proving::info))
        .route("/proving/deadlines", get(super::proving::deadlines))
        .route("/proving/deadlines/:n", get(super::proving::deadline))
        .route("/proving/deadlines/:n/check", post(super::proving::check))
        .route("/proving/faults", get(super::proving::faults))
        .route("/workers", get(list_workers))
        .route("/workers/:name/reset", post(reset_worker))
        .route("/tasks", get(list_tasks))
        .route("/history", get(super::metrics::history))
        .route("/auth/worker-tokens", get(list_tokens).post(create_token))
        .route("/auth/worker-tokens/:name/revoke", post(revoke_token))
        .layer(middleware::from_fn_with_state(ctx.clone(), require_operator));
    let workers = Router::new()
        .route("/register", post(register))
        .route("/heartbeat", post(heartbeat))
        // Streamed to disk within each task type's own bound; refused from
        // `Content-Length` above the largest before the task is looked up.
        .route(
            "/tasks/:id/result",
            post(report_result).layer(DefaultBodyLimit::disable()).layer(middleware::from_fn(
                |request, next| {
                    wire::server::refuse_announced_oversize(
                        protocol::MAX_RESULT_BYTES,
                        "a result",
                        request,
                        next,
                    )
                },
            )),
        )
        .route("/tasks/:id/failure", post(report_failure))
        .layer(middleware::from_fn_with_state(ctx.clone(), require_worker));
    let api =
        operator.nest(protocol::DAEMON_WORKER_PATH, workers).layer(DefaultBodyLimit::max(MAX_BODY_BYTES));
    let scrape = Router::new()
        .route("/metrics", get(super::metrics::metrics))
        .layer(middleware::from_fn_with_state(ctx.clone(), require_operator));
    Router::new()
        .nest(API_PREFIX, api)
        .merge(scrape)
        .merge(super::ui::routes().layer(DefaultBodyLimit::max(4096)))
        .with_state(ctx)
        .fallback(|| async { ApiError::not_found("no such API endpoint") })
}

/// Who is calling.
enum Caller {
    Operator,
    Worker(String),
}

/// The worker a request on `/v0/worker/*` comes from.
#[derive(Clone)]
struct WorkerName(String);

fn unauthenticated(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, ErrorKind::Unauthenticated, message)
}

fn bearer(request: &Request) -> Option<String> {
    wire::server::bearer(request.headers()).map(str::to_string)
}

/// Tells the daemon's own token from a live worker token; anything else is 401.
async fn identify(ctx: &Arc<ApiContext>, given: Option<String>) -> Result<Caller, ApiError> {
    let given = given.ok_or_else(|| {
        unauthenticated(
            "missing `Authorization: Bearer <token>` (the daemon's token is in its data directory; \
                 workers use the token from `kiln auth create-worker-token`)",
        )
    })?;
    if protocol::same_secret(given.as_bytes(), ctx.token.as_bytes()) {
        return Ok(Caller::Operator);
    }
    let hash = protocol::token_hash(&given);
    let owner = blocking(ctx.clone(), move |ctx| Ok(ctx.ledger.store().token_owner(&hash)?)).await?.0;
    match owner {
        Some(TokenRow { name, revoked_ms: None, .. }) => Ok(Caller::Worker(name)),
        Some(TokenRow { name, .. }) => {
            Err(unauthenticated(format!("the token of worker {name:?} was revoked")))
        }
        None => Err(unauthenticated("invalid API token")),
    }
}

async fn require_operator(State(ctx): Ctx, request: Request, next: Next) -> Response {
    // The web view's session: its cookie, sent with the header only its script sets.
    if bearer(&request).is_none() && super::ui::opens_api(&ctx, request.headers()) {
        return next.run(request).await;
    }
    match identify(&ctx, bearer(&request)).await {
        Ok(Caller::Operator) => next.run(request).await,
        Ok(Caller::Worker(name)) => ApiError::new(
            StatusCode::FORBIDDEN,
            ErrorKind::Forbidden,
            format!("worker token ({name}) may only register, heartbeat and report tasks"),
        )
        .into_response(),
        Err(e) => e.into_response(),
    }
}

async fn require_worker(State(ctx): Ctx, mut request: Request, next: Next) -> Response {
    match identify(&ctx, bearer(&request)).await {
        Ok(Caller::Worker(name)) => {
            request.extensions_mut().insert(WorkerName(name));
            next.run(request).await
        }
        Ok(Caller::Operator) => ApiError::new(
            StatusCode::FORBIDDEN,
            ErrorKind::Forbidden,
            "worker endpoints take a worker token (kiln auth create-worker-token NAME), not the daemon's",
        )
        .into_response(),
        Err(e) => e.into_response(),
    }
}

/// Runs blocking ledger work off the async workers.
pub(super) async fn blocking<T: Send + 'static>(
    ctx: Arc<ApiContext>,
    f: impl FnOnce(&ApiContext) -> Result<T, ApiError> + Send + 'static,
) -> ApiResult<T> {
    tokio::task::spawn_blocking(move || f(&ctx))
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, ErrorKind::Internal, e.to_string()))?
        .map(Json)
}

fn sector_number(raw: &str) -> Result<u64, ApiError> {
    raw.parse().map_err(|_| ApiError::invalid(format!("sector number {raw:?} is not a non-negative integer")))
}

fn progress_of(ctx: &ApiContext, number: u64) -> Option<TaskProgress> {
    ctx.progress.lock().unwrap_or_else(|p| p.into_inner()).get(&number).cloned()
}

async fn status(State(ctx): Ctx) -> ApiResult<DaemonStatus> {
    let mut paused: Vec<PausedTasks> =
        ctx.paused.lock().unwrap_or_else(|p| p.into_inner()).values().cloned().collect();
    paused.sort_by_key(|p| p.kind.name());
    let d = &ctx.descriptors;
    let descriptors = DescriptorView {
        limit: d.limit,
        work: d.work,
        api_connections: d.caps.first().copied().unwrap_or(0),
        metrics_connections: d.caps.get(1).copied(),
    };
    let task_kinds = TaskKind::ALL.to_vec();
    Ok(Json(DaemonStatus { instance: ctx.instance.clone(), paused, descriptors, task_kinds }))
}

async fn list_sectors(State(ctx): Ctx) -> ApiResult<Vec<SectorListEntry>> {
    blocking(ctx, |ctx| {
        let store = ctx.ledger.store();
        let rows = store.sectors()?;
        rows.into_iter()
            .map(|sector| {
                let state = sector.lifecycle.state;
                let failed = state == SectorState::Failed || state.name().ends_with("Failed");
                let failed_step = if failed { store.failed_step(sector.number)? } else { None };
                let removed = matches!(state, SectorState::Removing | SectorState::Removed);
                let removed_from = if removed { store.removed_from(sector.number)? } else { None };
                Ok(SectorListEntry {
                    progress: progress_of(ctx, sector.number),
                    failed_step,
                    removed_from,
                    sector: sector.into(),
                })
            })
            .collect()
    })
    .await
}

async fn sector_status(State(ctx): Ctx, UrlPath(number): UrlPath<String>) -> ApiResult<SectorStatus> {
    let number = sector_number(&number)?;
    blocking(ctx, move |ctx| {
        let (sector, pieces, events, tasks) = {
            let store = ctx.ledger.store();
            let sector = store.sector(number)?.ok_or(StoreError::UnknownSector(number))?;
            (sector, store.pieces(number)?, store.events(number)?, store.tasks(Some(number))?)
        };
        let now = ctx.ledger.now_ms();
        let chain = ctx.ledger.chain_view();
        let on_chain = chain.precommit(number, now)?;
        let commit_receipt = match &sector.commit_message {
            Some(id) => chain.receipt(id, now)?,
            None => None,
        };
        Ok(SectorStatus {
            progress: progress_of(ctx, number),
            sector: sector.into(),
            pieces: views::all(pieces),
            events: views::all(events),
            on_chain,
            commit_receipt,
            tasks: views::all(tasks),
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
        let sectors = packing::pledge(&ctx.ledger, &ctx.config, req.count, ctx.ledger.now_ms())?;
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
    blocking(ctx, move |ctx| {
        Ok(packing::add_piece(&ctx.ledger, &ctx.config, &req.path, ctx.ledger.now_ms())?)
    })
    .await
}

/// Removes a sector and its files. A sector the chain still holds (a live
/// PreCommit, or proven) is refused (409 `failed_precondition`, saying what
/// would follow) unless the body says `{"force": true}`; its record stays.
async fn remove_sector(
    State(ctx): Ctx,
    UrlPath(number): UrlPath<String>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<SectorView> {
    let number = sector_number(&number)?;
    let body = body?;
    let RemoveRequest { force } = if body.iter().all(u8::is_ascii_whitespace) {
        RemoveRequest::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| ApiError::invalid(format!("remove request: {e}")))?
    };
    blocking(ctx, move |ctx| {
        let now = ctx.ledger.now_ms();
        let row = ctx.ledger.store().sector(number)?.ok_or(StoreError::UnknownSector(number))?;
        if !force && !matches!(row.lifecycle.state, SectorState::Removing | SectorState::Removed) {
            if let Some(why) = held_on_chain(ctx, number, now)? {
                return Err(ApiError::new(StatusCode::CONFLICT, ErrorKind::FailedPrecondition, why));
            }
        }
        let row = ctx.ledger.store().apply(number, &SectorEvent::Remove, now)?;
        tracing::warn!(sector = number, force, "sector removal asked for");
        Ok(row.into())
    })
    .await
}

/// Why removing sector `number` has consequences on chain, if it has.
fn held_on_chain(ctx: &ApiContext, number: u64, now: i64) -> Result<Option<String>, ApiError> {
    let chain = ctx.ledger.chain_view();
    let Some(pc) = chain.precommit(number, now)? else { return Ok(None) };
    let force =
        "remove it anyway with `kiln sectors remove N --force` (API: {\"force\": true}); its record is kept";
    if !pc.proven {
        return Ok(Some(format!(
            "sector {number} has a live PreCommit on chain (its ProveCommit is due by epoch {}): removing its \
             files now means it can never be proven, and on Filecoin its pre-commit deposit is lost when the \
             PreCommit expires; {}",
            pc.expiry,
            force.replace('N', &number.to_string())
        )));
    }
    let proving = chain.proving_sectors(now)?.into_iter().find(|s| s.sector == number);
    let place = proving.map_or(String::new(), |s| {
        format!(" (deadline {}, partition {}, {})", s.deadline, s.partition, s.health.name())
    });
    Ok(Some(format!(
        "sector {number} is proven and held by the chain{place}: removing its files makes it fail every \
         Window PoSt from now on, so it is declared faulty and, on Filecoin, charged a fault fee every proving \
         period until it is terminated (kiln cannot terminate sectors yet); a Winning PoSt that draws it cannot \
         be proven; {}",
        force.replace('N', &number.to_string())
    )))
}

/// Sends a failed sector back to the step that failed (an operator event; the
/// driver acts on it, dropping a proof kept from a failed commit). A refused
/// event changes nothing.
async fn retry_sector(State(ctx): Ctx, UrlPath(number): UrlPath<String>) -> ApiResult<SectorView> {
    let number = sector_number(&number)?;
    blocking(ctx, move |ctx| {
        let step = ctx.ledger.store().failed_step(number)?.ok_or_else(|| {
            ApiError::new(
                StatusCode::CONFLICT,
                ErrorKind::Conflict,
                format!("sector {number} has no failed step"),
            )
        })?;
        let now = ctx.ledger.now_ms();
        let row = ctx.ledger.store().apply(number, &SectorEvent::OperatorRetry { step }, now)?;
        tracing::info!(sector = number, %step, state = %row.lifecycle.state, "operator retry");
        Ok(row.into())
    })
    .await
}

/// Stops work on a sector: it becomes Failed (the driver cancels its task).
async fn abort_sector(
    State(ctx): Ctx,
    UrlPath(number): UrlPath<String>,
    body: Result<Json<AbortRequest>, JsonRejection>,
) -> ApiResult<SectorView> {
    let number = sector_number(&number)?;
    let Json(req) = body?;
    let reason: String = req.reason.trim().chars().filter(|c| !c.is_control()).collect();
    if reason.is_empty() || reason.len() > 1024 {
        return Err(ApiError::invalid("reason must be 1 to 1024 printable characters"));
    }
    blocking(ctx, move |ctx| {
        let now = ctx.ledger.now_ms();
        let row = ctx.ledger.store().apply(number, &SectorEvent::Abort { reason: reason.clone() }, now)?;
        tracing::warn!(sector = number, %reason, "sector aborted by the operator");
        Ok(row.into())
    })
    .await
}

async fn chain_head(State(ctx): Ctx) -> ApiResult<ChainHead> {
    blocking(ctx, |ctx| {
        let now = ctx.ledger.now_ms();
        let chain = ctx.ledger.chain_view();
        let epoch = chain.head(now)?;
        let (messages, executed) = chain.message_counts(now)?;
        Ok(ChainHead { epoch, messages, executed })
    })
    .await
}

async fn chain_messages(
    State(ctx): Ctx,
    query: Result<Query<Page>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Vec<ChainMessage>> {
    let Query(page) = query.map_err(|e| ApiError::invalid(e.body_text()))?;
    let limit = page.limit().map_err(ApiError::invalid)?;
    blocking(ctx, move |ctx| {
        let messages = ctx.ledger.chain_view().messages_after(page.after, limit, ctx.ledger.now_ms())?;
        Ok(messages.into_iter().map(message_view).collect())
    })
    .await
}

async fn chain_message(State(ctx): Ctx, UrlPath(id): UrlPath<String>) -> ApiResult<ChainMessage> {
    let id: crate::chain::MessageId = id.parse().map_err(|e: String| ApiError::invalid(e))?;
    blocking(ctx, move |ctx| match ctx.ledger.chain_view().message(&id, ctx.ledger.now_ms())? {
        Some(m) => Ok(message_view(m)),
        None => Err(ApiError::not_found(format!("this node sent no message {id}"))),
    })
    .await
}

fn message_view(m: crate::chain::SentMessage) -> ChainMessage {
    ChainMessage { seq: m.seq, id: m.id, message: m.message, receipt: m.receipt }
}

async fn list_workers(State(ctx): Ctx) -> ApiResult<Vec<WorkerView>> {
    blocking(ctx, |ctx| {
        let (workers, open) = {
            let store = ctx.ledger.store();
            (store.workers()?, store.open_tasks()?)
        };
        let now = ctx.ledger.now_ms();
        Ok(workers
            .into_iter()
            .map(|worker| {
                let state = worker_state(&worker, now, ctx.config.workers.lease_ms);
                let tasks =
                    open.iter().filter(|t| t.worker.as_ref() == Some(&worker.name)).map(|t| t.id).collect();
                worker_view(worker, state, tasks)
            })
            .collect())
    })
    .await
}

/// Clears a worker's unhealthy mark.
async fn reset_worker(State(ctx): Ctx, UrlPath(name): UrlPath<String>) -> ApiResult<WorkerReset> {
    protocol::check_worker_name(&name).map_err(ApiError::invalid)?;
    blocking(ctx, move |ctx| {
        ctx.ledger.store().reset_worker(&name)?;
        tracing::info!(worker = %name, "worker reset by the operator");
        Ok(WorkerReset { name })
    })
    .await
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct TaskQuery {
    sector: Option<u64>,
    #[serde(default)]
    after: u64,
    limit: Option<usize>,
}

async fn list_tasks(
    State(ctx): Ctx,
    query: Result<Query<TaskQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Vec<TaskView>> {
    let Query(q) = query.map_err(|e| ApiError::invalid(e.body_text()))?;
    let limit = Page { after: q.after, limit: q.limit }.limit().map_err(ApiError::invalid)?;
    blocking(ctx, move |ctx| Ok(views::all(ctx.ledger.store().tasks_after(q.sector, q.after, limit)?))).await
}

async fn list_tokens(State(ctx): Ctx) -> ApiResult<Vec<TokenView>> {
    blocking(ctx, |ctx| Ok(views::all(ctx.ledger.store().worker_tokens()?))).await
}

async fn create_token(
    State(ctx): Ctx,
    body: Result<Json<CreateWorkerToken>, JsonRejection>,
) -> ApiResult<WorkerToken> {
    let Json(req) = body?;
    protocol::check_worker_name(&req.name).map_err(ApiError::invalid)?;
    blocking(ctx, move |ctx| {
        let token = protocol::new_worker_token();
        let now = ctx.ledger.now_ms();
        ctx.ledger.store().create_worker_token(
            &req.name,
            &protocol::token_hash(&token),
            &protocol::dispatch_key(&token),
            now,
        )?;
        tracing::info!(worker = %req.name, "worker token created");
        Ok(WorkerToken { name: req.name, token })
    })
    .await
}

async fn revoke_token(State(ctx): Ctx, UrlPath(name): UrlPath<String>) -> ApiResult<Revoked> {
    blocking(ctx, move |ctx| {
        let now = ctx.ledger.now_ms();
        let expired_tasks = ctx.ledger.store().revoke_worker_token(&name, now)?;
        tracing::warn!(worker = %name, ?expired_tasks, "worker token revoked");
        Ok(Revoked { name, expired_tasks })
    })
    .await
}

async fn register(
    State(ctx): Ctx,
    Extension(WorkerName(name)): Extension<WorkerName>,
    body: Result<Json<protocol::RegisterRequest>, JsonRejection>,
) -> ApiResult<protocol::RegisterResponse> {
    let Json(req) = body?;
    if req.protocol != PROTOCOL_VERSION {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrorKind::InvalidArgument,
            format!("worker speaks protocol {}, this daemon speaks {PROTOCOL_VERSION}", req.protocol),
        ));
    }
    if !(req.url.starts_with("http://") || req.url.starts_with("https://")) || req.url.len() > 512 {
        return Err(ApiError::invalid(format!("worker url {:?} is not an http(s) URL", req.url)));
    }
    let printable = |s: &str| !s.chars().any(char::is_control);
    if !printable(&req.url)
        || !printable(&req.instance)
        || !printable(&req.version)
        || req.version.len() > 128
    {
        return Err(ApiError::invalid(
            "url, instance and version must be printable (version at most 128 characters)",
        ));
    }
    if req.instance.is_empty() || req.instance.len() > 128 {
        return Err(ApiError::invalid("instance must be 1 to 128 characters"));
    }
    let gpus = &req.capabilities.gpus;
    if gpus.len() > protocol::MAX_GPUS || gpus.iter().any(|g| g.name.len() > 128 || !printable(&g.name)) {
        return Err(ApiError::invalid(format!(
            "capabilities.gpus: at most {} GPUs, each named in at most 128 printable characters",
            protocol::MAX_GPUS
        )));
    }
    if !(1..=protocol::MAX_SLOTS).contains(&req.capabilities.slots) {
        return Err(ApiError::invalid(format!(
            "capabilities.slots must be between 1 and {}, not {}",
            protocol::MAX_SLOTS,
            req.capabilities.slots
        )));
    }
    if !ctx.worker_calls.allow(&name, "register", REGISTER_EVERY) {
        return Err(slow_down("a worker registers", REGISTER_EVERY));
    }
    let peer = wire::server::peer();
    blocking(ctx, move |ctx| {
        check_worker_url(ctx, &req.url, peer)?;
        let now = ctx.ledger.now_ms();
        let expired =
            ctx.ledger.store().register_worker(&name, &req.instance, &req.url, &req.capabilities, now)?;
        tracing::info!(worker = %name, url = %req.url, version = %req.version, ?expired, "worker registered");
        Ok(protocol::RegisterResponse {
            name,
            daemon_instance: ctx.instance.clone(),
            heartbeat_ms: ctx.config.workers.heartbeat_ms,
            lease_ms: ctx.config.workers.lease_ms,
        })
    })
    .await
}

async fn heartbeat(
    State(ctx): Ctx,
    Extension(WorkerName(name)): Extension<WorkerName>,
    body: Result<Json<protocol::HeartbeatRequest>, JsonRejection>,
) -> ApiResult<protocol::HeartbeatResponse> {
    let Json(req) = body?;
    if req.running.len() > protocol::MAX_HEARTBEAT_TASKS {
        return Err(ApiError::invalid(format!(
            "a heartbeat lists at most {} tasks, not {}",
            protocol::MAX_HEARTBEAT_TASKS,
            req.running.len()
        )));
    }
    // A quarter of the heartbeat interval: room for retries, none for a flood.
    let every = std::time::Duration::from_millis((ctx.config.workers.heartbeat_ms / 4).max(10));
    // Per instance: a restarted worker's first heartbeat is not held back by its old one's.
    if !ctx.worker_calls.allow(&name, &format!("heartbeat {}", req.instance), every) {
        return Err(slow_down("a worker heartbeats", every));
    }
    blocking(ctx, move |ctx| {
        let now = ctx.ledger.now_ms();
        let lease = now + ctx.config.workers.lease_ms as i64;
        match ctx.ledger.store().worker_heartbeat(&name, &req.instance, &req.running, lease, now) {
            Ok(drop) => Ok(protocol::HeartbeatResponse { daemon_instance: ctx.instance.clone(), drop }),
            Err(StoreError::UnknownWorker(_)) => Err(ApiError::new(
                StatusCode::NOT_FOUND,
                ErrorKind::NotRegistered,
                format!("worker {name:?} instance {:?} is not registered; register first", req.instance),
            )),
            Err(e) => Err(e.into()),
        }
    })
    .await
}

fn task_id(raw: &str) -> Result<u64, ApiError> {
    raw.parse().map_err(|_| ApiError::invalid(format!("task id {raw:?} is not a non-negative integer")))
}

/// `POST /v0/worker/tasks/{id}/result`: the result of a task this worker
/// holds, of any type. It is streamed to its own file in the data directory
/// within its type's limit (never held whole in memory), synced and renamed
/// into place, and only then recorded; a result refused leaves no file.
async fn report_result(
    State(ctx): Ctx,
    Extension(WorkerName(name)): Extension<WorkerName>,
    UrlPath(id): UrlPath<String>,
    request: Request,
) -> ApiResult<serde_json::Value> {
    let id = task_id(&id)?;
    let Json(kind) = {
        let name = name.clone();
        blocking(ctx.clone(), move |ctx| match ctx.ledger.store().task(id)? {
            Some(t) if t.worker.as_deref() == Some(name.as_str()) => t.kind.remote().ok_or_else(|| {
                StoreError::Conflict(format!("task {id} ({}) takes no result", t.kind.name())).into()
            }),
            _ => Err(StoreError::Conflict(format!("task {id} is not assigned to worker {name:?}")).into()),
        })
        .await?
    };
    let limit = kind.max_result_bytes();
    let too_large = |len: String| {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorKind::TooLarge,
            format!("a {} result is at most {limit} bytes, not {len}", kind.name()),
        )
    };
    let announced = request
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if let Some(n) = announced.filter(|&n| n > limit) {
        return Err(too_large(n.to_string()));
    }
    let path = ctx.config.new_task_result_path(id);
    let len = match super::results::stream_to_file(request.into_body(), &path, limit).await {
        Ok(len) => len,
        Err(super::results::StreamError::TooLarge) => return Err(too_large(format!("over {limit}"))),
        Err(super::results::StreamError::Body(e)) => {
            return Err(ApiError::invalid(format!("the result's body: {e}")))
        }
        Err(super::results::StreamError::Disk(e)) => {
            return Err(ApiError::internal(format!("cannot keep the result: {e}")))
        }
    };
    let discard = move |path: &std::path::Path| {
        if let Err(e) = crate::pipeline::remove_path(path) {
            tracing::warn!(task = id, error = %e, "cannot remove a refused result");
        }
    };
    if let Err(e) = kind.check_result_len(len) {
        discard(&path);
        return Err(ApiError::invalid(e));
    }
    blocking(ctx, move |ctx| {
        let now = ctx.ledger.now_ms();
        let output = crate::store::TaskOutput { path: path.clone(), len };
        if let Err(e) = ctx.ledger.store().report_task(id, &name, Ok(&output), now) {
            discard(&path);
            return Err(e.into());
        }
        tracing::info!(task = id, worker = %name, kind = kind.name(), bytes = len, "result reported");
        Ok(serde_json::json!({}))
    })
    .await
}

async fn report_failure(
    State(ctx): Ctx,
    Extension(WorkerName(name)): Extension<WorkerName>,
    UrlPath(id): UrlPath<String>,
    body: Result<Json<protocol::TaskFailure>, JsonRejection>,
) -> ApiResult<serde_json::Value> {
    let id = task_id(&id)?;
    let Json(failure) = body?;
    blocking(ctx, move |ctx| {
        // Stored and shown to operators: no terminal escapes, bounded.
        let message: String = failure.message.chars().filter(|c| !c.is_control()).take(4096).collect();
        let now = ctx.ledger.now_ms();
        ctx.ledger.store().report_task(id, &name, Err(&message), now)?;
        tracing::warn!(task = id, worker = %name, %message, "worker reported a failed task");
        Ok(serde_json::json!({}))
    })
    .await
}
