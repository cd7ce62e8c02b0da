//! The events page: pending, retrying, dead (and delivered) events with
//! their error, attempts and next try; a dead event is replayed from the
//! page, as `POST /v1/events/{id}/replay` does.

use axum::extract::rejection::FormRejection;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use axum::{Extension, Form};
use maud::html;
use serde::Deserialize;

use super::layout::{self, ConsoleError, Section, page, redirect_with_notice};
use super::session::Notice;
use super::sign_in::TokenOnly;
use super::{ConsoleState, SignedIn};
use crate::api::ApiError;
use crate::events::{EventState, EventSummary, ReplayError};

/// Events each state's table lists.
const EVENTS_PER_STATE: u32 = 100;

/// The tabs of the page.
const STATES: [(EventState, &str); 4] = [
    (EventState::Dead, "Dead"),
    (EventState::Retrying, "Retrying"),
    (EventState::Pending, "Pending"),
    (EventState::Done, "Delivered"),
];

/// Query of `GET /console/events`.
#[derive(Deserialize)]
pub(crate) struct EventsQuery {
    state: Option<String>,
}

/// `GET /console/events?state=dead`.
pub(crate) async fn events_page(
    State(state): State<ConsoleState>,
    Extension(SignedIn(session)): Extension<SignedIn>,
    Query(query): Query<EventsQuery>,
) -> Result<Response, ConsoleError> {
    let shown = match query.state.as_deref() {
        None | Some("") => EventState::Dead,
        Some(text) => EventState::parse(text).map_err(|problem| {
            ConsoleError::new(
                axum::http::StatusCode::BAD_REQUEST,
                format!("{problem}; hint: use pending, retrying, dead or done"),
            )
        })?,
    };
    let events = match state.api.control.events().await {
        None => Vec::new(),
        Some(events) => crate::events::list(events.database(), Some(shown), EVENTS_PER_STATE)
            .await
            .map_err(|error| {
                tracing::error!(error = %error, "console: cannot list events");
                ApiError::internal()
            })?,
    };
    let content = html! {
        nav.tabs aria-label="Event states" {
            ul {
                @for (tab, label) in STATES {
                    li {
                        a href={ "/console/events?state=" (tab.as_str()) }
                            aria-current=[(tab == shown).then_some("page")] { (label) }
                    }
                }
            }
        }
        @if events.is_empty() {
            p #no-events { "No " (shown.as_str()) " events." }
        } @else {
            div.table-scroll role="region" aria-label="Events" tabindex="0" {
                table #events {
                    caption {
                        (events.len()) " " (shown.as_str())
                        @if events.len() == 1 { " event." } @else { " events, newest first." }
                    }
                    thead {
                        tr {
                            th scope="col" { "Event" }
                            th scope="col" { "Trigger" }
                            th scope="col" { "Target" }
                            th scope="col" { "Subject" }
                            th scope="col" { "Attempts" }
                            th scope="col" { (if shown == EventState::Done || shown == EventState::Dead { "Ended" } else { "Next try" }) }
                            th scope="col" { "Last error" }
                            @if shown == EventState::Dead { th scope="col" { "Replay" } }
                        }
                    }
                    tbody {
                        @for event in &events {
                            tr data-event=(event.id) {
                                td { code title=(event.id) { (event.id.get(..12).unwrap_or(&event.id)) } }
                                td { (event.trigger) }
                                td { code { (event.function) } }
                                td { (event.subject) }
                                td.number { (event.attempts) "/" (event.max_retries + 1) }
                                td { (layout::time(event.next_attempt)) }
                                td.wrap { (event.last_error.as_deref().unwrap_or("–")) }
                                @if shown == EventState::Dead {
                                    td {
                                        form.inline method="post" action={ "/console/events/" (layout::encode(&event.id)) "/replay" } {
                                            input type="hidden" name="csrf" value=(session.csrf_token);
                                            button type="submit" aria-label={ "Replay event " (event.id) } { "Replay" }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(page(&state, &session, Section::Events, "Events", content))
}

/// `POST /console/events/{id}/replay`: a dead event is pending again, due
/// now.
pub(crate) async fn replay(
    State(state): State<ConsoleState>,
    Extension(signed_in): Extension<SignedIn>,
    Path(id): Path<String>,
    form: Result<Form<TokenOnly>, FormRejection>,
) -> Result<Response, ConsoleError> {
    let csrf = form.ok().and_then(|Form(form)| form.csrf);
    signed_in.check_csrf(csrf.as_deref())?;
    let result: Result<EventSummary, String> = match state.api.control.events().await {
        None => Err(format!("no event `{id}`")),
        Some(events) => events.replay(&id).await.map_err(|error| match error {
            ReplayError::Database(error) => {
                tracing::error!(event = %id, error = %error, "console: cannot replay an event");
                ApiError::internal().message
            }
            other => other.to_string(),
        }),
    };
    let notice = match result {
        Ok(summary) => Notice {
            is_error: false,
            text: format!(
                "Event {} is pending again, due now; it moves to Delivered once {} takes it.",
                summary.id, summary.function
            ),
        },
        Err(problem) => Notice {
            is_error: true,
            text: format!("Event {id} was not replayed: {problem}"),
        },
    };
    Ok(redirect_with_notice(
        &state,
        &signed_in.0,
        "/console/events?state=pending",
        notice,
    ))
}
