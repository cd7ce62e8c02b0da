//! Signing in with the admin token (a form, never a URL) and signing out.

use axum::Extension;
use axum::Form;
use axum::extract::State;
use axum::extract::rejection::FormRejection;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{DOCTYPE, Markup, html};
use serde::Deserialize;
use subtle::ConstantTimeEq;

use super::layout::{ConsoleError, head, html_response};
use super::{ConsoleState, SignedIn, cross_site, session};

/// The sign-in form.
#[derive(Deserialize)]
pub(crate) struct SignInForm {
    token: String,
}

/// A form with only the CSRF token (sign-out, replay).
#[derive(Deserialize)]
pub(crate) struct TokenOnly {
    pub(crate) csrf: Option<String>,
}

/// `GET /console/sign-in`: the form, or the overview for someone signed
/// in.
pub(crate) async fn sign_in_page(
    State(state): State<ConsoleState>,
    headers: HeaderMap,
) -> Response {
    if session::session_id(&headers).is_some_and(|id| state.sessions.find(id).is_some()) {
        return Redirect::to("/console/").into_response();
    }
    html_response(StatusCode::OK, sign_in_markup(None))
}

/// `POST /console/sign-in`: a right token starts a session.
pub(crate) async fn sign_in(
    State(state): State<ConsoleState>,
    headers: HeaderMap,
    form: Result<Form<SignInForm>, FormRejection>,
) -> Response {
    if let Some(problem) = cross_site::cross_site_problem(&headers) {
        tracing::warn!(%problem, "console: refused a cross-site sign-in");
        return ConsoleError::new(
            StatusCode::FORBIDDEN,
            format!("{problem}; hint: sign in from the console's own page"),
        )
        .into_response();
    }
    let Ok(Form(form)) = form else {
        return html_response(
            StatusCode::BAD_REQUEST,
            sign_in_markup(Some(
                "the sign-in form was not sent as a form; hint: use the form on this page",
            )),
        );
    };
    let presented = form.token.trim();
    if presented.is_empty() || !bool::from(presented.as_bytes().ct_eq(state.api.token.as_bytes())) {
        tracing::warn!("console: a sign-in with a wrong admin token");
        return html_response(
            StatusCode::UNAUTHORIZED,
            sign_in_markup(Some(
                "wrong admin token; hint: use the token the server printed at its first start, or the one in <data-dir>/admin-token",
            )),
        );
    }
    let session = state.sessions.start();
    let mut response = Redirect::to("/console/").into_response();
    response
        .headers_mut()
        .insert(header::SET_COOKIE, state.sessions.cookie(&session));
    response
}

/// `POST /console/sign-out`: ends the session and clears the cookie.
pub(crate) async fn sign_out(
    State(state): State<ConsoleState>,
    Extension(signed_in): Extension<SignedIn>,
    form: Result<Form<TokenOnly>, FormRejection>,
) -> Result<Response, ConsoleError> {
    let csrf = form.ok().and_then(|Form(form)| form.csrf);
    signed_in.check_csrf(csrf.as_deref())?;
    state.sessions.end(&signed_in.0.id);
    let mut response = Redirect::to("/console/sign-in").into_response();
    response
        .headers_mut()
        .insert(header::SET_COOKIE, session::clearing_cookie());
    Ok(response)
}

fn sign_in_markup(problem: Option<&str>) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head("Sign in"))
            body.sign-in {
                main #main {
                    h1 { "Sign in to the Kumo console" }
                    @if let Some(problem) = problem {
                        p #sign-in-problem .notice.error role="alert" { (problem) }
                    }
                    form method="post" action="/console/sign-in" {
                        label for="token" { "Admin token" }
                        input #token name="token" type="password" autocomplete="current-password"
                            required autofocus aria-describedby="token-hint";
                        p.hint #token-hint {
                            "The token the server printed at its first start; it is also in "
                            code { "KUMO_ADMIN_TOKEN" } " or " code { "<data-dir>/admin-token" } "."
                        }
                        button type="submit" { "Sign in" }
                    }
                }
            }
        }
    }
}
