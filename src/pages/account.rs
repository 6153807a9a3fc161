//! Signing up, in and out, and what every signed-in page shares: the navigation and the way to the login
//! page.
use std::sync::Arc;

use std::net::IpAddr;
use std::time::Duration;

use poem::http::StatusCode;
use poem::http::header::RETRY_AFTER;
use poem::web::cookie::CookieJar;
use poem::web::{Data, Form, Query};
use poem::{Response, handler};
use serde::Deserialize;

use super::error::PageError;
use super::templates::{LoginPage, Nav, SignupPage, render};
use super::{Pages, html_response, see_other};
use crate::domain::accounts::{validate_password, validate_username};
use crate::domain::sessions::{SignedIn, Visitor, safe_return_to};
use crate::limits::{ClientAddress, RetryAfter};
use crate::store::{AuditEntry, AuditKind, Store, user};

/// To the login page, which comes back to `here` (a local path) afterwards.
pub fn to_login(pages: &Pages, here: &str) -> Response {
    let back: String = url::form_urlencoded::byte_serialize(format!("{}{here}", pages.base).as_bytes()).collect();
    see_other(&format!("{}/login?return_to={back}", pages.base))
}

pub fn nav<'a>(pages: &'a Pages, me: &'a SignedIn, current: &'static str) -> Nav<'a> {
    Nav {
        base: &pages.base,
        username: &me.user.username,
        admin: me.user.is_admin,
        csrf_token: me.csrf_token(),
        current,
    }
}

/// The login form; also what `/oauth/authorize` shows when nobody is signed in.
pub fn login_html(pages: &Pages, jar: &CookieJar, return_to: &str, username: &str, error: Option<&str>) -> String {
    let csrf = pages.sessions.anonymous_csrf_token(jar);
    render(&LoginPage {
        base: &pages.base,
        csrf_token: &csrf,
        return_to,
        username,
        error,
        signup: pages.signup && pages.password_login,
        providers: pages.sign_in_providers.read().expect("providers lock").clone(),
        password_login: pages.password_login,
    })
}

fn login_page(
    pages: &Pages,
    jar: &CookieJar,
    status: StatusCode,
    return_to: &str,
    username: &str,
    error: Option<&str>,
) -> Response {
    html_response(status, login_html(pages, jar, return_to, username, error))
}

#[derive(Debug, Deserialize)]
pub struct ReturnTo {
    return_to: Option<String>,
}

#[handler]
pub async fn login_form(pages: Data<&Arc<Pages>>, jar: &CookieJar, Query(q): Query<ReturnTo>) -> Response {
    pages.refresh_sign_in_providers().await;
    login_page(&pages, jar, StatusCode::OK, &safe_return_to(q.return_to.as_deref()), "", None)
}

#[derive(Debug, Deserialize)]
pub struct LoginForm {
    username: Option<String>,
    password: Option<String>,
    csrf_token: Option<String>,
    return_to: Option<String>,
}

#[handler]
pub async fn login(
    pages: Data<&Arc<Pages>>,
    ClientAddress(ip): ClientAddress,
    jar: &CookieJar,
    Form(form): Form<LoginForm>,
) -> Result<Response, PageError> {
    pages.sessions.check_anonymous_csrf(jar, form.csrf_token.as_deref())?;
    if !pages.password_login {
        return Err(PageError::forbidden(
            "Sign in with your identity provider",
            "This server does not take passwords (PASSWORD_LOGIN=off); use a \"Sign in with\" button.",
        ));
    }
    let return_to = safe_return_to(form.return_to.as_deref());
    let username = form.username.unwrap_or_default().trim().to_ascii_lowercase();
    let password = form.password.unwrap_or_default();
    // Failures count against the address and the account name (whether or not it exists, so a refusal
    // tells nothing about which accounts exist; a name that could not exist counts against the address only).
    // A blocked key is refused before the password is checked, and checked again once a hashing slot is free.
    let account = validate_username(&username).ok();
    let throttled = |retry: RetryAfter| {
        tracing::info!("login refused: too many failures");
        let message = format!("Too many failed sign-ins. Try again in {} seconds.", retry.seconds());
        let mut page = login_page(&pages, jar, StatusCode::TOO_MANY_REQUESTS, &return_to, &username, Some(&message));
        page.headers_mut().insert(RETRY_AFTER, retry.seconds().into());
        page
    };
    if let Err(retry) = pages.limits.login_allowed(ip, account.as_deref()) {
        return Ok(throttled(retry));
    }
    let user = match &account {
        Some(name) => pages.store.find_user_by_username(name).await?,
        None => None,
    };
    let mut blocked = None;
    let checked = pages
        .passwords
        .verify_limited(
            &password,
            // An account without a password (made by an identity provider) is checked like an unknown one:
            // against the dummy hash, so the time taken tells nothing.
            user.as_ref().map(|u| u.password_hash.as_str()).filter(|h| !h.is_empty()),
            || pages.limits.login_allowed(ip, account.as_deref()).is_ok(),
            || blocked = pages.limits.login_failed(ip, account.as_deref()),
        )
        .await;
    let Some(password_ok) = checked else {
        let retry =
            pages.limits.login_allowed(ip, account.as_deref()).err().unwrap_or(RetryAfter(Duration::from_secs(1)));
        return Ok(throttled(retry));
    };
    match user {
        Some(user) if password_ok && !user.disabled => {
            pages.sessions.start(jar, &user).await?;
            tracing::info!(user_id = %user.id, "login succeeded");
            let entry = AuditEntry { user_id: Some(&user.id), ip, ..AuditEntry::default() };
            pages.store.audit(AuditKind::LoginSucceeded, entry).await;
            Ok(see_other(&return_to))
        }
        user => {
            if password_ok {
                // The right password of a disabled account: not a guess, but not a success either.
                blocked = pages.limits.login_failed(ip, account.as_deref());
            }
            record_failed_login(&pages.store, user.as_ref(), ip, blocked).await;
            Ok(login_page(
                &pages,
                jar,
                StatusCode::UNAUTHORIZED,
                &return_to,
                &username,
                Some("The username or password is not right."),
            ))
        }
    }
}

/// A failed sign-in in the audit log; the attempted name is not recorded for an unknown account (people type
/// passwords there). A block is recorded once, when it starts, not once per refused request (a flood must
/// not become writes).
async fn record_failed_login(
    store: &Store,
    user: Option<&user::Model>,
    ip: Option<IpAddr>,
    blocked: Option<RetryAfter>,
) {
    tracing::info!("login failed");
    let detail = match user {
        None => "unknown account",
        Some(u) if u.disabled => "disabled account",
        Some(_) => "wrong password",
    };
    let user_id = user.map(|u| u.id.as_str());
    let entry = AuditEntry { user_id, ip, detail: Some(detail), ..AuditEntry::default() };
    store.audit(AuditKind::LoginFailed, entry).await;
    if let Some(retry) = blocked {
        let detail = format!("too many failed sign-ins; blocked for {} s", retry.seconds());
        let entry = AuditEntry { user_id, ip, detail: Some(&detail), ..AuditEntry::default() };
        store.audit(AuditKind::LoginThrottled, entry).await;
    }
}

fn signup_page(
    pages: &Pages,
    jar: &CookieJar,
    status: StatusCode,
    return_to: &str,
    username: &str,
    error: Option<&str>,
) -> Response {
    let csrf = pages.sessions.anonymous_csrf_token(jar);
    let page = SignupPage { base: &pages.base, csrf_token: &csrf, return_to, username, error };
    html_response(status, render(&page))
}

#[handler]
pub async fn signup_form(
    pages: Data<&Arc<Pages>>,
    jar: &CookieJar,
    Query(q): Query<ReturnTo>,
) -> Result<Response, PageError> {
    if !pages.signup {
        return Err(PageError::not_found());
    }
    Ok(signup_page(&pages, jar, StatusCode::OK, &safe_return_to(q.return_to.as_deref()), "", None))
}

#[derive(Debug, Deserialize)]
pub struct SignupForm {
    username: Option<String>,
    password: Option<String>,
    password_confirm: Option<String>,
    csrf_token: Option<String>,
    return_to: Option<String>,
}

#[handler]
pub async fn signup(
    pages: Data<&Arc<Pages>>,
    ClientAddress(ip): ClientAddress,
    jar: &CookieJar,
    Form(form): Form<SignupForm>,
) -> Result<Response, PageError> {
    if !pages.signup {
        return Err(PageError::not_found());
    }
    pages.sessions.check_anonymous_csrf(jar, form.csrf_token.as_deref())?;
    let return_to = safe_return_to(form.return_to.as_deref());
    let raw_username = form.username.unwrap_or_default();
    let password = form.password.unwrap_or_default();
    let page = |status: StatusCode, message: &str| {
        signup_page(&pages, jar, status, &return_to, raw_username.trim(), Some(message))
    };
    let fail = |message: &str| page(StatusCode::BAD_REQUEST, message);
    let username = match validate_username(raw_username.trim()) {
        Ok(u) => u,
        Err(message) => return Ok(fail(message)),
    };
    if let Err(message) = validate_password(&password) {
        return Ok(fail(message));
    }
    if form.password_confirm.as_deref() != Some(password.as_str()) {
        return Ok(fail("The two passwords are not the same."));
    }
    // Every attempt from here on counts against the address (`RATE_LIMITS=signup=…`): it may create an
    // account, or learn that a name is taken, so neither accounts nor the list of names can be harvested.
    let throttled = |retry: RetryAfter| {
        tracing::info!("sign-up refused: too many attempts from this address");
        let message =
            format!("Too many sign-ups from your address. Try again in {} minutes.", retry.seconds().div_ceil(60));
        let mut response = page(StatusCode::TOO_MANY_REQUESTS, &message);
        response.headers_mut().insert(RETRY_AFTER, retry.seconds().into());
        response
    };
    if let Err(retry) = pages.limits.signup_attempt(ip) {
        return Ok(throttled(retry));
    }
    // The name is checked before the password is hashed: a taken name costs no argon2id.
    if pages.store.find_user_by_username(&username).await?.is_some() {
        return Ok(fail("That username is taken."));
    }
    let Some(hash) = pages.passwords.hash_limited(&password, || pages.limits.signup_allowed(ip).is_ok()).await else {
        let retry = pages.limits.signup_allowed(ip).err().unwrap_or(RetryAfter(Duration::from_secs(1)));
        return Ok(throttled(retry));
    };
    let Some(user) = pages.store.create_user(&username, hash, false).await? else {
        return Ok(fail("That username is taken."));
    };
    tracing::info!(user_id = %user.id, "user signed up");
    pages.sessions.start(jar, &user).await?;
    Ok(see_other(&return_to))
}

#[derive(Debug, Deserialize)]
pub struct LogoutForm {
    csrf_token: Option<String>,
}

#[handler]
pub async fn logout(
    pages: Data<&Arc<Pages>>,
    Visitor(me): Visitor,
    jar: &CookieJar,
    Form(form): Form<LogoutForm>,
) -> Result<Response, PageError> {
    if let Some(me) = me {
        me.check_csrf(form.csrf_token.as_deref())?;
        pages.sessions.end(jar).await?;
        tracing::info!(user_id = %me.user.id, "logged out");
    }
    Ok(see_other(&format!("{}/", pages.base)))
}
