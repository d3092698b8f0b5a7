//! The HTTP API (axum): routes, the token check, and the order of a submission's checks.
use crate::db::{Admitted, Db, Submission};
use crate::task::Task;
use crate::{ServeError, Tokens};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::Arc;

/// What the server holds: its tasks, callers, database and budget.
pub struct Server {
    /// The tasks, in the task file's order.
    pub tasks: Vec<Task>,
    /// The callers.
    pub tokens: Tokens,
    /// Submissions.
    pub db: Db,
    /// Submissions each caller may make on each task.
    pub budget: usize,
}

impl Server {
    fn task(&self, id: &str) -> Result<&Task, Response> {
        self.tasks
            .iter()
            .find(|t| t.id == id)
            .ok_or_else(|| error(StatusCode::NOT_FOUND, format!("no task {id:?}")))
    }

    /// The caller a request's bearer token names, or a 401.
    fn caller(&self, headers: &HeaderMap) -> Result<String, Response> {
        let token = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        match token.and_then(|t| self.tokens.caller(t.trim())) {
            Some(name) => Ok(name.to_string()),
            None => {
                let mut r = error(
                    StatusCode::UNAUTHORIZED,
                    if token.is_none() {
                        "send your token as `Authorization: Bearer TOKEN`".into()
                    } else {
                        "unknown token".into()
                    },
                );
                r.headers_mut()
                    .insert(header::WWW_AUTHENTICATE, "Bearer".parse().expect("ascii"));
                Err(r)
            }
        }
    }

    fn db_error(e: ServeError) -> Response {
        tracing::error!("{e}");
        error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
    }
}

fn error(status: StatusCode, message: String) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}

/// Both arms of a handler's result are responses.
type Reply = Result<Response, Response>;

/// The routes.
pub fn router(server: Arc<Server>) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/v1/tasks", get(tasks))
        .route("/v1/tasks/{id}/train", get(train))
        .route("/v1/tasks/{id}/test", get(test))
        .route("/v1/tasks/{id}/submissions", get(own).post(submit))
        .route("/v1/leaderboard", get(leaderboard))
        .with_state(server)
}

async fn tasks(State(s): State<Arc<Server>>, headers: HeaderMap) -> Reply {
    let caller = s.caller(&headers)?;
    let mut out = Vec::new();
    for t in &s.tasks {
        let used = s.db.used(&t.id, &caller).map_err(Server::db_error)?;
        out.push(json!({
            "id": t.id, "dataset": t.dataset, "weak": t.weak, "strong": t.strong,
            "classes": t.classes, "train": t.train.len(), "test": t.test.len(),
            "baselines": t.baselines, "submissions_left": s.budget.saturating_sub(used),
        }));
    }
    Ok(Json(json!({ "tasks": out })).into_response())
}

async fn train(State(s): State<Arc<Server>>, headers: HeaderMap, Path(id): Path<String>) -> Reply {
    s.caller(&headers)?;
    Ok(Json(&s.task(&id)?.train).into_response())
}

async fn test(State(s): State<Arc<Server>>, headers: HeaderMap, Path(id): Path<String>) -> Reply {
    s.caller(&headers)?;
    Ok(Json(&s.task(&id)?.test).into_response())
}

async fn own(State(s): State<Arc<Server>>, headers: HeaderMap, Path(id): Path<String>) -> Reply {
    let caller = s.caller(&headers)?;
    let task = s.task(&id)?;
    let subs =
        s.db.submissions(&task.id, Some(&caller))
            .map_err(Server::db_error)?;
    Ok(Json(json!({
        "submissions": subs, "submissions_left": s.budget.saturating_sub(subs.len()),
    }))
    .into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Body {
    predictions: serde_json::Map<String, Value>,
    #[serde(default)]
    name: String,
}

/// A submission's checks, in order: token (401), task (404), budget (429), body (400),
/// predictions (422); then it is scored and stored, the budget checked again in the same
/// transaction as the insert.
async fn submit(
    State(s): State<Arc<Server>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Reply {
    let caller = s.caller(&headers)?;
    let task = s.task(&id)?;
    let over = || {
        error(
            StatusCode::TOO_MANY_REQUESTS,
            format!(
                "{caller} has used all {} submissions on task {}",
                s.budget, task.id
            ),
        )
    };
    if s.db.used(&task.id, &caller).map_err(Server::db_error)? >= s.budget {
        return Err(over());
    }
    let body: Body = serde_json::from_slice(&body).map_err(|e| {
        error(
            StatusCode::BAD_REQUEST,
            format!("the body must be {{\"predictions\": {{\"<test id>\": p, ...}}, \"name\": \"...\"}}: {e}"),
        )
    })?;
    let score = task
        .score(&body.predictions)
        .map_err(|m| error(StatusCode::UNPROCESSABLE_ENTITY, m))?;
    let submission = Submission {
        submission_id: 0,
        task: task.id.clone(),
        caller: caller.clone(),
        name: body.name,
        accuracy: score.accuracy,
        pgr: score.pgr,
        created: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0),
    };
    let predictions = Value::Object(body.predictions).to_string();
    let server = s.clone();
    let stored = tokio::task::spawn_blocking(move || {
        server.db.submit(&submission, &predictions, server.budget)
    })
    .await
    .map_err(|e| error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
    .map_err(Server::db_error)?;
    match stored {
        Admitted::OverBudget => Err(over()),
        Admitted::Stored {
            submission_id,
            left,
        } => {
            tracing::info!(task = %task.id, %caller, submission_id, accuracy = score.accuracy, "submission");
            Ok(Json(json!({
                "accuracy": score.accuracy, "pgr": score.pgr,
                "submissions_left": left, "submission_id": submission_id,
            }))
            .into_response())
        }
    }
}

/// Every task's baselines and each caller's best submission.
fn board(s: &Server) -> Result<Vec<(&Task, Vec<Submission>)>, Response> {
    s.tasks
        .iter()
        .map(|t| Ok((t, s.db.best(&t.id).map_err(Server::db_error)?)))
        .collect()
}

async fn leaderboard(State(s): State<Arc<Server>>, headers: HeaderMap) -> Reply {
    s.caller(&headers)?;
    let tasks: Vec<Value> = board(&s)?
        .into_iter()
        .map(|(t, best)| {
            json!({"id": t.id, "dataset": t.dataset, "weak": t.weak, "strong": t.strong,
                   "baselines": t.baselines, "best": best})
        })
        .collect();
    Ok(Json(json!({ "tasks": tasks })).into_response())
}

async fn page(State(s): State<Arc<Server>>) -> Reply {
    Ok(Html(crate::page::render(&board(&s)?)).into_response())
}

/// Serves on `addr` until SIGINT or SIGTERM, printing `listening on http://ADDR` (the bound
/// address: port 0 picks a free one) on standard output once requests can be made.
pub fn serve(server: Server, addr: SocketAddr) -> Result<(), ServeError> {
    let net = |e: std::io::Error| ServeError::Net {
        addr: addr.to_string(),
        message: e.to_string(),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(net)?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(addr).await.map_err(net)?;
        let bound = listener.local_addr().map_err(net)?;
        println!("listening on http://{bound}");
        use std::io::Write;
        let _ = std::io::stdout().flush();
        axum::serve(listener, router(Arc::new(server)))
            .with_graceful_shutdown(stop_signal())
            .await
            .map_err(net)
    })
}

async fn stop_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = term => {},
    }
    tracing::info!("stopping: the submissions are in the database");
}
