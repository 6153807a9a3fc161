//! "My apps": a signed-in person registers OAuth clients, edits them, rotates a secret, deletes them.
use poem::http::StatusCode;
use poem::web::cookie::CookieJar;
use poem::web::{Data, Form, Path, Query};
use poem::{Response, handler};
use serde::Deserialize;

use super::session::{SignedIn, signed_in};
use super::templates::{AppPage, AppRow, AppSecretPage, AppsPage, render};
use super::{Done, account, date, html_response, see_other};
use crate::crypto::random_token;
use crate::error::{ErrorCode, OAuthError, PageError};
use crate::oauth::client_auth::{self, is_confidential};
use crate::oauth::register::{self, ClientMetadata, Registrant, RegistrationSource, register_client};
use crate::state::{AppState, State};
use crate::store::{AuditEntry, AuditKind, client};

/// Apps one account may register on this page (they never expire on their own).
const MAX_APPS_PER_USER: u64 = 50;

#[derive(Debug, Deserialize)]
pub struct AppForm {
    csrf_token: Option<String>,
    name: Option<String>,
    redirect_uris: Option<String>,
    kind: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct CsrfForm {
    csrf_token: Option<String>,
}

fn kind(client: &client::Model) -> &'static str {
    if is_confidential(client) { "confidential" } else { "public" }
}

fn redirect_uris_of(client: &client::Model) -> Vec<String> {
    serde_json::from_str(&client.redirect_uris).unwrap_or_default()
}

/// One URI per line, blank lines ignored.
fn lines(text: &str) -> Vec<String> {
    text.lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_owned).collect()
}

/// What a person can fix in the form, or `None` for a server failure.
fn form_problem(e: &OAuthError) -> Option<String> {
    matches!(e.code, ErrorCode::InvalidRedirectUri | ErrorCode::InvalidClientMetadata | ErrorCode::InvalidRequest)
        .then(|| e.description.to_string())
}

async fn apps_page(
    state: &AppState,
    me: &SignedIn,
    status: StatusCode,
    error: Option<&str>,
    form: (&str, &str, bool),
) -> Result<Response, PageError> {
    let apps = state
        .store
        .list_clients_of(&me.user.id)
        .await?
        .iter()
        .map(|c| AppRow {
            client_id: c.client_id.clone(),
            name: c.name.clone(),
            kind: kind(c),
            redirect_uris: redirect_uris_of(c),
            created: date(c.created_at),
            disabled: c.disabled,
        })
        .collect();
    let page = AppsPage {
        base: state.config.issuer_path(),
        nav: account::nav(state, me, "apps"),
        apps,
        error,
        form_name: form.0,
        form_redirect_uris: form.1,
        form_confidential: form.2,
    };
    Ok(html_response(status, render(&page)))
}

#[handler]
pub async fn list(state: Data<&State>, jar: &CookieJar) -> Result<Response, PageError> {
    let Some(me) = signed_in(&state, jar).await? else {
        return Ok(account::to_login(&state, "/apps"));
    };
    apps_page(&state, &me, StatusCode::OK, None, ("", "", false)).await
}

#[handler]
pub async fn create(state: Data<&State>, jar: &CookieJar, Form(form): Form<AppForm>) -> Result<Response, PageError> {
    let Some(me) = signed_in(&state, jar).await? else {
        return Ok(account::to_login(&state, "/apps"));
    };
    me.check_csrf(form.csrf_token.as_deref())?;
    let name = form.name.unwrap_or_default();
    let uris = form.redirect_uris.unwrap_or_default();
    let confidential = form.kind.as_deref() == Some("confidential");
    let metadata = ClientMetadata {
        client_name: Some(name.trim().to_owned()).filter(|n| !n.is_empty()),
        redirect_uris: Some(lines(&uris)),
        token_endpoint_auth_method: Some(
            if confidential { client_auth::CLIENT_SECRET_BASIC } else { client_auth::NONE }.into(),
        ),
        grant_types: Some(vec!["authorization_code".into(), "refresh_token".into()]),
        ..Default::default()
    };
    if metadata.client_name.is_none() {
        let error = Some("Give the app a name.");
        return apps_page(&state, &me, StatusCode::BAD_REQUEST, error, (&name, &uris, confidential)).await;
    }
    if state.store.count_clients_of(&me.user.id).await? >= MAX_APPS_PER_USER {
        let error = format!("You have {MAX_APPS_PER_USER} apps, the most one account may register. Delete one first.");
        return apps_page(&state, &me, StatusCode::BAD_REQUEST, Some(&error), (&name, &uris, confidential)).await;
    }
    let registrant =
        Registrant { source: RegistrationSource::Owner, owner_user_id: Some(me.user.id.clone()), ip: None };
    match register_client(&state, metadata, registrant).await {
        Ok(info) => match info.client_secret {
            Some(secret) => Ok(secret_page(&state, &me, "App registered", &name, &info.client_id, &secret)),
            None => Ok(see_other(&format!("{}/apps/{}", state.config.issuer_path(), info.client_id))),
        },
        Err(e) => match form_problem(&e) {
            Some(problem) => {
                apps_page(&state, &me, StatusCode::BAD_REQUEST, Some(&problem), (&name, &uris, confidential)).await
            }
            None => Err(PageError::internal(e.description)),
        },
    }
}

fn secret_page(state: &AppState, me: &SignedIn, heading: &str, name: &str, client_id: &str, secret: &str) -> Response {
    let page = AppSecretPage {
        base: state.config.issuer_path(),
        nav: account::nav(state, me, "apps"),
        heading,
        name: name.trim(),
        client_id,
        secret,
    };
    html_response(StatusCode::OK, render(&page))
}

/// The person's own client, or a 404 page (also for someone else's client: nothing is revealed).
async fn own_client(state: &AppState, me: &SignedIn, client_id: &str) -> Result<client::Model, PageError> {
    state
        .store
        .find_any_client(client_id)
        .await?
        .filter(|c| c.owner_user_id.as_deref() == Some(me.user.id.as_str()))
        .ok_or_else(PageError::not_found)
}

/// A form POST about one of my apps: signed in (else `None`, for the login page), the form's CSRF token,
/// and the app is mine.
async fn owner_post(
    state: &AppState,
    jar: &CookieJar,
    client_id: &str,
    csrf_token: Option<&str>,
) -> Result<Option<(SignedIn, client::Model)>, PageError> {
    let Some(me) = signed_in(state, jar).await? else {
        return Ok(None);
    };
    me.check_csrf(csrf_token)?;
    let client = own_client(state, &me, client_id).await?;
    Ok(Some((me, client)))
}

fn app_page(
    state: &AppState,
    me: &SignedIn,
    client: &client::Model,
    status: StatusCode,
    messages: (Option<&str>, Option<&str>),
    form: (&str, &str),
) -> Response {
    let page = AppPage {
        base: state.config.issuer_path(),
        nav: account::nav(state, me, "apps"),
        client_id: &client.client_id,
        name: &client.name,
        kind: kind(client),
        auth_method: &client.token_endpoint_auth_method,
        created: date(client.created_at),
        confidential: is_confidential(client),
        error: messages.0,
        notice: messages.1,
        form_name: form.0,
        form_redirect_uris: form.1,
    };
    html_response(status, render(&page))
}

#[handler]
pub async fn show(
    state: Data<&State>,
    jar: &CookieJar,
    Path(client_id): Path<String>,
    Query(done): Query<Done>,
) -> Result<Response, PageError> {
    let here = format!("/apps/{client_id}");
    let Some(me) = signed_in(&state, jar).await? else {
        return Ok(account::to_login(&state, &here));
    };
    let client = own_client(&state, &me, &client_id).await?;
    let notice = done.notice(&[("saved", "Your changes are saved.")]);
    let uris = redirect_uris_of(&client).join("\n");
    Ok(app_page(&state, &me, &client, StatusCode::OK, (None, notice), (&client.name, &uris)))
}

#[handler]
pub async fn update(
    state: Data<&State>,
    jar: &CookieJar,
    Path(client_id): Path<String>,
    Form(form): Form<AppForm>,
) -> Result<Response, PageError> {
    let Some((me, client)) = owner_post(&state, jar, &client_id, form.csrf_token.as_deref()).await? else {
        return Ok(account::to_login(&state, "/apps"));
    };
    let name = form.name.unwrap_or_default();
    let uris = form.redirect_uris.unwrap_or_default();
    let mut metadata: ClientMetadata = serde_json::from_str(&client.metadata).unwrap_or_default();
    metadata.client_name = Some(name.trim().to_owned()).filter(|n| !n.is_empty());
    metadata.redirect_uris = Some(lines(&uris));
    if metadata.client_name.is_none() {
        let messages = (Some("Give the app a name."), None);
        return Ok(app_page(&state, &me, &client, StatusCode::BAD_REQUEST, messages, (&name, &uris)));
    }
    match register::replace_metadata(&state, &client, metadata, false).await {
        Ok(_) => {
            tracing::info!(client_id = %client.client_id, user_id = %me.user.id, "client edited by its owner");
            Ok(see_other(&format!("{}/apps/{}?done=saved", state.config.issuer_path(), client.client_id)))
        }
        Err(e) => match form_problem(&e) {
            Some(problem) => {
                let messages = (Some(problem.as_str()), None);
                Ok(app_page(&state, &me, &client, StatusCode::BAD_REQUEST, messages, (&name, &uris)))
            }
            None => Err(PageError::internal(e.description)),
        },
    }
}

#[handler]
pub async fn rotate_secret(
    state: Data<&State>,
    jar: &CookieJar,
    Path(client_id): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Result<Response, PageError> {
    let Some((me, client)) = owner_post(&state, jar, &client_id, form.csrf_token.as_deref()).await? else {
        return Ok(account::to_login(&state, "/apps"));
    };
    if !is_confidential(&client) {
        return Err(PageError::bad_request("No secret to rotate", "A public client has no client secret."));
    }
    let secret = random_token();
    state.store.set_client_secret_hash(&client.client_id, crate::crypto::sha256_hex(&secret)).await?;
    tracing::info!(client_id = %client.client_id, user_id = %me.user.id, "client secret rotated by its owner");
    Ok(secret_page(&state, &me, "New client secret", &client.name, &client.client_id, &secret))
}

#[handler]
pub async fn delete(
    state: Data<&State>,
    jar: &CookieJar,
    Path(client_id): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Result<Response, PageError> {
    let Some((me, client)) = owner_post(&state, jar, &client_id, form.csrf_token.as_deref()).await? else {
        return Ok(account::to_login(&state, "/apps"));
    };
    state.store.delete_client(&client.client_id).await?;
    tracing::info!(client_id = %client.client_id, user_id = %me.user.id, "client deleted by its owner");
    let entry = AuditEntry {
        user_id: Some(&me.user.id),
        client_id: Some(&client.client_id),
        detail: Some("by its owner"),
        ip: None,
    };
    state.store.audit(AuditKind::ClientDeleted, entry).await;
    Ok(see_other(&format!("{}/apps", state.config.issuer_path())))
}
