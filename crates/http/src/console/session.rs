//! Console sessions: an operator token given once at sign-in becomes a random
//! session id in an `HttpOnly`, `SameSite=Strict` cookie, so the token never
//! sits in a URL, a page or the browser's script reach. The host keeps the
//! token behind each session and checks it with its scope on every request,
//! as if it had come as `Authorization: Bearer`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use axum::http::header;
use sha2::{Digest, Sha256};

/// The cookie's name.
pub const COOKIE: &str = "powerplug_session";
/// How long a session lasts from sign-in.
pub const LIFETIME: Duration = Duration::from_secs(12 * 3600);
/// Sessions kept at once: only a valid token opens one, so this bounds what
/// an operator's scripts can pile up; the oldest goes first.
pub const MAX_SESSIONS: usize = 1_000;

struct Session {
    token: String,
    expires: Instant,
}

#[derive(Default)]
pub struct Sessions(Mutex<HashMap<[u8; 32], Session>>);

fn digest(id: &str) -> [u8; 32] {
    Sha256::digest(id.as_bytes()).into()
}

impl Sessions {
    /// Opens a session for a token already checked; its id for the cookie.
    pub fn open(&self, token: String) -> anyhow::Result<String> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
        let id = hex::encode(bytes);
        let now = Instant::now();
        let mut sessions = self.0.lock().unwrap_or_else(|e| e.into_inner());
        sessions.retain(|_, s| s.expires > now);
        if sessions.len() >= MAX_SESSIONS {
            let oldest = sessions
                .iter()
                .min_by_key(|(_, s)| s.expires)
                .map(|(k, _)| *k);
            if let Some(oldest) = oldest {
                sessions.remove(&oldest);
            }
        }
        sessions.insert(
            digest(&id),
            Session {
                token,
                expires: now + LIFETIME,
            },
        );
        Ok(id)
    }

    /// The token behind the request's session cookie, if it is live.
    pub fn token(&self, headers: &HeaderMap) -> Option<String> {
        let id = cookie(headers)?;
        let sessions = self.0.lock().unwrap_or_else(|e| e.into_inner());
        sessions
            .get(&digest(&id))
            .filter(|s| s.expires > Instant::now())
            .map(|s| s.token.clone())
    }

    /// Ends the request's session, if any.
    pub fn close(&self, headers: &HeaderMap) {
        if let Some(id) = cookie(headers) {
            let mut sessions = self.0.lock().unwrap_or_else(|e| e.into_inner());
            sessions.remove(&digest(&id));
        }
    }
}

/// The session id in the request's `Cookie` headers.
fn cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.to_owned())
        .filter(|v| v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// The `Set-Cookie` value that opens a session.
pub fn set_cookie(id: &str) -> String {
    format!(
        "{COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}",
        LIFETIME.as_secs()
    )
}

/// The `Set-Cookie` value that ends one.
pub fn clear_cookie() -> String {
    format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_cookie(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, value.parse().unwrap());
        h
    }

    #[test]
    fn a_session_gives_its_token_until_closed_and_forged_ids_give_nothing() {
        let sessions = Sessions::default();
        let id = sessions.open("tok".into()).unwrap();
        let headers = with_cookie(&format!("other=1; {COOKIE}={id}"));
        assert_eq!(sessions.token(&headers).as_deref(), Some("tok"));
        let forged = with_cookie(&format!("{COOKIE}={}", "0".repeat(64)));
        assert_eq!(sessions.token(&forged), None);
        assert_eq!(sessions.token(&with_cookie(&format!("{COOKIE}=abc"))), None);
        sessions.close(&headers);
        assert_eq!(sessions.token(&headers), None);
    }

    #[test]
    fn sessions_are_bounded_and_the_oldest_goes() {
        let sessions = Sessions::default();
        let first = sessions.open("t".into()).unwrap();
        for _ in 0..MAX_SESSIONS {
            sessions.open("t".into()).unwrap();
        }
        assert_eq!(sessions.0.lock().unwrap().len(), MAX_SESSIONS);
        let gone = with_cookie(&format!("{COOKIE}={first}"));
        assert_eq!(sessions.token(&gone), None);
    }
}
