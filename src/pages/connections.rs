//! "Connections": the clients a person has allowed, and a Revoke button that ends their access.
use std::sync::Arc;

use poem::http::StatusCode;
use poem::web::{Data, Form, Query};
use poem::{Response, handler};
use serde::Deserialize;

use super::error::PageError;
use super::templates::{ConnectionRow, ConnectionsPage, render};
use super::{Done, Pages, account, html_response, see_other};
use crate::domain::client::Client;
use crate::domain::scope::Scope;
use crate::domain::sessions::Visitor;
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
    let page = ConnectionsPage {
        base: &pages.base,
        nav: account::nav(&pages, &me, "connections"),
        notice: done.notice(&[("revoked", "Access revoked. The application's tokens no longer work.")]),
        connections,
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
