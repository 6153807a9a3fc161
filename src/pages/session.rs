//! Browser sessions and CSRF protection.
//!
//! The session cookie holds 256 random bits; the database keeps only their SHA-256. A new id is issued at
//! every login (no session fixation). Forms of a signed-in person carry a CSRF token derived from the
//! session id, so nothing more is stored; anonymous forms (login, sign-up) use a double-submit cookie.
use std::time::Duration;

use aws_lc_rs::hmac;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use poem::web::cookie::{Cookie, CookieJar, SameSite};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::config::Config;
use crate::crypto::{random_token, sha256_b64};
use crate::error::PageError;
use crate::state::AppState;
use crate::store::user;

const SESSION_COOKIE: &str = "mcpgw_session";
const CSRF_COOKIE: &str = "mcpgw_csrf";

/// Over https the cookies carry the `__Host-` prefix, so the browser refuses them unless they are
/// Secure, host-only and for `/`: a sibling subdomain cannot plant or overwrite them.
fn cookie_name(config: &Config, base: &str) -> String {
    if config.secure_cookies() { format!("__Host-{base}") } else { base.to_owned() }
}

fn cookie(config: &Config, base: &str, value: String, max_age: Duration) -> Cookie {
    let mut c = Cookie::new_with_str(cookie_name(config, base), value);
    c.set_http_only(true);
    c.set_same_site(SameSite::Lax);
    c.set_secure(config.secure_cookies());
    c.set_path("/");
    c.set_max_age(max_age);
    c
}

/// The signed-in person: who, and the raw session id their CSRF token derives from.
pub struct SignedIn {
    pub user: user::Model,
    session: String,
}

impl SignedIn {
    pub fn csrf_token(&self) -> String {
        sha256_b64(format!("csrf:{}", self.session).as_bytes())
    }

    pub fn check_csrf(&self, presented: Option<&str>) -> Result<(), PageError> {
        check(&self.csrf_token(), presented)
    }

    /// An HMAC-SHA256 over `values`, keyed by this session (and `purpose`): a page binds what it showed to
    /// the form it submits, so a submission with other values is told apart. Each value is length-prefixed
    /// (an absent one marked as such), so no two lists of values share a message.
    pub fn mac(&self, purpose: &str, values: &[Option<&str>]) -> String {
        URL_SAFE_NO_PAD.encode(hmac::sign(&self.mac_key(purpose), &mac_message(values)))
    }

    /// Whether `presented` is [`SignedIn::mac`] of `values` (compared in constant time).
    pub fn mac_matches(&self, purpose: &str, values: &[Option<&str>], presented: Option<&str>) -> bool {
        let Some(tag) = presented.and_then(|p| URL_SAFE_NO_PAD.decode(p).ok()) else {
            return false;
        };
        hmac::verify(&self.mac_key(purpose), &mac_message(values), &tag).is_ok()
    }

    fn mac_key(&self, purpose: &str) -> hmac::Key {
        let key =
            Sha256::new().chain_update(b"mac\0").chain_update(purpose).chain_update([0u8]).chain_update(&self.session);
        hmac::Key::new(hmac::HMAC_SHA256, &key.finalize())
    }
}

fn mac_message(values: &[Option<&str>]) -> Vec<u8> {
    let mut message = Vec::new();
    for value in values {
        match value {
            Some(v) => {
                message.extend_from_slice(&(v.len() as u64).to_be_bytes());
                message.extend_from_slice(v.as_bytes());
            }
            None => message.extend_from_slice(&u64::MAX.to_be_bytes()),
        }
    }
    message
}

fn check(expected: &str, presented: Option<&str>) -> Result<(), PageError> {
    let ok = presented.is_some_and(|p| bool::from(p.as_bytes().ct_eq(expected.as_bytes())));
    if ok {
        Ok(())
    } else {
        Err(PageError::bad_request(
            "This form has expired",
            "The security token of the form was missing or did not match. Go back, reload the page and try again.",
        ))
    }
}

pub async fn signed_in(state: &AppState, jar: &CookieJar) -> Result<Option<SignedIn>, PageError> {
    let Some(raw) = jar.get(&cookie_name(&state.config, SESSION_COOKIE)).map(|c| c.value_str().to_owned()) else {
        return Ok(None);
    };
    Ok(state.store.session_user(&raw).await?.map(|user| SignedIn { user, session: raw }))
}

/// Starts a fresh session for `user` (replacing any previous one in this browser).
pub async fn start_session(state: &AppState, jar: &CookieJar, user: &user::Model) -> Result<(), PageError> {
    if let Some(old) = jar.get(&cookie_name(&state.config, SESSION_COOKIE)) {
        state.store.delete_session(old.value_str()).await?;
    }
    let ttl = state.config.session_ttl;
    let raw = state.store.create_session(&user.id, ttl.as_secs() as i64).await?;
    jar.add(cookie(&state.config, SESSION_COOKIE, raw, ttl));
    Ok(())
}

pub async fn end_session(state: &AppState, jar: &CookieJar) -> Result<(), PageError> {
    if let Some(old) = jar.get(&cookie_name(&state.config, SESSION_COOKIE)) {
        state.store.delete_session(old.value_str()).await?;
    }
    jar.add(cookie(&state.config, SESSION_COOKIE, String::new(), Duration::ZERO));
    Ok(())
}

/// The double-submit token of anonymous forms: the cookie's value, set if the browser has none yet.
pub fn anonymous_csrf_token(config: &Config, jar: &CookieJar) -> String {
    if let Some(existing) = jar.get(&cookie_name(config, CSRF_COOKIE)).filter(|c| c.value_str().len() == 43) {
        return existing.value_str().to_owned();
    }
    let token = random_token();
    jar.add(cookie(config, CSRF_COOKIE, token.clone(), Duration::from_secs(2 * 3600)));
    token
}

pub fn check_anonymous_csrf(config: &Config, jar: &CookieJar, presented: Option<&str>) -> Result<(), PageError> {
    match jar.get(&cookie_name(config, CSRF_COOKIE)) {
        Some(c) if c.value_str().len() == 43 => check(c.value_str(), presented),
        _ => check("\u{0}missing", None),
    }
}

/// A post-login destination: only a local path (`/…`, not `//…` or `/\…`), so the login page can never
/// be used as an open redirect.
pub fn safe_return_to(value: Option<&str>) -> String {
    match value {
        Some(v)
            if v.starts_with('/')
                && !v.starts_with("//")
                && !v.starts_with("/\\")
                && !v.chars().any(|c| c.is_control() || c == '\\') =>
        {
            v.to_owned()
        }
        _ => "/".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::safe_return_to;

    #[test]
    fn return_to_stays_on_this_site() {
        assert_eq!(safe_return_to(Some("/oauth/authorize?client_id=x")), "/oauth/authorize?client_id=x");
        for bad in [
            "https://evil.example",
            "//evil.example",
            "/\\evil.example",
            "javascript:alert(1)",
            "/a\r\nLocation: x",
            "",
        ] {
            assert_eq!(safe_return_to(Some(bad)), "/", "{bad:?}");
        }
        assert_eq!(safe_return_to(None), "/");
    }
}
