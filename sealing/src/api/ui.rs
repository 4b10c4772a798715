//! The web view at `/ui`: a page, its script and its style, embedded in the
//! binary (no build step, nothing fetched from elsewhere; the
//! Content-Security-Policy keeps the page from reaching any other origin).
//!
//! The page takes the daemon's token once: `POST /ui/login` checks it and
//! opens a session of two random secrets, never the token. One is the
//! session cookie (HttpOnly, SameSite=Strict, Secure over TLS, gone when the
//! browser closes, named after the API's port). The other, the page key,
//! goes to the page only in the fragment of the redirect (`/ui#key=…`),
//! which browsers never send to a server; the script keeps it in the
//! origin's own storage and sends it as the `X-Kiln-UI` header. The cookie
//! alone opens `/ui` (the static page); the operator API needs both. Cookies
//! are not kept apart by port, so any service on 127.0.0.1 a browser visits
//! receives the cookie: without the page key, which only this origin's
//! script holds, it opens nothing. Sessions live in the daemon's memory:
//! signing out, or a restart, ends them.

use super::server::{ApiContext, Ctx};
use axum::extract::{Form, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

const INDEX_HTML: &str = include_str!("ui/index.html");
const APP_JS: &str = include_str!("ui/app.js");
const APP_CSS: &str = include_str!("ui/app.css");

/// The session cookie's name, before the API's port (`kiln_session_2345`).
pub const SESSION_COOKIE: &str = "kiln_session";
/// The header the page's script sends with every API call: the session's page key.
pub const UI_HEADER: &str = "x-kiln-ui";

/// Only this daemon; inline styles for progress bars, nothing else inline.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
                   connect-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; \
                   base-uri 'none'";

/// Open sessions at most; signing in beyond them ends the oldest.
const MAX_SESSIONS: usize = 64;

/// The signed-in browser sessions: (cookie id, page key) pairs.
#[derive(Default)]
pub struct Sessions(Mutex<VecDeque<(String, String)>>);

impl Sessions {
    fn all(&self) -> std::sync::MutexGuard<'_, VecDeque<(String, String)>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A new session: its cookie id and its page key.
    fn open(&self) -> (String, String) {
        let id = hex::encode(rand::random::<[u8; 32]>());
        let key = hex::encode(rand::random::<[u8; 32]>());
        let mut all = self.all();
        if all.len() == MAX_SESSIONS {
            all.pop_front();
        }
        all.push_back((id.clone(), key.clone()));
        (id, key)
    }

    /// Whether `id` is a live session's cookie.
    fn holds(&self, id: &str) -> bool {
        self.all().iter().any(|(s, _)| wire::worker::same_secret(s.as_bytes(), id.as_bytes()))
    }

    /// Whether `id` is a live session's cookie and `key` its page key.
    fn opens(&self, id: &str, key: &str) -> bool {
        self.all().iter().any(|(s, k)| {
            wire::worker::same_secret(s.as_bytes(), id.as_bytes())
                & wire::worker::same_secret(k.as_bytes(), key.as_bytes())
        })
    }

    fn close(&self, id: &str) {
        self.all().retain(|(s, _)| !wire::worker::same_secret(s.as_bytes(), id.as_bytes()));
    }
}

/// This daemon's cookie name: one per API port, so two daemons on one host
/// do not overwrite each other's session.
fn cookie_name(ctx: &ApiContext) -> String {
    format!("{SESSION_COOKIE}_{}", ctx.port)
}

/// The session id in `headers`' cookies.
fn session_id<'h>(ctx: &ApiContext, headers: &'h HeaderMap) -> Option<&'h str> {
    let name = cookie_name(ctx);
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find_map(|(n, value)| (n == name).then_some(value))
}

/// Whether `headers` carry a live session's cookie and, in [`UI_HEADER`],
/// that session's page key: the web view's call to the operator API.
pub(super) fn opens_api(ctx: &ApiContext, headers: &HeaderMap) -> bool {
    let key = headers.get(UI_HEADER).and_then(|v| v.to_str().ok());
    match (session_id(ctx, headers), key) {
        (Some(id), Some(key)) => ctx.sessions.opens(id, key),
        _ => false,
    }
}

fn cookie(ctx: &ApiContext, value: &str, max_age: Option<u32>) -> Option<HeaderValue> {
    let mut c = format!("{}={value}; Path=/; HttpOnly; SameSite=Strict", cookie_name(ctx));
    if ctx.tls {
        c.push_str("; Secure");
    }
    if let Some(age) = max_age {
        c.push_str(&format!("; Max-Age={age}"));
    }
    HeaderValue::from_str(&c).ok()
}

/// Whether a request may see the page: the session cookie, or the token itself.
fn allowed(ctx: &ApiContext, headers: &HeaderMap) -> bool {
    session_id(ctx, headers).is_some_and(|id| ctx.sessions.holds(id))
        || wire::server::bearer(headers)
            .is_some_and(|t| wire::worker::same_secret(t.as_bytes(), ctx.token.as_bytes()))
}

/// The web view's routes.
pub(super) fn routes() -> Router<Arc<ApiContext>> {
    Router::new()
        .route("/ui", get(index))
        .route("/ui/", get(index))
        .route("/ui/app.js", get(app_js))
        .route("/ui/app.css", get(app_css))
        .route("/ui/login", post(login))
        .route("/ui/logout", post(logout))
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    let mut r = (StatusCode::OK, body).into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    secure(h);
    r
}

fn secure(h: &mut HeaderMap) {
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
}

/// `body` to a signed-in browser (or a caller with the token); else the sign-in form.
fn page(ctx: &ApiContext, headers: &HeaderMap, content_type: &'static str, body: &'static str) -> Response {
    if allowed(ctx, headers) {
        asset(content_type, body)
    } else {
        login_page(None)
    }
}

async fn index(State(ctx): Ctx, headers: HeaderMap) -> Response {
    page(&ctx, &headers, "text/html; charset=utf-8", INDEX_HTML)
}

async fn app_js(State(ctx): Ctx, headers: HeaderMap) -> Response {
    page(&ctx, &headers, "text/javascript; charset=utf-8", APP_JS)
}

async fn app_css(State(ctx): Ctx, headers: HeaderMap) -> Response {
    page(&ctx, &headers, "text/css; charset=utf-8", APP_CSS)
}

#[derive(serde::Deserialize)]
struct LoginForm {
    token: String,
}

async fn login(
    State(ctx): Ctx,
    form: Result<Form<LoginForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let Ok(Form(form)) = form else { return login_page(Some("the form did not carry a token")) };
    if !wire::worker::same_secret(form.token.trim().as_bytes(), ctx.token.as_bytes()) {
        return login_page(Some("that is not this daemon's token"));
    }
    let (id, key) = ctx.sessions.open();
    let mut r = (StatusCode::SEE_OTHER, "").into_response();
    let h = r.headers_mut();
    // The page key travels in the fragment: the browser keeps it, no server sees it.
    if let Ok(to) = HeaderValue::from_str(&format!("/ui#key={key}")) {
        h.insert(header::LOCATION, to);
    }
    if let Some(v) = cookie(&ctx, &id, None) {
        h.insert(header::SET_COOKIE, v);
    }
    secure(h);
    r
}

async fn logout(State(ctx): Ctx, headers: HeaderMap) -> Response {
    if let Some(id) = session_id(&ctx, &headers) {
        ctx.sessions.close(id);
    }
    let mut r = login_page(None);
    *r.status_mut() = StatusCode::OK;
    if let Some(v) = cookie(&ctx, "", Some(0)) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

/// 401 with a form for the token.
fn login_page(error: Option<&str>) -> Response {
    let error = error.map_or(String::new(), |e| format!("<p class=\"error\">{e}</p>"));
    let body = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>kiln: sign in</title>\
         <style>body{{font:14px system-ui,sans-serif;margin:15vh auto;max-width:26rem;color:#222}}\
         input{{width:100%;padding:.4rem;margin:.5rem 0;font:inherit}}button{{padding:.4rem 1rem;font:inherit}}\
         .error{{color:#b00020}}code{{background:#f2f2f2;padding:0 .2rem}}</style></head><body>\
         <h1>kiln</h1><p>Enter the daemon's API token (the file <code>token</code> in its data directory).</p>\
         {error}<form method=\"post\" action=\"/ui/login\"><input id=\"token\" name=\"token\" type=\"password\" \
         autocomplete=\"current-password\" autofocus required><button id=\"sign-in\" type=\"submit\">Sign in</button>\
         </form></body></html>"
    );
    let mut r = (StatusCode::UNAUTHORIZED, body).into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    secure(h);
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_assets_reach_no_other_origin() {
        for (name, text) in [("index.html", INDEX_HTML), ("app.js", APP_JS), ("app.css", APP_CSS)] {
            for needle in ["http:", "https:", "//cdn", "url(", "@import", "ws:", "wss:"] {
                assert!(!text.contains(needle), "{name} contains {needle:?}");
            }
        }
        assert!(INDEX_HTML.contains("/ui/app.js") && INDEX_HTML.contains("/ui/app.css"));
    }

    #[test]
    fn sessions_end_on_sign_out_and_the_oldest_goes_beyond_the_cap() {
        let s = Sessions::default();
        let (first, key) = s.open();
        assert!(s.holds(&first) && !s.holds("guess") && !s.holds(""));
        assert!(s.opens(&first, &key));
        assert!(!s.opens(&first, "1") && !s.opens(&first, ""), "the cookie without its page key");
        let (second, second_key) = s.open();
        assert!(!s.opens(&first, &second_key), "another session's key");
        s.close(&second);
        assert!(!s.holds(&second) && s.holds(&first));
        for _ in 0..MAX_SESSIONS {
            s.open();
        }
        assert!(!s.holds(&first), "the oldest session was ended");
    }
}
