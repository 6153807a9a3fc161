//! Browser sessions and CSRF protection, for every face that serves a person's browser (the pages, and the
//! authorization endpoint's sign-in and consent).
//!
//! The session cookie holds 256 random bits; the database keeps only their SHA-256. A new id is issued at
//! every login (no session fixation). Forms of a signed-in person carry a CSRF token derived from the
//! session id, so nothing more is stored; anonymous forms (login, sign-up) use a double-submit cookie.
use std::sync::Arc;

use std::time::Duration;

use aws_lc_rs::hmac;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use poem::web::cookie::{Cookie, CookieJar, SameSite};
use poem::{FromRequest, Request, RequestBody};
use sea_orm::DbErr;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::crypto::{random_token, sha256_b64};
use crate::store::{Store, user};

const SESSION_COOKIE: &str = "mcpgw_session";
const CSRF_COOKIE: &str = "mcpgw_csrf";
/// How long the anonymous double-submit cookie lives.
const ANONYMOUS_CSRF_TTL: Duration = Duration::from_secs(2 * 3600);

/// A form's CSRF token was missing or wrong: the person reloads the page and tries again.
#[derive(Debug, thiserror::Error)]
#[error("the security token of the form was missing or did not match")]
pub struct FormExpired;

impl FormExpired {
    pub const TITLE: &'static str = "This form has expired";
    pub const MESSAGE: &'static str =
        "The security token of the form was missing or did not match. Go back, reload the page and try again.";
}

/// Browser sessions: the store, and how the cookies are set.
#[derive(Clone)]
pub struct Sessions {
    store: Store,
    /// Cookies carry `Secure` and the `__Host-` prefix: the browser reaches us over https.
    secure: bool,
    ttl: Duration,
    /// Members of this group (from an identity provider's claim or local) are admins (`ADMIN_GROUP`).
    admin_group: Option<String>,
}

/// The signed-in person: who, and the raw session id their CSRF token derives from.
pub struct SignedIn {
    pub user: user::Model,
    session: String,
}

impl Sessions {
    pub fn new(store: Store, secure: bool, ttl: Duration, admin_group: Option<String>) -> Sessions {
        Sessions { store, secure, ttl, admin_group }
    }

    /// Over https the cookies carry the `__Host-` prefix, so the browser refuses them unless they are
    /// Secure, host-only and for `/`: a sibling subdomain cannot plant or overwrite them.
    fn cookie_name(&self, base: &str) -> String {
        if self.secure { format!("__Host-{base}") } else { base.to_owned() }
    }

    fn cookie(&self, base: &str, value: String, max_age: Duration) -> Cookie {
        let mut c = Cookie::new_with_str(self.cookie_name(base), value);
        c.set_http_only(true);
        c.set_same_site(SameSite::Lax);
        c.set_secure(self.secure);
        c.set_path("/");
        c.set_max_age(max_age);
        c
    }

    /// The person this browser's session cookie belongs to, if the session is live and the user enabled.
    pub async fn signed_in(&self, jar: &CookieJar) -> Result<Option<SignedIn>, DbErr> {
        let Some(raw) = jar.get(&self.cookie_name(SESSION_COOKIE)).map(|c| c.value_str().to_owned()) else {
            return Ok(None);
        };
        let Some(mut user) = self.store.session_user(&raw).await? else {
            return Ok(None);
        };
        // The admin role may come from a group: read at every page, so leaving the group ends it at once.
        if !user.is_admin
            && let Some(group) = &self.admin_group
        {
            user.is_admin = self.store.user_groups(&user.id).await?.iter().any(|g| &g.name == group);
        }
        Ok(Some(SignedIn { user, session: raw }))
    }

    /// Starts a fresh session for `user` (replacing any previous one in this browser).
    pub async fn start(&self, jar: &CookieJar, user: &user::Model) -> Result<(), DbErr> {
        if let Some(old) = jar.get(&self.cookie_name(SESSION_COOKIE)) {
            self.store.delete_session(old.value_str()).await?;
        }
        let raw = self.store.create_session(&user.id, self.ttl).await?;
        jar.add(self.cookie(SESSION_COOKIE, raw, self.ttl));
        Ok(())
    }

    pub async fn end(&self, jar: &CookieJar) -> Result<(), DbErr> {
        if let Some(old) = jar.get(&self.cookie_name(SESSION_COOKIE)) {
            self.store.delete_session(old.value_str()).await?;
        }
        jar.add(self.cookie(SESSION_COOKIE, String::new(), Duration::ZERO));
        Ok(())
    }

    /// Keeps a flow under way in this browser (a sign-in at an identity provider) in a short-lived cookie.
    pub fn set_flow_cookie(&self, jar: &CookieJar, name: &str, value: String, max_age: Duration) {
        jar.add(self.cookie(name, value, max_age));
    }

    /// The flow cookie `name`, ended at once (it serves one return).
    pub fn take_flow_cookie(&self, jar: &CookieJar, name: &str) -> Option<String> {
        let value = jar.get(&self.cookie_name(name)).map(|c| c.value_str().to_owned());
        if value.is_some() {
            jar.add(self.cookie(name, String::new(), Duration::ZERO));
        }
        value
    }

    /// The double-submit token of anonymous forms: the cookie's value, set if the browser has none yet.
    pub fn anonymous_csrf_token(&self, jar: &CookieJar) -> String {
        if let Some(existing) = jar.get(&self.cookie_name(CSRF_COOKIE)).filter(|c| c.value_str().len() == 43) {
            return existing.value_str().to_owned();
        }
        let token = random_token();
        jar.add(self.cookie(CSRF_COOKIE, token.clone(), ANONYMOUS_CSRF_TTL));
        token
    }

    pub fn check_anonymous_csrf(&self, jar: &CookieJar, presented: Option<&str>) -> Result<(), FormExpired> {
        match jar.get(&self.cookie_name(CSRF_COOKIE)) {
            Some(c) if c.value_str().len() == 43 => check(c.value_str(), presented),
            _ => Err(FormExpired),
        }
    }
}

impl SignedIn {
    pub fn csrf_token(&self) -> String {
        sha256_b64(format!("csrf:{}", self.session).as_bytes())
    }

    pub fn check_csrf(&self, presented: Option<&str>) -> Result<(), FormExpired> {
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

fn check(expected: &str, presented: Option<&str>) -> Result<(), FormExpired> {
    let ok = presented.is_some_and(|p| bool::from(p.as_bytes().ct_eq(expected.as_bytes())));
    if ok { Ok(()) } else { Err(FormExpired) }
}

/// The person signed in in this browser, if anyone (an extractor; needs [`Sessions`] as request data and
/// the cookie jar). A storage failure refuses the request with 503.
pub struct Visitor(pub Option<SignedIn>);

impl<'a> FromRequest<'a> for Visitor {
    async fn from_request(req: &'a Request, body: &mut RequestBody) -> poem::Result<Visitor> {
        let sessions = <poem::web::Data<&Arc<Sessions>>>::from_request(req, body).await?;
        let jar = <&CookieJar>::from_request(req, body).await?;
        sessions.signed_in(jar).await.map(Visitor).map_err(|e| {
            tracing::error!(error = %e, "reading the browser session failed");
            poem::Error::from_status(poem::http::StatusCode::SERVICE_UNAVAILABLE)
        })
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
