//! The HTML face: the pages people use (home, sign up, log in, log out, my apps, connections, admin), the
//! templates they and the authorization endpoint render (`views`), and this face's errors. Plain
//! server-rendered forms that work without JavaScript.
pub mod account;
pub mod admin;
pub mod apps;
pub mod connections;
pub mod error;
pub mod sign_in;
pub mod templates;
pub mod views;

use std::sync::Arc;

use poem::http::StatusCode;
use poem::web::{Data, Query, Redirect};
use poem::{IntoResponse, Response, handler};
use serde::Deserialize;

use self::error::PageError;
use self::templates::{HomePage, LinkedProvider, render};
use crate::crypto::{Passwords, SecretsKey};
use crate::domain::identity_providers::Providers;
use crate::domain::registration::Registrar;
use crate::domain::sessions::{Sessions, Visitor};
use crate::domain::upstream_accounts::UpstreamAccounts;
use crate::domain::upstreams::Upstreams;
use crate::limits::Limits;
use crate::metrics::Metrics;
use crate::store::Store;

pub const STYLESHEET: &str = include_str!("../../templates/style.css");

/// What the pages share: the site's settings and the services they call.
#[derive(Clone)]
pub struct Pages {
    /// The issuer's path (`""` or e.g. `/tenant`), prefixed to every local link.
    pub base: String,
    /// Anyone may create an account at `/signup` (`SIGNUP`).
    pub signup: bool,
    /// The MCP endpoint people point their clients at.
    pub resource: String,
    pub store: Store,
    pub sessions: Sessions,
    pub passwords: Passwords,
    pub limits: Arc<Limits>,
    pub registrar: Registrar,
    pub metrics: Metrics,
    /// The gateway's upstreams, which admins manage on the admin page.
    pub upstreams: Upstreams,
    /// People's own accounts at OAuth-protected upstreams (Connections page).
    pub upstream_accounts: Arc<UpstreamAccounts>,
    /// Admins may add programs (stdio upstreams) on the admin page (`ADMIN_PAGE_PROGRAMS`).
    pub admin_programs: bool,
    /// Our issuer (links the identity providers send browsers back to).
    pub issuer: String,
    /// Identity providers, over the network (sign-in).
    pub providers: Arc<Providers>,
    /// Seals the cookie of a sign-in under way.
    pub secrets: Arc<SecretsKey>,
    /// The username and password form is offered (`PASSWORD_LOGIN`).
    pub password_login: bool,
    /// The names of the providers people may sign in through, as last read.
    pub sign_in_providers: Arc<std::sync::RwLock<Vec<String>>>,
}

impl Pages {
    /// Reads again which providers people may sign in through.
    pub async fn refresh_sign_in_providers(&self) {
        match self.store.list_identity_providers().await {
            Ok(all) => {
                let names = all.into_iter().filter(|p| !p.disabled && p.client_id.is_some()).map(|p| p.name).collect();
                *self.sign_in_providers.write().expect("providers lock") = names;
            }
            Err(e) => tracing::warn!(error = %e, "reading the identity providers failed"),
        }
    }
}

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

#[handler]
pub async fn home(
    pages: Data<&Arc<Pages>>,
    Visitor(me): Visitor,
    Query(query): Query<HomeQuery>,
) -> Result<Response, PageError> {
    let csrf = me.as_ref().map(|m| m.csrf_token()).unwrap_or_default();
    let (mut linked, mut linkable) = (Vec::new(), Vec::new());
    if let Some(me) = &me {
        let identities = pages.store.identities_of(&me.user.id).await?;
        for provider in pages.store.list_identity_providers().await? {
            match identities.iter().find(|i| i.issuer == provider.issuer) {
                Some(identity) => {
                    linked.push(LinkedProvider { name: provider.name, email: identity.email.clone() });
                }
                None if !provider.disabled && provider.client_id.is_some() => linkable.push(provider.name),
                None => {}
            }
        }
    }
    let page = HomePage {
        base: &pages.base,
        nav: me.as_ref().map(|m| account::nav(&pages, m, "home")),
        username: me.as_ref().map(|m| m.user.username.as_str()),
        admin: me.as_ref().is_some_and(|m| m.user.is_admin),
        csrf_token: &csrf,
        signup: pages.signup,
        resource: &pages.resource,
        linked,
        linkable,
        notice: match query.done.as_deref() {
            Some("linked") => Some("The provider is linked: you can sign in through it."),
            Some("unlinked") => Some("The provider is unlinked."),
            _ => None,
        },
    };
    Ok(html_response(StatusCode::OK, render(&page)))
}

#[derive(Debug, Deserialize)]
pub struct HomeQuery {
    done: Option<String>,
}

#[handler]
pub fn stylesheet() -> Response {
    Response::builder()
        .content_type("text/css; charset=utf-8")
        .header("Cache-Control", "public, max-age=3600")
        .body(STYLESHEET)
}
