//! The pages people use: home, sign up, log in, log out. The consent page belongs to
//! `oauth::authorize`. Plain server-rendered forms that work without JavaScript.
pub mod account;
pub mod admin;
pub mod apps;
pub mod connections;
pub mod session;
pub mod templates;

use std::time::Duration;

use poem::http::StatusCode;
use poem::http::header::RETRY_AFTER;
use poem::web::cookie::CookieJar;
use poem::web::{Data, Form, Query, Redirect};
use poem::{IntoResponse, Request, Response, handler};
use serde::Deserialize;

use self::session::{anonymous_csrf_token, check_anonymous_csrf, safe_return_to, signed_in, start_session};
use self::templates::{HomePage, LoginPage, SignupPage, render};
use crate::error::PageError;
use crate::limits::{RetryAfter, client_ip};
use crate::state::State;
use crate::store::{AuditEntry, AuditKind};

pub const STYLESHEET: &str = include_str!("../../templates/style.css");

pub fn html_response(status: StatusCode, html: String) -> Response {
    Response::builder().status(status).content_type("text/html; charset=utf-8").body(html)
}

/// 303 See Other: the answer to a successful form POST.
pub fn see_other(location: &str) -> Response {
    Redirect::see_other(location).into_response()
}

/// `?done=…` after a form POST: picks one of the page's fixed notices (nothing from the URL is shown).
#[derive(Debug, Default, Deserialize)]
pub struct Done {
    done: Option<String>,
}

impl Done {
    pub fn notice(&self, notices: &[(&str, &'static str)]) -> Option<&'static str> {
        let done = self.done.as_deref()?;
        notices.iter().find(|(key, _)| *key == done).map(|(_, text)| *text)
    }
}

/// A time as people read it: `2026-11-27 16:57 UTC`.
pub fn date(unix_seconds: i64) -> String {
    chrono::DateTime::from_timestamp(unix_seconds, 0)
        .map(|d| d.format("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_default()
}

#[derive(Debug, Deserialize)]
pub struct ReturnTo {
    return_to: Option<String>,
}

#[handler]
pub async fn home(state: Data<&State>, jar: &CookieJar) -> Result<Response, PageError> {
    let me = signed_in(&state, jar).await?;
    let csrf = me.as_ref().map(|m| m.csrf_token()).unwrap_or_default();
    let page = HomePage {
        base: state.config.issuer_path(),
        nav: me.as_ref().map(|m| account::nav(&state, m, "home")),
        username: me.as_ref().map(|m| m.user.username.as_str()),
        admin: me.as_ref().is_some_and(|m| m.user.is_admin),
        csrf_token: &csrf,
        signup: state.config.signup,
        resource: state.config.resource.as_str(),
    };
    Ok(html_response(StatusCode::OK, render(&page)))
}

#[handler]
pub fn stylesheet() -> Response {
    Response::builder()
        .content_type("text/css; charset=utf-8")
        .header("Cache-Control", "public, max-age=3600")
        .body(STYLESHEET)
}

/// The login form; also what `/oauth/authorize` shows when nobody is signed in.
pub fn login_html(state: &State, jar: &CookieJar, return_to: &str, username: &str, error: Option<&str>) -> String {
    let csrf = anonymous_csrf_token(&state.config, jar);
    render(&LoginPage {
        base: state.config.issuer_path(),
        csrf_token: &csrf,
        return_to,
        username,
        error,
        signup: state.config.signup,
    })
}

fn login_page(
    state: &State,
    jar: &CookieJar,
    status: StatusCode,
    return_to: &str,
    username: &str,
    error: Option<&str>,
) -> Response {
    html_response(status, login_html(state, jar, return_to, username, error))
}

#[handler]
pub async fn login_form(state: Data<&State>, jar: &CookieJar, Query(q): Query<ReturnTo>) -> Response {
    login_page(&state, jar, StatusCode::OK, &safe_return_to(q.return_to.as_deref()), "", None)
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
    state: Data<&State>,
    req: &Request,
    jar: &CookieJar,
    Form(form): Form<LoginForm>,
) -> Result<Response, PageError> {
    check_anonymous_csrf(&state.config, jar, form.csrf_token.as_deref())?;
    let return_to = safe_return_to(form.return_to.as_deref());
    let username = form.username.unwrap_or_default().trim().to_ascii_lowercase();
    let password = form.password.unwrap_or_default();
    // Failures count against the address and the account name (whether or not it exists, so a refusal
    // tells nothing about which accounts exist; a name that could not exist counts against the address only).
    // A blocked key is refused before the password is checked, and checked again once a hashing slot is free.
    let ip = client_ip(req, &state.config.trusted_proxies);
    let account = validate_username(&username).ok();
    let throttled = |retry: RetryAfter| {
        tracing::info!("login refused: too many failures");
        let message = format!("Too many failed sign-ins. Try again in {} seconds.", retry.seconds());
        let mut page = login_page(&state, jar, StatusCode::TOO_MANY_REQUESTS, &return_to, &username, Some(&message));
        page.headers_mut().insert(RETRY_AFTER, retry.seconds().into());
        page
    };
    if let Err(retry) = state.limits.login_allowed(ip, account.as_deref()) {
        return Ok(throttled(retry));
    }
    let user = match &account {
        Some(name) => state.store.find_user_by_username(name).await?,
        None => None,
    };
    let mut blocked = None;
    let checked = state
        .passwords
        .verify_limited(
            &password,
            user.as_ref().map(|u| u.password_hash.as_str()),
            || state.limits.login_allowed(ip, account.as_deref()).is_ok(),
            || blocked = state.limits.login_failed(ip, account.as_deref()),
        )
        .await;
    let Some(password_ok) = checked else {
        let retry =
            state.limits.login_allowed(ip, account.as_deref()).err().unwrap_or(RetryAfter(Duration::from_secs(1)));
        return Ok(throttled(retry));
    };
    match user {
        Some(user) if password_ok && !user.disabled => {
            start_session(&state, jar, &user).await?;
            tracing::info!(user_id = %user.id, "login succeeded");
            let entry = AuditEntry { user_id: Some(&user.id), ip, ..AuditEntry::default() };
            state.store.audit(AuditKind::LoginSucceeded, entry).await;
            Ok(see_other(&return_to))
        }
        user => {
            tracing::info!("login failed");
            if password_ok {
                // The right password of a disabled account: not a guess, but not a success either.
                blocked = state.limits.login_failed(ip, account.as_deref());
            }
            // The attempted name is not recorded for an unknown account: people type passwords there.
            let detail = match &user {
                None => "unknown account",
                Some(u) if u.disabled => "disabled account",
                Some(_) => "wrong password",
            };
            let user_id = user.as_ref().map(|u| u.id.as_str());
            let entry = AuditEntry { user_id, ip, detail: Some(detail), ..AuditEntry::default() };
            state.store.audit(AuditKind::LoginFailed, entry).await;
            // One event when a block starts, not one per refused request (a flood must not become writes).
            if let Some(retry) = blocked {
                let detail = format!("too many failed sign-ins; blocked for {} s", retry.seconds());
                let entry = AuditEntry { user_id, ip, detail: Some(&detail), ..AuditEntry::default() };
                state.store.audit(AuditKind::LoginThrottled, entry).await;
            }
            Ok(login_page(
                &state,
                jar,
                StatusCode::UNAUTHORIZED,
                &return_to,
                &username,
                Some("The username or password is not right."),
            ))
        }
    }
}

fn signup_page(
    state: &State,
    jar: &CookieJar,
    status: StatusCode,
    return_to: &str,
    username: &str,
    error: Option<&str>,
) -> Response {
    let csrf = anonymous_csrf_token(&state.config, jar);
    let page = SignupPage { base: state.config.issuer_path(), csrf_token: &csrf, return_to, username, error };
    html_response(status, render(&page))
}

#[handler]
pub async fn signup_form(
    state: Data<&State>,
    jar: &CookieJar,
    Query(q): Query<ReturnTo>,
) -> Result<Response, PageError> {
    if !state.config.signup {
        return Err(PageError::not_found());
    }
    Ok(signup_page(&state, jar, StatusCode::OK, &safe_return_to(q.return_to.as_deref()), "", None))
}

#[derive(Debug, Deserialize)]
pub struct SignupForm {
    username: Option<String>,
    password: Option<String>,
    password_confirm: Option<String>,
    csrf_token: Option<String>,
    return_to: Option<String>,
}

/// Usernames are 3–64 characters of `[A-Za-z0-9._-]`, compared in lower case.
pub fn validate_username(username: &str) -> Result<String, &'static str> {
    let ok = (3..=64).contains(&username.len())
        && username.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(username.to_ascii_lowercase())
    } else {
        Err("The username must be 3–64 letters, digits, dots, dashes or underscores.")
    }
}

/// Passwords are 8–1024 characters (the upper bound keeps hashing cost bounded).
pub fn validate_password(password: &str) -> Result<(), &'static str> {
    if (8..=1024).contains(&password.chars().count()) {
        Ok(())
    } else {
        Err("The password must be at least 8 characters long.")
    }
}

#[handler]
pub async fn signup(
    state: Data<&State>,
    req: &Request,
    jar: &CookieJar,
    Form(form): Form<SignupForm>,
) -> Result<Response, PageError> {
    if !state.config.signup {
        return Err(PageError::not_found());
    }
    check_anonymous_csrf(&state.config, jar, form.csrf_token.as_deref())?;
    let return_to = safe_return_to(form.return_to.as_deref());
    let raw_username = form.username.unwrap_or_default();
    let password = form.password.unwrap_or_default();
    let page = |status: StatusCode, message: &str| {
        signup_page(&state, jar, status, &return_to, raw_username.trim(), Some(message))
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
    let ip = client_ip(req, &state.config.trusted_proxies);
    let throttled = |retry: RetryAfter| {
        tracing::info!("sign-up refused: too many attempts from this address");
        let message =
            format!("Too many sign-ups from your address. Try again in {} minutes.", retry.seconds().div_ceil(60));
        let mut response = page(StatusCode::TOO_MANY_REQUESTS, &message);
        response.headers_mut().insert(RETRY_AFTER, retry.seconds().into());
        response
    };
    if let Err(retry) = state.limits.signup_attempt(ip) {
        return Ok(throttled(retry));
    }
    // The name is checked before the password is hashed: a taken name costs no argon2id.
    if state.store.find_user_by_username(&username).await?.is_some() {
        return Ok(fail("That username is taken."));
    }
    let Some(hash) = state.passwords.hash_limited(&password, || state.limits.signup_allowed(ip).is_ok()).await else {
        let retry = state.limits.signup_allowed(ip).err().unwrap_or(RetryAfter(Duration::from_secs(1)));
        return Ok(throttled(retry));
    };
    let Some(user) = state.store.create_user(&username, hash, false).await? else {
        return Ok(fail("That username is taken."));
    };
    tracing::info!(user_id = %user.id, "user signed up");
    start_session(&state, jar, &user).await?;
    Ok(see_other(&return_to))
}

#[derive(Debug, Deserialize)]
pub struct LogoutForm {
    csrf_token: Option<String>,
}

#[handler]
pub async fn logout(state: Data<&State>, jar: &CookieJar, Form(form): Form<LogoutForm>) -> Result<Response, PageError> {
    if let Some(me) = signed_in(&state, jar).await? {
        me.check_csrf(form.csrf_token.as_deref())?;
        session::end_session(&state, jar).await?;
        tracing::info!(user_id = %me.user.id, "logged out");
    }
    Ok(see_other(&format!("{}/", state.config.issuer_path())))
}
