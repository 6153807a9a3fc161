//! "My apps": a signed-in person registers OAuth clients, edits them, rotates a secret, deletes them.
use std::sync::Arc;

use poem::http::StatusCode;
use poem::web::{Data, Form, Path, Query};
use poem::{Response, handler};
use serde::Deserialize;

use super::error::PageError;
use super::templates::{AppPage, AppRow, AppSecretPage, AppsPage, render};
use super::{Done, Pages, account, html_response, see_other};
use crate::crypto::{random_token, sha256_hex};
use crate::domain::client::{AuthMethod, Client, GrantType, RegistrationSource};
use crate::domain::registration::{ClientMetadata, Registrant, RegistrationError};
use crate::domain::sessions::{SignedIn, Visitor};
use crate::store::{AuditEntry, AuditKind};

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

/// One URI per line, blank lines ignored.
fn lines(text: &str) -> Vec<String> {
    text.lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_owned).collect()
}

/// What a person can fix in the form, or the page for a server failure.
fn form_problem(e: RegistrationError) -> Result<String, PageError> {
    match e {
        RegistrationError::InvalidRedirectUri(problem) | RegistrationError::InvalidMetadata(problem) => Ok(problem),
        RegistrationError::Storage(e) => Err(e.into()),
    }
}

async fn apps_page(
    pages: &Pages,
    me: &SignedIn,
    status: StatusCode,
    error: Option<&str>,
    form: (&str, &str, &str),
) -> Result<Response, PageError> {
    let apps = pages
        .store
        .list_clients_of(&me.user.id)
        .await?
        .into_iter()
        .filter_map(Client::from_row)
        .map(|c| AppRow {
            kind: c.kind(),
            redirect_uris: c.redirect_uri_strings(),
            created: c.created_at.readable(),
            disabled: c.disabled,
            client_id: c.id,
            name: c.name,
        })
        .collect();
    let page = AppsPage {
        base: &pages.base,
        nav: account::nav(pages, me, "apps"),
        apps,
        error,
        form_name: form.0,
        form_redirect_uris: form.1,
        form_kind: form.2,
    };
    Ok(html_response(status, render(&page)))
}

#[handler]
pub async fn list(pages: Data<&Arc<Pages>>, Visitor(me): Visitor) -> Result<Response, PageError> {
    let Some(me) = me else {
        return Ok(account::to_login(&pages, "/apps"));
    };
    apps_page(&pages, &me, StatusCode::OK, None, ("", "", "public")).await
}

#[handler]
pub async fn create(
    pages: Data<&Arc<Pages>>,
    Visitor(me): Visitor,
    Form(form): Form<AppForm>,
) -> Result<Response, PageError> {
    let Some(me) = me else {
        return Ok(account::to_login(&pages, "/apps"));
    };
    me.check_csrf(form.csrf_token.as_deref())?;
    let name = form.name.unwrap_or_default();
    let uris = form.redirect_uris.unwrap_or_default();
    let kind = match form.kind.as_deref() {
        Some("confidential") => "confidential",
        Some("machine") => "machine",
        _ => "public",
    };
    let method = if kind == "public" { AuthMethod::None } else { AuthMethod::ClientSecretBasic };
    let grants: &[GrantType] =
        if kind == "machine" { &[GrantType::ClientCredentials] } else { &GrantType::INTERACTIVE };
    let metadata = ClientMetadata {
        client_name: Some(name.trim().to_owned()).filter(|n| !n.is_empty()),
        redirect_uris: Some(lines(&uris)),
        token_endpoint_auth_method: Some(method.as_str().into()),
        grant_types: Some(grants.iter().map(|g| g.as_str().into()).collect()),
        ..Default::default()
    };
    if metadata.client_name.is_none() {
        let error = Some("Give the app a name.");
        return apps_page(&pages, &me, StatusCode::BAD_REQUEST, error, (&name, &uris, kind)).await;
    }
    if pages.store.count_clients_of(&me.user.id).await? >= MAX_APPS_PER_USER {
        let error = format!("You have {MAX_APPS_PER_USER} apps, the most one account may register. Delete one first.");
        return apps_page(&pages, &me, StatusCode::BAD_REQUEST, Some(&error), (&name, &uris, kind)).await;
    }
    let registrant =
        Registrant { source: RegistrationSource::Owner, owner_user_id: Some(me.user.id.clone()), ip: None };
    match pages.registrar.register(metadata, registrant).await {
        Ok(info) => match info.client_secret {
            Some(secret) => Ok(secret_page(&pages, &me, "App registered", &name, &info.client_id, &secret)),
            None => Ok(see_other(&format!("{}/apps/{}", pages.base, info.client_id))),
        },
        Err(e) => {
            let problem = form_problem(e)?;
            apps_page(&pages, &me, StatusCode::BAD_REQUEST, Some(&problem), (&name, &uris, kind)).await
        }
    }
}

fn secret_page(pages: &Pages, me: &SignedIn, heading: &str, name: &str, client_id: &str, secret: &str) -> Response {
    let page = AppSecretPage {
        base: &pages.base,
        nav: account::nav(pages, me, "apps"),
        heading,
        name: name.trim(),
        client_id,
        secret,
    };
    html_response(StatusCode::OK, render(&page))
}

/// The person's own client, or a 404 page (also for someone else's client: nothing is revealed).
async fn own_client(pages: &Pages, me: &SignedIn, client_id: &str) -> Result<Client, PageError> {
    pages
        .store
        .find_any_client(client_id)
        .await?
        .filter(|c| c.owner_user_id.as_deref() == Some(me.user.id.as_str()))
        .and_then(Client::from_row)
        .ok_or_else(PageError::not_found)
}

/// A form POST about one of my apps: signed in (else `None`, for the login page), the form's CSRF token,
/// and the app is mine.
async fn owner_post(
    pages: &Pages,
    me: Option<SignedIn>,
    client_id: &str,
    csrf_token: Option<&str>,
) -> Result<Option<(SignedIn, Client)>, PageError> {
    let Some(me) = me else {
        return Ok(None);
    };
    me.check_csrf(csrf_token)?;
    let client = own_client(pages, &me, client_id).await?;
    Ok(Some((me, client)))
}

fn app_page(
    pages: &Pages,
    me: &SignedIn,
    client: &Client,
    status: StatusCode,
    messages: (Option<&str>, Option<&str>),
    form: (&str, &str),
) -> Response {
    let page = AppPage {
        base: &pages.base,
        nav: account::nav(pages, me, "apps"),
        client_id: &client.id,
        name: &client.name,
        kind: client.kind(),
        auth_method: client.auth_method.as_str(),
        created: client.created_at.readable(),
        confidential: client.auth_method.has_secret(),
        error: messages.0,
        notice: messages.1,
        form_name: form.0,
        form_redirect_uris: form.1,
    };
    html_response(status, render(&page))
}

#[handler]
pub async fn show(
    pages: Data<&Arc<Pages>>,
    Visitor(me): Visitor,
    Path(client_id): Path<String>,
    Query(done): Query<Done>,
) -> Result<Response, PageError> {
    let here = format!("/apps/{client_id}");
    let Some(me) = me else {
        return Ok(account::to_login(&pages, &here));
    };
    let client = own_client(&pages, &me, &client_id).await?;
    let notice = done.notice(&[("saved", "Your changes are saved.")]);
    let uris = client.redirect_uri_strings().join("\n");
    Ok(app_page(&pages, &me, &client, StatusCode::OK, (None, notice), (&client.name, &uris)))
}

#[handler]
pub async fn update(
    pages: Data<&Arc<Pages>>,
    Visitor(me): Visitor,
    Path(client_id): Path<String>,
    Form(form): Form<AppForm>,
) -> Result<Response, PageError> {
    let Some((me, client)) = owner_post(&pages, me, &client_id, form.csrf_token.as_deref()).await? else {
        return Ok(account::to_login(&pages, "/apps"));
    };
    let name = form.name.unwrap_or_default();
    let uris = form.redirect_uris.unwrap_or_default();
    let mut metadata: ClientMetadata = serde_json::from_str(&client.metadata).unwrap_or_default();
    metadata.client_name = Some(name.trim().to_owned()).filter(|n| !n.is_empty());
    metadata.redirect_uris = Some(lines(&uris));
    if metadata.client_name.is_none() {
        let messages = (Some("Give the app a name."), None);
        return Ok(app_page(&pages, &me, &client, StatusCode::BAD_REQUEST, messages, (&name, &uris)));
    }
    match pages.registrar.replace_metadata(&client, metadata, false).await {
        Ok(_) => {
            tracing::info!(client_id = %client.id, user_id = %me.user.id, "client edited by its owner");
            Ok(see_other(&format!("{}/apps/{}?done=saved", pages.base, client.id)))
        }
        Err(e) => {
            let problem = form_problem(e)?;
            let messages = (Some(problem.as_str()), None);
            Ok(app_page(&pages, &me, &client, StatusCode::BAD_REQUEST, messages, (&name, &uris)))
        }
    }
}

#[handler]
pub async fn rotate_secret(
    pages: Data<&Arc<Pages>>,
    Visitor(me): Visitor,
    Path(client_id): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Result<Response, PageError> {
    let Some((me, client)) = owner_post(&pages, me, &client_id, form.csrf_token.as_deref()).await? else {
        return Ok(account::to_login(&pages, "/apps"));
    };
    if !client.auth_method.has_secret() {
        return Err(PageError::bad_request("No secret to rotate", "This client has no client secret."));
    }
    let secret = random_token();
    pages.store.set_client_secret_hash(&client.id, sha256_hex(&secret)).await?;
    tracing::info!(client_id = %client.id, user_id = %me.user.id, "client secret rotated by its owner");
    Ok(secret_page(&pages, &me, "New client secret", &client.name, &client.id, &secret))
}

#[handler]
pub async fn delete(
    pages: Data<&Arc<Pages>>,
    Visitor(me): Visitor,
    Path(client_id): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Result<Response, PageError> {
    let Some((me, client)) = owner_post(&pages, me, &client_id, form.csrf_token.as_deref()).await? else {
        return Ok(account::to_login(&pages, "/apps"));
    };
    pages.store.delete_client(&client.id).await?;
    tracing::info!(client_id = %client.id, user_id = %me.user.id, "client deleted by its owner");
    let entry =
        AuditEntry { user_id: Some(&me.user.id), client_id: Some(&client.id), detail: Some("by its owner"), ip: None };
    pages.store.audit(AuditKind::ClientDeleted, entry).await;
    Ok(see_other(&format!("{}/apps", pages.base)))
}
