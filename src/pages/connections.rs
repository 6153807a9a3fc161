//! "Connections": the clients a person has allowed, and a Revoke button that ends their access.
use poem::http::StatusCode;
use poem::web::cookie::CookieJar;
use poem::web::{Data, Form, Query};
use poem::{Response, handler};
use serde::Deserialize;

use super::session::signed_in;
use super::templates::{ConnectionRow, ConnectionsPage, render};
use super::{Done, account, date, html_response, see_other};
use crate::error::PageError;
use crate::metrics::metrics;
use crate::oauth::register::RegistrationSource;
use crate::state::State;
use crate::store::{AuditEntry, AuditKind};

#[handler]
pub async fn list(state: Data<&State>, jar: &CookieJar, Query(done): Query<Done>) -> Result<Response, PageError> {
    let Some(me) = signed_in(&state, jar).await? else {
        return Ok(account::to_login(&state, "/connections"));
    };
    let connections = state
        .store
        .connections_of(&me.user.id)
        .await?
        .into_iter()
        .map(|(consent, client)| ConnectionRow {
            name: client
                .as_ref()
                .map(|c| c.name.clone())
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| "An unnamed application".into()),
            unverified: client.as_ref().is_none_or(|c| c.registration_source != RegistrationSource::Operator.as_str()),
            client_id: consent.client_id,
            scopes: consent.scope.split_whitespace().map(str::to_owned).collect(),
            resource: consent.resource,
            granted: date(consent.granted_at),
        })
        .collect();
    let page = ConnectionsPage {
        base: state.config.issuer_path(),
        nav: account::nav(&state, &me, "connections"),
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
pub async fn revoke(state: Data<&State>, jar: &CookieJar, Form(form): Form<RevokeForm>) -> Result<Response, PageError> {
    let Some(me) = signed_in(&state, jar).await? else {
        return Ok(account::to_login(&state, "/connections"));
    };
    me.check_csrf(form.csrf_token.as_deref())?;
    let client_id = form.client_id.unwrap_or_default();
    if state.store.revoke_connection(&me.user.id, &client_id).await? {
        metrics().grant_revoked("user");
        tracing::info!(%client_id, user_id = %me.user.id, "connection revoked by the user");
        let entry = AuditEntry { user_id: Some(&me.user.id), client_id: Some(&client_id), ..AuditEntry::default() };
        state.store.audit(AuditKind::ConsentRevoked, entry).await;
    }
    Ok(see_other(&format!("{}/connections?done=revoked", state.config.issuer_path())))
}
