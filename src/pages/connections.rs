//! "Connections": the clients a person has allowed (Revoke ends their access), and the person's own accounts
//! at upstreams that act on them (Connect sends them through the upstream's sign-in and back to
//! [`callback`]; Disconnect revokes there and forgets here).
use std::sync::Arc;

use poem::http::StatusCode;
use poem::web::{Data, Form, Path, Query};
use poem::{Response, handler};
use serde::Deserialize;

use super::error::PageError;
use super::templates::{ConnectPage, ConnectionRow, ConnectionsPage, UpstreamAccountRow, render};
use super::{Done, Pages, account, html_response, see_other};
use crate::domain::client::Client;
use crate::domain::scope::Scope;
use crate::domain::sessions::Visitor;
use crate::domain::upstream_accounts::AccountError;
use crate::store::{AuditEntry, AuditKind};

#[handler]
pub async fn list(
    pages: Data<&Arc<Pages>>,
    Visitor(me): Visitor,
    Query(done): Query<Done>,
) -> Result<Response, PageError> {
    let Some(me) = me else {
        return Ok(account::to_login(&pages, "/connections"));
    };
    let connections = pages
        .store
        .connections_of(&me.user.id)
        .await?
        .into_iter()
        .map(|(consent, client)| {
            let client = client.and_then(Client::from_row);
            ConnectionRow {
                name: client.as_ref().map_or("An unnamed application", |c| c.display_name()).to_owned(),
                unverified: client.as_ref().is_none_or(|c| c.source.is_self_registered()),
                client_id: consent.client_id,
                scopes: Scope::parse(&consent.scope).unwrap_or_default().names(),
                resource: consent.resource,
                granted: consent.granted_at.readable(),
            }
        })
        .collect();
    let mine = pages.upstream_accounts.accounts_of(&me.user.id).await.map_err(PageError::internal)?;
    // The upstreams as the database holds them now, not as of this instance's last re-read.
    pages.upstreams.reload().await?;
    let accounts = pages
        .upstreams
        .current()
        .iter()
        .filter(|u| u.enabled && u.is_personal())
        .map(|u| {
            let account = mine.iter().find(|a| a.upstream == u.name);
            UpstreamAccountRow {
                name: u.name.clone(),
                values: u.env_per_user.clone(),
                target: u.transport.target(),
                connected: account.map(|a| a.connected_at.readable()),
                scopes: account.map(|a| a.scopes.clone()).unwrap_or_default(),
                problem: account.and_then(|a| a.problem.clone()),
            }
        })
        .collect();
    let page = ConnectionsPage {
        base: &pages.base,
        nav: account::nav(&pages, &me, "connections"),
        notice: done.notice(&[
            ("revoked", "Access revoked. The application's tokens no longer work."),
            ("connected", "Connected. Calls to its tools now act as your account there."),
            ("disconnected", "Disconnected. The gateway no longer holds your tokens or values there."),
            ("saved", "Saved. Your own process of it starts with these values at your next call."),
        ]),
        connections,
        accounts,
    };
    Ok(html_response(StatusCode::OK, render(&page)))
}

#[derive(Debug, Deserialize)]
pub struct RevokeForm {
    csrf_token: Option<String>,
    client_id: Option<String>,
}

#[handler]
pub async fn revoke(
    pages: Data<&Arc<Pages>>,
    Visitor(me): Visitor,
    Form(form): Form<RevokeForm>,
) -> Result<Response, PageError> {
    let Some(me) = me else {
        return Ok(account::to_login(&pages, "/connections"));
    };
    me.check_csrf(form.csrf_token.as_deref())?;
    let client_id = form.client_id.unwrap_or_default();
    if pages.store.revoke_connection(&me.user.id, &client_id).await? {
        pages.metrics.grant_revoked("user");
        tracing::info!(%client_id, user_id = %me.user.id, "connection revoked by the user");
        let entry = AuditEntry { user_id: Some(&me.user.id), client_id: Some(&client_id), ..AuditEntry::default() };
        pages.store.audit(AuditKind::ConsentRevoked, entry).await;
    }
    Ok(see_other(&format!("{}/connections?done=revoked", pages.base)))
}

#[derive(Debug, Deserialize)]
pub struct ConnectQuery {
    upstream: Option<String>,
    /// Whom the link was made for (a keyed tag of their account), when it came from a tool call.
    #[serde(rename = "for")]
    for_: Option<String>,
}

/// The page a connect link opens: it names the upstream and where the browser goes, and connects only
/// for the person the link was made for (a link made for someone else is refused: the MCP specification's
/// rule against phishing with URL elicitations).
#[handler]
pub async fn connect_page(
    pages: Data<&Arc<Pages>>,
    Visitor(me): Visitor,
    Query(query): Query<ConnectQuery>,
) -> Result<Response, PageError> {
    let name = query.upstream.unwrap_or_default();
    let Some(me) = me else {
        let mut here = format!("/connections/connect?upstream={}", encode(&name));
        if let Some(tag) = &query.for_ {
            here.push_str(&format!("&for={}", encode(tag)));
        }
        return Ok(account::to_login(&pages, &here));
    };
    if let Some(tag) = &query.for_
        && !pages.upstream_accounts.link_is_for(&me.user.id, tag)
    {
        return Err(PageError::forbidden(
            "This link is for another account",
            format!(
                "The link was made for the person whose application asked, and you are signed in as {}. \
                 Sign out and sign in as that person, or connect from your own Connections page.",
                me.user.username
            ),
        ));
    }
    let upstream = personal_upstream(&pages, &name).await?;
    let page = ConnectPage {
        base: &pages.base,
        nav: account::nav(&pages, &me, "connections"),
        name: upstream.name.clone(),
        target: upstream.transport.target(),
        values: upstream.env_per_user.clone(),
    };
    Ok(html_response(StatusCode::OK, render(&page)))
}

#[derive(Debug, Deserialize)]
pub struct UpstreamForm {
    csrf_token: Option<String>,
    upstream: Option<String>,
}

/// Starts the sign-in at the upstream (a form POST, so no other site can start one for the person).
#[handler]
pub async fn connect(
    pages: Data<&Arc<Pages>>,
    Visitor(me): Visitor,
    Form(form): Form<UpstreamForm>,
) -> Result<Response, PageError> {
    let Some(me) = me else {
        return Ok(account::to_login(&pages, "/connections"));
    };
    me.check_csrf(form.csrf_token.as_deref())?;
    let upstream = personal_upstream(&pages, form.upstream.as_deref().unwrap_or_default()).await?;
    match pages.upstream_accounts.start(&me.user.id, &upstream, None).await {
        Ok(url) => {
            tracing::info!(upstream = %upstream.name, user_id = %me.user.id, "connecting an upstream account");
            Ok(see_other(&url))
        }
        Err(e) => Err(account_failure(&upstream.name, e)),
    }
}

#[derive(Debug, Deserialize)]
pub struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    iss: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// Where an upstream sends the browser back (one address per upstream): the `state` must be one this
/// signed-in person started for this upstream, and rmcp checks `iss` and PKCE while redeeming the code.
#[handler]
pub async fn callback(
    pages: Data<&Arc<Pages>>,
    Visitor(me): Visitor,
    Path(upstream): Path<String>,
    Query(query): Query<CallbackQuery>,
) -> Result<Response, PageError> {
    let Some(me) = me else {
        return Err(PageError::forbidden(
            "Not signed in",
            "The upstream sent you back, but you are not signed in here any more. Sign in and connect again.",
        ));
    };
    let Some(state) = query.state.filter(|s| !s.is_empty() && s.len() <= 512) else {
        return Err(PageError::bad_request("No state", "The upstream sent you back without the state it was given."));
    };
    if let Some(error) = query.error {
        // Only a sign-in of this person's ends here, and only its own upstream's words are shown.
        let hash = crate::crypto::sha256_hex(&state);
        if pages.store.take_upstream_flow(&hash, &me.user.id).await?.is_none() {
            return Err(PageError::bad_request("Not connected", "This sign-in is unknown, used or expired."));
        }
        let said: String =
            query.error_description.unwrap_or(error).chars().filter(|c| !c.is_control()).take(200).collect();
        return Err(PageError::bad_request(
            "Not connected",
            format!("Upstream {upstream} did not connect your account: {said}"),
        ));
    }
    let Some(code) = query.code.filter(|c| !c.is_empty() && c.len() <= 4096) else {
        return Err(PageError::bad_request("No code", "The upstream sent you back without an authorization code."));
    };
    let upstreams = pages.upstreams.current();
    let finished =
        pages.upstream_accounts.finish(&me.user.id, &upstreams, &upstream, &state, &code, query.iss.as_deref()).await;
    match finished {
        Ok((name, _)) => {
            tracing::info!(upstream = %name, user_id = %me.user.id, "upstream account connected");
            let entry = AuditEntry {
                user_id: Some(&me.user.id),
                detail: Some(&format!("upstream={name}")),
                ..AuditEntry::default()
            };
            pages.store.audit(AuditKind::UpstreamConnected, entry).await;
            Ok(see_other(&format!("{}/connections?done=connected", pages.base)))
        }
        Err(e) => Err(account_failure(&upstream, e)),
    }
}

/// Ends the person's connection to an upstream: revoked there where it offers revocation, forgotten here.
#[handler]
pub async fn disconnect(
    pages: Data<&Arc<Pages>>,
    Visitor(me): Visitor,
    Form(form): Form<UpstreamForm>,
) -> Result<Response, PageError> {
    let Some(me) = me else {
        return Ok(account::to_login(&pages, "/connections"));
    };
    me.check_csrf(form.csrf_token.as_deref())?;
    let name = form.upstream.unwrap_or_default();
    if pages.upstream_accounts.disconnect(&me.user.id, &name).await.map_err(PageError::internal)? {
        tracing::info!(upstream = %name, user_id = %me.user.id, "upstream account disconnected");
        let entry = AuditEntry {
            user_id: Some(&me.user.id),
            detail: Some(&format!("upstream={name}")),
            ..AuditEntry::default()
        };
        pages.store.audit(AuditKind::UpstreamDisconnected, entry).await;
    }
    Ok(see_other(&format!("{}/connections?done=disconnected", pages.base)))
}

/// Keeps the values a person gives a program's per-person variables (`--env-per-user`).
#[handler]
pub async fn save_values(
    pages: Data<&Arc<Pages>>,
    Visitor(me): Visitor,
    Form(form): Form<Vec<(String, String)>>,
) -> Result<Response, PageError> {
    let Some(me) = me else {
        return Ok(account::to_login(&pages, "/connections"));
    };
    let field = |name: &str| form.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    me.check_csrf(field("csrf_token"))?;
    let upstream = personal_upstream(&pages, field("upstream").unwrap_or_default()).await?;
    let values =
        form.iter().filter_map(|(k, v)| k.strip_prefix("value:").map(|key| (key.to_owned(), v.clone()))).collect();
    match pages.upstream_accounts.save_env(&me.user.id, &upstream, values).await {
        Ok(()) => {
            tracing::info!(upstream = %upstream.name, user_id = %me.user.id, "per-person values saved");
            let entry = AuditEntry {
                user_id: Some(&me.user.id),
                detail: Some(&format!("upstream={}", upstream.name)),
                ..AuditEntry::default()
            };
            pages.store.audit(AuditKind::UpstreamConnected, entry).await;
            Ok(see_other(&format!("{}/connections?done=saved", pages.base)))
        }
        Err(e) => Err(account_failure(&upstream.name, e)),
    }
}

/// The enabled upstream of this name that asks people for their own account or values; one added a moment ago
/// (on this instance's next re-read) is looked up in the database.
async fn personal_upstream(pages: &Pages, name: &str) -> Result<crate::domain::upstream::Upstream, PageError> {
    let find = || pages.upstreams.current().iter().find(|u| u.name == name && u.enabled && u.is_personal()).cloned();
    if let Some(found) = find() {
        return Ok(found);
    }
    pages.upstreams.reload().await?;
    find().ok_or_else(|| {
        PageError::bad_request(
            "No such upstream",
            "There is no enabled upstream by that name that asks people for their own account or values.",
        )
    })
}

fn account_failure(upstream: &str, error: AccountError) -> PageError {
    match error {
        AccountError::Db(e) => PageError::internal(e),
        AccountError::Refused(why) => PageError::bad_request("Not connected", why),
        other => {
            tracing::warn!(%upstream, error = %other, "connecting an upstream account failed");
            PageError {
                status: StatusCode::BAD_GATEWAY,
                title: "The upstream did not answer as it should".into(),
                message: format!("Connecting failed: {other}").into(),
            }
        }
    }
}

fn encode(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}
