//! Console sessions: a person who signed in with the admin token gets a
//! random session id in an `HttpOnly`, `SameSite=Strict` cookie scoped to
//! `/console`; the server keeps the session (its CSRF token, its expiry, a
//! message for the next page) in memory. A restart signs everyone out,
//! which is the safe side for a single-operator console.
//!
//! Ids and CSRF tokens are 256 bits from the operating system's CSPRNG;
//! tokens are compared in constant time. Time comes from an injected
//! clock, so expiry is tested without waiting.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, HeaderValue, header};
use subtle::ConstantTimeEq;

/// The session cookie's name.
pub(crate) const COOKIE_NAME: &str = "kumo_console";

/// How long a session lasts after sign-in (a working day).
pub(crate) const SESSION_LIFETIME: Duration = Duration::from_secs(8 * 60 * 60);

/// The most sessions kept at once; signing in past it ends the oldest.
const MAX_SESSIONS: usize = 1_000;

/// Where "now" comes from: `Instant::now` in a server, a hand-moved clock
/// in tests.
pub(crate) type Clock = Arc<dyn Fn() -> Instant + Send + Sync>;

/// The signed-in sessions.
#[derive(Clone)]
pub(crate) struct Sessions {
    table: Arc<Mutex<HashMap<String, Session>>>,
    lifetime: Duration,
    clock: Clock,
}

/// One signed-in session.
#[derive(Debug, Clone)]
pub(crate) struct Session {
    /// Its id, the cookie's value.
    pub(crate) id: String,
    /// The synchronizer token every state-changing form of this session
    /// carries.
    pub(crate) csrf_token: String,
    /// When it ends.
    expires_at: Instant,
    /// A message for the next page shown (what the last form did).
    notice: Option<Notice>,
}

/// A message carried to the next page after a form was handled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Notice {
    /// True for a failure.
    pub(crate) is_error: bool,
    /// What happened.
    pub(crate) text: String,
}

impl Session {
    /// Whether `presented` is this session's CSRF token, compared in
    /// constant time.
    pub(crate) fn csrf_matches(&self, presented: &str) -> bool {
        bool::from(self.csrf_token.as_bytes().ct_eq(presented.as_bytes()))
    }
}

impl Sessions {
    /// Sessions lasting `lifetime`, timed by the real clock.
    pub(crate) fn new(lifetime: Duration) -> Self {
        Self::with_clock(lifetime, Arc::new(Instant::now))
    }

    /// Sessions lasting `lifetime`, timed by `clock`.
    pub(crate) fn with_clock(lifetime: Duration, clock: Clock) -> Self {
        Self {
            table: Arc::new(Mutex::new(HashMap::new())),
            lifetime,
            clock,
        }
    }

    fn table(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Starts a session (after the admin token was checked).
    pub(crate) fn start(&self) -> Session {
        let now = (self.clock)();
        let session = Session {
            id: random_token(),
            csrf_token: random_token(),
            expires_at: now + self.lifetime,
            notice: None,
        };
        let mut table = self.table();
        table.retain(|_, session| session.expires_at > now);
        if table.len() >= MAX_SESSIONS
            && let Some(oldest) = table
                .values()
                .min_by_key(|session| session.expires_at)
                .map(|session| session.id.clone())
        {
            table.remove(&oldest);
        }
        table.insert(session.id.clone(), session.clone());
        session
    }

    /// The live session with this id; an expired one is forgotten and
    /// `None`.
    pub(crate) fn find(&self, id: &str) -> Option<Session> {
        let now = (self.clock)();
        let mut table = self.table();
        match table.get(id) {
            Some(session) if session.expires_at > now => Some(session.clone()),
            Some(_) => {
                table.remove(id);
                None
            }
            None => None,
        }
    }

    /// Ends a session (sign-out).
    pub(crate) fn end(&self, id: &str) {
        self.table().remove(id);
    }

    /// Leaves a message for the session's next page.
    pub(crate) fn tell(&self, id: &str, notice: Notice) {
        if let Some(session) = self.table().get_mut(id) {
            session.notice = Some(notice);
        }
    }

    /// Takes the message left for this page, if any.
    pub(crate) fn take_notice(&self, id: &str) -> Option<Notice> {
        self.table()
            .get_mut(id)
            .and_then(|session| session.notice.take())
    }

    /// The `Set-Cookie` value that gives the browser `session`.
    pub(crate) fn cookie(&self, session: &Session) -> HeaderValue {
        let value = format!(
            "{COOKIE_NAME}={}; Path=/console; HttpOnly; SameSite=Strict; Max-Age={}",
            session.id,
            self.lifetime.as_secs()
        );
        HeaderValue::from_str(&value).expect("a hex id makes a valid header")
    }
}

/// The `Set-Cookie` value that removes the session cookie.
pub(crate) fn clearing_cookie() -> HeaderValue {
    HeaderValue::from_static("kumo_console=; Path=/console; HttpOnly; SameSite=Strict; Max-Age=0")
}

/// The session id the request's `Cookie` headers carry, if any.
pub(crate) fn session_id(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE_NAME)
        .map(|(_, value)| value)
        .filter(|value| !value.is_empty())
}

/// 256 random bits from the operating system, as 64 hex digits.
fn random_token() -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the operating system's random source works");
    hex::encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A clock moved by hand.
    fn manual_clock() -> (Clock, Arc<Mutex<Instant>>) {
        let now = Arc::new(Mutex::new(Instant::now()));
        let read = now.clone();
        (Arc::new(move || *read.lock().unwrap()), now)
    }

    #[test]
    fn a_session_lives_until_its_lifetime_ends_and_no_longer() {
        let (clock, now) = manual_clock();
        let sessions = Sessions::with_clock(Duration::from_secs(60), clock);
        let session = sessions.start();
        assert_eq!(session.id.len(), 64);
        assert_ne!(session.id, session.csrf_token);
        assert!(sessions.find(&session.id).is_some());
        *now.lock().unwrap() += Duration::from_secs(59);
        assert!(sessions.find(&session.id).is_some(), "one second left");
        *now.lock().unwrap() += Duration::from_secs(1);
        assert!(sessions.find(&session.id).is_none(), "expired");
        *now.lock().unwrap() -= Duration::from_secs(30);
        assert!(
            sessions.find(&session.id).is_none(),
            "an expired session is forgotten, not revived"
        );
    }

    #[test]
    fn sign_out_ends_the_session_and_ids_are_not_guessable_from_each_other() {
        let sessions = Sessions::new(SESSION_LIFETIME);
        let first = sessions.start();
        let second = sessions.start();
        assert_ne!(first.id, second.id);
        assert_ne!(first.csrf_token, second.csrf_token);
        sessions.end(&first.id);
        assert!(sessions.find(&first.id).is_none());
        assert!(sessions.find(&second.id).is_some());
        assert!(sessions.find("").is_none());
    }

    #[test]
    fn csrf_tokens_match_only_exactly() {
        let session = Sessions::new(SESSION_LIFETIME).start();
        let token = session.csrf_token.clone();
        let cases = [
            (token.clone(), true),
            (token[..63].to_string(), false),
            (format!("{token}0"), false),
            (token.to_uppercase(), false),
            (String::new(), false),
        ];
        for (presented, expected) in cases {
            assert_eq!(session.csrf_matches(&presented), expected, "{presented}");
        }
    }

    #[test]
    fn a_notice_is_shown_once() {
        let sessions = Sessions::new(SESSION_LIFETIME);
        let session = sessions.start();
        let notice = Notice {
            is_error: false,
            text: "moved".into(),
        };
        sessions.tell(&session.id, notice.clone());
        assert_eq!(sessions.take_notice(&session.id), Some(notice));
        assert_eq!(sessions.take_notice(&session.id), None);
    }

    #[test]
    fn the_cookie_is_http_only_strict_scoped_and_expiring() {
        let sessions = Sessions::new(Duration::from_secs(120));
        let session = sessions.start();
        let cookie = sessions.cookie(&session);
        let cookie = cookie.to_str().unwrap();
        for part in [
            "HttpOnly",
            "SameSite=Strict",
            "Path=/console",
            "Max-Age=120",
        ] {
            assert!(cookie.contains(part), "{cookie} lacks {part}");
        }
        assert!(clearing_cookie().to_str().unwrap().contains("Max-Age=0"));
    }

    #[test]
    fn the_session_id_is_read_from_any_cookie_header() {
        let headers = |values: &[&str]| {
            let mut headers = HeaderMap::new();
            for value in values {
                headers.append(header::COOKIE, HeaderValue::from_str(value).unwrap());
            }
            headers
        };
        let cases: [(&[&str], Option<&str>); 6] = [
            (&["kumo_console=abc"], Some("abc")),
            (&["a=1; kumo_console=abc; b=2"], Some("abc")),
            (&["a=1", "kumo_console=abc"], Some("abc")),
            (&["kumo_console="], None),
            (&["other_kumo_console=abc"], None),
            (&[], None),
        ];
        for (values, expected) in cases {
            assert_eq!(session_id(&headers(values)), expected, "{values:?}");
        }
    }
}
