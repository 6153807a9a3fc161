//! The admin view: every client and user, with buttons to disable and enable them. Only for users with
//! the admin flag (`mcp-gateway user add --admin`); anyone else gets a 404.
use poem::http::StatusCode;
use poem::web::cookie::CookieJar;
use poem::web::{Data, Form, Query};
use poem::{Response, handler};
use serde::Deserialize;

use super::session::{SignedIn, signed_in};
use super::templates::{AdminClientRow, AdminPage, AdminUserRow, render};
use super::{Done, account, date, html_response, see_other};
use crate::error::PageError;
use crate::oauth::client_auth::is_confidential;
use crate::state::{AppState, State};
use crate::store::{AuditEntry, AuditKind};

async fn require_admin(state: &AppState, jar: &CookieJar) -> Result<Option<SignedIn>, PageError> {
    match signed_in(state, jar).await? {
        Some(me) if me.user.is_admin => Ok(Some(me)),
        Some(_) => Err(PageError::not_found()),
        None => Ok(None),
    }
}

#[handler]
pub async fn page(state: Data<&State>, jar: &CookieJar, Query(done): Query<Done>) -> Result<Response, PageError> {
    let Some(me) = require_admin(&state, jar).await? else {
        return Ok(account::to_login(&state, "/admin"));
    };
    let users = state.store.list_users().await?;
    let username_of = |id: &str| users.iter().find(|u| u.id == id).map(|u| u.username.clone());
    let clients = state
        .store
        .list_clients()
        .await?
        .into_iter()
        .map(|c| AdminClientRow {
            kind: if is_confidential(&c) { "confidential" } else { "public" },
            owner: c.owner_user_id.as_deref().and_then(username_of),
            created: date(c.created_at),
            client_id: c.client_id,
            name: if c.name.is_empty() { "(unnamed)".into() } else { c.name },
            source: match c.registration_source.as_str() {
                "dynamic" => "self-registered".into(),
                "owner" => "from My apps".into(),
                "metadata_document" => "metadata document".into(),
                other => other.to_owned(),
            },
            disabled: c.disabled,
        })
        .collect();
    let users = users
        .iter()
        .map(|u| AdminUserRow {
            username: u.username.clone(),
            admin: u.is_admin,
            disabled: u.disabled,
            created: date(u.created_at),
            is_me: u.id == me.user.id,
        })
        .collect();
    let page = AdminPage {
        base: state.config.issuer_path(),
        nav: account::nav(&state, &me, "admin"),
        notice: done.notice(&[("client", "The client is updated."), ("user", "The user is updated.")]),
        clients,
        users,
    };
    Ok(html_response(StatusCode::OK, render(&page)))
}

#[derive(Debug, Deserialize)]
pub struct SwitchForm {
    csrf_token: Option<String>,
    client_id: Option<String>,
    username: Option<String>,
    action: Option<String>,
}

/// An admin's Disable/Enable POST: signed in as an admin (else `None`), the CSRF token, and the action.
async fn admin_post(
    state: &AppState,
    jar: &CookieJar,
    form: &SwitchForm,
) -> Result<Option<(SignedIn, bool)>, PageError> {
    let Some(me) = require_admin(state, jar).await? else {
        return Ok(None);
    };
    me.check_csrf(form.csrf_token.as_deref())?;
    let disable = form.disable()?;
    Ok(Some((me, disable)))
}

impl SwitchForm {
    fn disable(&self) -> Result<bool, PageError> {
        match self.action.as_deref() {
            Some("disable") => Ok(true),
            Some("enable") => Ok(false),
            _ => Err(PageError::bad_request("Unknown action", "Choose Disable or Enable.")),
        }
    }
}

/// Disables or enables a client; a disabled client's tokens stop working at once.
#[handler]
pub async fn switch_client(
    state: Data<&State>,
    jar: &CookieJar,
    Form(form): Form<SwitchForm>,
) -> Result<Response, PageError> {
    let Some((me, disable)) = admin_post(&state, jar, &form).await? else {
        return Ok(account::to_login(&state, "/admin"));
    };
    let client_id = form.client_id.unwrap_or_default();
    if !state.store.set_client_disabled(&client_id, disable).await? {
        return Err(PageError::not_found());
    }
    tracing::info!(%client_id, disable, admin = %me.user.id, "client switched by an admin");
    let kind = if disable { AuditKind::ClientDisabled } else { AuditKind::ClientEnabled };
    let entry =
        AuditEntry { user_id: Some(&me.user.id), client_id: Some(&client_id), detail: Some("by an admin"), ip: None };
    state.store.audit(kind, entry).await;
    Ok(see_other(&format!("{}/admin?done=client", state.config.issuer_path())))
}

/// Disables or enables a user; a disabled user cannot sign in and their tokens stop working at once.
#[handler]
pub async fn switch_user(
    state: Data<&State>,
    jar: &CookieJar,
    Form(form): Form<SwitchForm>,
) -> Result<Response, PageError> {
    let Some((me, disable)) = admin_post(&state, jar, &form).await? else {
        return Ok(account::to_login(&state, "/admin"));
    };
    let username = form.username.unwrap_or_default();
    if username == me.user.username {
        return Err(PageError::bad_request("Not yourself", "An admin cannot disable their own account here."));
    }
    if !state.store.set_user_disabled(&username, disable).await? {
        return Err(PageError::not_found());
    }
    tracing::info!(%username, disable, admin = %me.user.id, "user switched by an admin");
    let kind = if disable { AuditKind::UserDisabled } else { AuditKind::UserEnabled };
    let detail = format!("account {username}, by an admin");
    state
        .store
        .audit(kind, AuditEntry { user_id: Some(&me.user.id), detail: Some(&detail), ..AuditEntry::default() })
        .await;
    Ok(see_other(&format!("{}/admin?done=user", state.config.issuer_path())))
}
