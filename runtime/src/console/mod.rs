//! The web console, served on the admin listener at `/console/`: pages to
//! see and steer functions, invocations, logs, bills, events and objects
//! in a browser.
//!
//! Pages are HTML rendered on the server (maud templates, escaped by
//! construction) from the same internals the admin API's handlers call:
//! [`Live`](crate::live::Live)'s snapshot, [`Control`](crate::control::Control)
//! for every change, the metering reports, the event queue, the guest logs
//! and [`Objects`]. A little vanilla JavaScript (`assets/console.js`)
//! follows a function's log and refreshes instance counts; every page also
//! works without it. Assets are compiled into the binary: no CDN, no build
//! step.
//!
//! Signing in takes the admin token once, in a form; the browser then
//! holds a session cookie (`session`). Every state-changing form carries
//! the session's CSRF token, and a request a browser marks as cross-site
//! is refused (`cross_site`). One module per page: `overview`,
//! `function`, `billing` (with `chart`), `events`, `buckets`.

mod billing;
mod buckets;
mod chart;
mod cross_site;
mod events;
mod function;
mod layout;
mod overview;
mod session;
mod sign_in;

use std::time::Instant;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};

use crate::api::ApiState;
use crate::storage::Objects;

pub(crate) use session::{SESSION_LIFETIME, Sessions};

use layout::ConsoleError;
use session::Session;

/// What the console's handlers share.
#[derive(Clone)]
pub(crate) struct ConsoleState {
    /// The admin API's state: control, live, the token, records, logs,
    /// prices.
    pub(crate) api: ApiState,
    /// Object storage, shared with the S3 endpoint.
    pub(crate) objects: Objects,
    /// Who is signed in.
    pub(crate) sessions: Sessions,
    /// When the process started, for its uptime.
    pub(crate) started: Instant,
}

const STYLESHEET: &str = include_str!("assets/console.css");
const SCRIPT: &str = include_str!("assets/console.js");

/// The console's routes, all under `/console`, to merge into the admin
/// listener's router.
pub(crate) fn router(state: ConsoleState) -> Router {
    let signed_in = Router::new()
        .route("/console/", get(overview::overview))
        .route("/console/live/instances", get(overview::instance_counts))
        .route("/console/functions/{name}", get(function::function_page))
        .route(
            "/console/functions/{name}/aliases",
            post(function::set_alias),
        )
        .route("/console/functions/{name}/log", get(function::follow_log))
        .route("/console/billing", get(billing::billing_page))
        .route("/console/billing.csv", get(billing::billing_csv))
        .route("/console/events", get(events::events_page))
        .route("/console/events/{id}/replay", post(events::replay))
        .route("/console/storage", get(buckets::buckets_page))
        .route("/console/storage/{bucket}", get(buckets::bucket_page))
        .route("/console/storage/{bucket}/object", get(buckets::download))
        .route(
            "/console/storage/{bucket}/upload",
            post(buckets::upload).layer(axum::extract::DefaultBodyLimit::disable()),
        )
        .route("/console/sign-out", post(sign_in::sign_out))
        .route_layer(axum::middleware::from_fn_with_state(
            state.sessions.clone(),
            require_session,
        ));
    Router::new()
        .route(
            "/console",
            get(|| async { Redirect::permanent("/console/") }),
        )
        .route(
            "/console/sign-in",
            get(sign_in::sign_in_page).post(sign_in::sign_in),
        )
        .route("/console/assets/console.css", get(stylesheet))
        .route("/console/assets/console.js", get(script))
        .route("/console/{*rest}", axum::routing::any(unknown_page))
        .merge(signed_in)
        .layer(axum::middleware::map_response(security_headers))
        .with_state(state)
}

/// The signed-in person's session, put into each request by
/// [`require_session`].
#[derive(Clone)]
pub(crate) struct SignedIn(pub(crate) Session);

/// Lets a request with a live session through (with its [`SignedIn`]);
/// sends a browser without one to the sign-in page. A request that is
/// not a GET must also come from the console's own pages.
async fn require_session(
    State(sessions): State<Sessions>,
    mut request: Request,
    next: Next,
) -> Response {
    let session = session::session_id(request.headers()).and_then(|id| sessions.find(id));
    let Some(session) = session else {
        if request.method() == Method::GET {
            return Redirect::to("/console/sign-in").into_response();
        }
        let mut refused = ConsoleError::new(
            StatusCode::UNAUTHORIZED,
            "you are not signed in, or your session ended; hint: sign in again at /console/sign-in",
        )
        .into_response();
        refused
            .headers_mut()
            .insert(header::SET_COOKIE, session::clearing_cookie());
        return refused;
    };
    if request.method() != Method::GET
        && let Some(problem) = cross_site::cross_site_problem(request.headers())
    {
        tracing::warn!(path = %request.uri().path(), %problem, "console: refused a cross-site form");
        return ConsoleError::new(
            StatusCode::FORBIDDEN,
            format!("{problem}; hint: use the console's own pages"),
        )
        .into_response();
    }
    request.extensions_mut().insert(SignedIn(session));
    next.run(request).await
}

impl SignedIn {
    /// Checks a form's CSRF token against the session's.
    ///
    /// # Errors
    ///
    /// A `403` when it is missing or wrong.
    pub(crate) fn check_csrf(&self, presented: Option<&str>) -> Result<(), ConsoleError> {
        match presented {
            Some(token) if self.0.csrf_matches(token) => Ok(()),
            _ => Err(ConsoleError::new(
                StatusCode::FORBIDDEN,
                "the form's security token is missing or out of date; hint: reload the page and send the form again",
            )),
        }
    }
}

/// The console's pages carry no inline script or style and may not be
/// framed; nothing is cached.
async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    response
}

async fn stylesheet() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        STYLESHEET,
    )
}

async fn script() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        SCRIPT,
    )
}

async fn unknown_page(request: Request) -> ConsoleError {
    ConsoleError::new(
        StatusCode::NOT_FOUND,
        format!(
            "no console page `{}`; hint: start from the overview",
            request.uri().path()
        ),
    )
}

/// The console's state over the admin API's, with a fresh session table.
pub(crate) fn state(api: ApiState, objects: Objects, started: Instant) -> ConsoleState {
    ConsoleState {
        api,
        objects,
        sessions: Sessions::new(SESSION_LIFETIME),
        started,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};

    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    use super::*;

    /// The real guard in front of two stand-in routes, timed by a clock
    /// moved by hand.
    #[tokio::test]
    async fn an_expired_session_is_refused() {
        let now = Arc::new(Mutex::new(Instant::now()));
        let read = now.clone();
        let sessions = Sessions::with_clock(
            Duration::from_secs(600),
            Arc::new(move || *read.lock().unwrap()),
        );
        let app = Router::new()
            .route("/console/", get(|| async { "overview" }))
            .route("/console/change", post(|| async { "changed" }))
            .route_layer(axum::middleware::from_fn_with_state(
                sessions.clone(),
                require_session,
            ));
        let session = sessions.start();
        let cookie = format!("{}={}", session::COOKIE_NAME, session.id);
        let send = |method: &str, path: &str| {
            let request = Request::builder()
                .method(method)
                .uri(path)
                .header(header::HOST, "127.0.0.1:5001")
                .header(header::COOKIE, &cookie)
                .body(Body::empty())
                .unwrap();
            app.clone().oneshot(request)
        };

        let open = send("GET", "/console/").await.unwrap();
        assert_eq!(open.status(), StatusCode::OK);
        *now.lock().unwrap() += Duration::from_secs(599);
        let still_open = send("POST", "/console/change").await.unwrap();
        assert_eq!(still_open.status(), StatusCode::OK, "one second left");

        *now.lock().unwrap() += Duration::from_secs(1);
        let page = send("GET", "/console/").await.unwrap();
        assert_eq!(page.status(), StatusCode::SEE_OTHER);
        assert_eq!(page.headers()[header::LOCATION], "/console/sign-in");
        let form = send("POST", "/console/change").await.unwrap();
        assert_eq!(form.status(), StatusCode::UNAUTHORIZED);
        let cleared = form.headers()[header::SET_COOKIE].to_str().unwrap();
        assert!(cleared.contains("Max-Age=0"), "{cleared}");
    }
}
