//! The worker's task API (axum): what the daemon calls, authenticated with the
//! dispatch key derived from this worker's token.
//!
//! | method | path | body | answer |
//! |---|---|---|---|
//! | GET | `/v0/info` | | `WorkerInfo` |
//! | POST | `/v0/tasks/{id}` | the type's input; `kiln-task: TaskEnvelope` | 202 `TaskAccepted` |
//! | DELETE | `/v0/tasks/{id}` | | `{}` |

use crate::node::{Node, TaskRefused};
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Path as UrlPath, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use std::sync::Arc;
use wire::api::API_PREFIX;
use wire::error::ErrorKind;
use wire::worker::{same_secret, TaskAccepted, TaskEnvelope, WorkerInfo, TASK_HEADER};

struct Ctx {
    node: Arc<Node>,
    key: String,
    /// `--max-task-bytes`: no input is read past it, whatever its type allows.
    max_task_bytes: u64,
}

struct Failure(StatusCode, ErrorKind, String);

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        wire::server::error_answer(self.0, self.1, self.2)
    }
}

/// The worker's routes.
pub fn router(node: Arc<Node>, max_task_bytes: usize) -> Router {
    let key = node.dispatch_key();
    let ctx = Arc::new(Ctx { node, key, max_task_bytes: max_task_bytes as u64 });
    let api = Router::new()
        .route("/info", get(info))
        .route("/tasks/:id", post(take_task).delete(cancel))
        .layer(middleware::from_fn(move |request, next| {
            wire::server::refuse_announced_oversize(max_task_bytes as u64, "a task body", request, next)
        }))
        .layer(middleware::from_fn_with_state(ctx.clone(), authenticate))
        .layer(DefaultBodyLimit::max(max_task_bytes))
        .with_state(ctx.clone());
    let scrape = Router::new()
        .route("/metrics", get(metrics))
        .layer(middleware::from_fn_with_state(ctx.clone(), authenticate))
        .with_state(ctx);
    Router::new()
        .nest(API_PREFIX, api)
        .merge(scrape)
        .fallback(|| async { Failure(StatusCode::NOT_FOUND, ErrorKind::NotFound, "no such endpoint".into()) })
}

async fn authenticate(State(ctx): State<Arc<Ctx>>, request: Request, next: Next) -> Response {
    let given = wire::server::bearer(request.headers());
    match given {
        Some(k) if same_secret(k.as_bytes(), ctx.key.as_bytes()) => next.run(request).await,
        Some(_) => {
            Failure(StatusCode::UNAUTHORIZED, ErrorKind::Unauthenticated, "invalid dispatch key".into())
                .into_response()
        }
        None => Failure(
            StatusCode::UNAUTHORIZED,
            ErrorKind::Unauthenticated,
            "missing `Authorization: Bearer <dispatch key>` (derived from this worker's token)".into(),
        )
        .into_response(),
    }
}

async fn metrics(State(ctx): State<Arc<Ctx>>) -> Response {
    wire::metrics::response(ctx.node.metrics())
}

/// `--metrics-listen`'s routes: `/metrics` without a key (loopback only).
pub fn scrape_router(node: Arc<Node>) -> Router {
    Router::new()
        .route("/metrics", get(move || async move { wire::metrics::response(node.metrics()) }))
        .fallback(|| async {
            Failure(StatusCode::NOT_FOUND, ErrorKind::NotFound, "this address serves /metrics only".into())
        })
        .layer(middleware::from_fn(wire::metrics::loopback_host_only))
}

async fn info(State(ctx): State<Arc<Ctx>>) -> Json<WorkerInfo> {
    Json(ctx.node.info())
}

fn task_id(raw: &str) -> Result<u64, Failure> {
    raw.parse().map_err(|_| {
        Failure(
            StatusCode::BAD_REQUEST,
            ErrorKind::InvalidArgument,
            format!("task id {raw:?} is not a non-negative integer"),
        )
    })
}

async fn take_task(
    State(ctx): State<Arc<Ctx>>,
    UrlPath(id): UrlPath<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<TaskAccepted>), Failure> {
    let id = task_id(&id)?;
    let invalid = |m: String| Failure(StatusCode::BAD_REQUEST, ErrorKind::InvalidArgument, m);
    let envelope = headers
        .get(TASK_HEADER)
        .ok_or_else(|| invalid(format!("no {TASK_HEADER} header: what task is this?")))
        .and_then(|v| TaskEnvelope::from_header(v.as_bytes()).map_err(invalid))?;
    let limit = envelope.kind.max_input_bytes().min(ctx.max_task_bytes).min(usize::MAX as u64) as usize;
    let body = axum::body::to_bytes(body, limit).await.map_err(|e| {
        Failure(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorKind::TooLarge,
            format!("a {} task's input is at most {limit} bytes: {e}", envelope.kind.name()),
        )
    })?;
    let node = ctx.node.clone();
    let kind = envelope.kind;
    // Decoding and validating a large input takes a while: off the async threads.
    let accepted = tokio::task::spawn_blocking(move || node.accept(id, &envelope, &body))
        .await
        .map_err(|e| Failure(StatusCode::INTERNAL_SERVER_ERROR, ErrorKind::Internal, e.to_string()))?;
    match accepted {
        Ok(()) => {
            tracing::info!(task = id, kind = kind.name(), "task accepted");
            Ok((StatusCode::ACCEPTED, Json(TaskAccepted { id })))
        }
        Err(e) => {
            tracing::warn!(task = id, kind = kind.name(), error = %e, "task refused");
            Err(refused(e))
        }
    }
}

fn refused(e: TaskRefused) -> Failure {
    let (status, kind) = match e {
        TaskRefused::Invalid(_) => (StatusCode::BAD_REQUEST, ErrorKind::InvalidArgument),
        TaskRefused::Precondition(_) => (StatusCode::UNPROCESSABLE_ENTITY, ErrorKind::FailedPrecondition),
        TaskRefused::Busy(_) => (StatusCode::TOO_MANY_REQUESTS, ErrorKind::Busy),
        TaskRefused::Duplicate(_) => (StatusCode::CONFLICT, ErrorKind::Conflict),
    };
    Failure(status, kind, e.to_string())
}

async fn cancel(
    State(ctx): State<Arc<Ctx>>,
    UrlPath(id): UrlPath<String>,
) -> Result<Json<serde_json::Value>, Failure> {
    let id = task_id(&id)?;
    if ctx.node.cancel(id) {
        Ok(Json(serde_json::json!({})))
    } else {
        Err(Failure(
            StatusCode::NOT_FOUND,
            ErrorKind::NotFound,
            format!("task {id} is not held by this worker"),
        ))
    }
}
