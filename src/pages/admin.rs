//! The admin view: every client and user, with buttons to disable and enable them, and the gateway's
//! upstreams with their status and tools, to add, disable, enable and remove. Only for users with the admin
//! flag (`mcp-gateway user add --admin`); anyone else gets a 404.
use std::sync::Arc;

use poem::http::StatusCode;
use poem::web::{Data, Form, Query};
use poem::{Response, handler};
use serde::Deserialize;

use super::error::PageError;
use super::templates::{AdminClientRow, AdminIdpRow, AdminPage, AdminUpstreamRow, AdminUserRow, render};
use super::{Done, Pages, account, html_response, see_other};
use crate::domain::client::{Client, GrantType, RegistrationSource};
use crate::domain::policy::{Rule, check_group_name};
use crate::domain::registration::ClientMetadata;
use crate::domain::sessions::{SignedIn, Visitor};
use crate::domain::upstream::{DEFAULT_TIMEOUT, Transport, Upstream};
use crate::domain::upstreams::{ChangedBy, Summary, UpstreamError};
use crate::store::{AuditEntry, AuditKind};

/// The signed-in admin; anyone else signed in gets a 404, nobody signed in `None` (for the login page).
fn require_admin(me: Option<SignedIn>) -> Result<Option<SignedIn>, PageError> {
    match me {
        Some(me) if me.user.is_admin => Ok(Some(me)),
        Some(_) => Err(PageError::not_found()),
        None => Ok(None),
    }
}

#[handler]
pub async fn page(
    pages: Data<&Arc<Pages>>,
    Visitor(me): Visitor,
    Query(done): Query<Done>,
) -> Result<Response, PageError> {
    let Some(me) = require_admin(me)? else {
        return Ok(account::to_login(&pages, "/admin"));
    };
    let users = pages.store.list_users().await?;
    let username_of = |id: &str| users.iter().find(|u| u.id == id).map(|u| u.username.clone());
    let clients = pages
        .store
        .list_clients()
        .await?
        .into_iter()
        .filter_map(Client::from_row)
        .map(|c| AdminClientRow {
            kind: c.kind(),
            machine: c.has_machine_access(),
            owner: c.owner_user_id.as_deref().and_then(username_of),
            created: c.created_at.readable(),
            client_id: c.id,
            name: if c.name.is_empty() { "(unnamed)".into() } else { c.name },
            source: match c.source {
                RegistrationSource::Dynamic => "self-registered",
                RegistrationSource::Owner => "from My apps",
                RegistrationSource::MetadataDocument => "metadata document",
                RegistrationSource::Operator => "operator",
            }
            .into(),
            disabled: c.disabled,
        })
        .collect();
    let users = users
        .iter()
        .map(|u| AdminUserRow {
            username: u.username.clone(),
            admin: u.is_admin,
            disabled: u.disabled,
            created: u.created_at.readable(),
            is_me: u.id == me.user.id,
        })
        .collect();
    let statuses = pages.upstreams.statuses().await?;
    let upstreams = pages
        .upstreams
        .current()
        .iter()
        .map(|u| {
            let reports = statuses.get(&u.name).map(Vec::as_slice).unwrap_or_default();
            let Summary { status, error, .. } = Summary::of(u.enabled, reports);
            let tools = reports.iter().map(|r| &r.tools).max_by_key(|t| t.len()).cloned().unwrap_or_default();
            AdminUpstreamRow {
                name: u.name.clone(),
                kind: u.transport.kind(),
                target: u.transport.target(),
                prefix: u.prefix().to_owned(),
                scope: u.scope.clone(),
                enabled: u.enabled,
                status,
                error,
                tools: if u.enabled { tools } else { Vec::new() },
            }
        })
        .collect();
    let idps = pages
        .store
        .list_identity_providers()
        .await?
        .into_iter()
        .map(|p| AdminIdpRow {
            signup: p.new_accounts(),
            sign_in: p.client_id.is_some(),
            name: p.name,
            issuer: p.issuer,
            disabled: p.disabled,
            trust_id_jag: p.trust_id_jag,
        })
        .collect();
    let mut groups: Vec<(String, Vec<String>)> = Vec::new();
    for m in pages.store.all_memberships().await? {
        let who = format!("{} ({})", username_of(&m.user_id).unwrap_or(m.user_id), m.source);
        match groups.last_mut() {
            Some((name, members)) if *name == m.name => members.push(who),
            _ => groups.push((m.name, vec![who])),
        }
    }
    let rules = pages
        .store
        .policy_rules()
        .await?
        .iter()
        .map(|row| (row.group_name.clone(), row.upstream.clone(), Rule::from_row(row).describe()))
        .collect();
    let page = AdminPage {
        base: &pages.base,
        nav: account::nav(&pages, &me, "admin"),
        notice: done.notice(&[
            ("client", "The client is updated."),
            ("machine", "The client's machine access is revoked: its tokens no longer work."),
            ("idp", "The identity provider is updated."),
            ("user", "The user is updated."),
            ("upstream", "The upstream is updated; every instance follows within seconds."),
            ("policy", "The policy is updated; every instance follows within GUARD_CACHE_SECS."),
        ]),
        clients,
        users,
        upstreams,
        idps,
        programs: pages.admin_programs,
        groups,
        rules,
    };
    Ok(html_response(StatusCode::OK, render(&page)))
}

#[derive(Debug, Deserialize)]
pub struct SwitchForm {
    csrf_token: Option<String>,
    client_id: Option<String>,
    username: Option<String>,
    /// An identity provider's name.
    name: Option<String>,
    action: Option<String>,
}

/// An admin's Disable/Enable POST: signed in as an admin (else `None`), the CSRF token, and the action.
fn admin_post(me: Option<SignedIn>, form: &SwitchForm) -> Result<Option<(SignedIn, bool)>, PageError> {
    let Some(me) = require_admin(me)? else {
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

/// Disables or enables a client (a disabled client's tokens stop working at once), or ends its machine
/// access (`revoke_machine`).
#[handler]
pub async fn switch_client(
    pages: Data<&Arc<Pages>>,
    Visitor(me): Visitor,
    Form(form): Form<SwitchForm>,
) -> Result<Response, PageError> {
    if form.action.as_deref() == Some("revoke_machine") {
        return revoke_machine_access(&pages, me, form).await;
    }
    let Some((me, disable)) = admin_post(me, &form)? else {
        return Ok(account::to_login(&pages, "/admin"));
    };
    let client_id = form.client_id.unwrap_or_default();
    if !pages.store.set_client_disabled(&client_id, disable).await? {
        return Err(PageError::not_found());
    }
    tracing::info!(%client_id, disable, admin = %me.user.id, "client switched by an admin");
    let kind = if disable { AuditKind::ClientDisabled } else { AuditKind::ClientEnabled };
    let entry =
        AuditEntry { user_id: Some(&me.user.id), client_id: Some(&client_id), detail: Some("by an admin"), ip: None };
    pages.store.audit(kind, entry).await;
    Ok(see_other(&format!("{}/admin?done=client", pages.base)))
}

/// Ends a client's machine access: every token it got for itself (client credentials) stops working at
/// once on every instance, and it may not get another until the operator registers it for that grant again.
async fn revoke_machine_access(pages: &Pages, me: Option<SignedIn>, form: SwitchForm) -> Result<Response, PageError> {
    let Some(me) = require_admin(me)? else {
        return Ok(account::to_login(pages, "/admin"));
    };
    me.check_csrf(form.csrf_token.as_deref())?;
    let client_id = form.client_id.unwrap_or_default();
    let client = pages.store.find_any_client(&client_id).await?.and_then(Client::from_row);
    let Some(client) = client else {
        return Err(PageError::not_found());
    };
    let without = client.grant_types.without(GrantType::ClientCredentials);
    let mut metadata: ClientMetadata = serde_json::from_str(&client.metadata).map_err(PageError::internal)?;
    metadata.grant_types = Some(without.names().into_iter().map(str::to_owned).collect());
    let metadata = serde_json::to_string(&metadata).map_err(PageError::internal)?;
    pages.store.revoke_machine_access(&client.id, &without.to_stored(), &metadata).await?;
    tracing::info!(%client_id, admin = %me.user.id, "machine access revoked by an admin");
    let entry =
        AuditEntry { user_id: Some(&me.user.id), client_id: Some(&client_id), detail: Some("by an admin"), ip: None };
    pages.store.audit(AuditKind::MachineAccessRevoked, entry).await;
    Ok(see_other(&format!("{}/admin?done=machine", pages.base)))
}

#[derive(Debug, Deserialize)]
pub struct PolicyForm {
    csrf_token: Option<String>,
    action: Option<String>,
    group: Option<String>,
    upstream: Option<String>,
    tools: Option<String>,
    deny_tools: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct MemberForm {
    csrf_token: Option<String>,
    action: Option<String>,
    group: Option<String>,
    username: Option<String>,
}

/// Adds a person to a local group or takes them out (CSRF-checked, audited). Groups an identity provider
/// sends are its to change.
#[handler]
pub async fn change_member(
    pages: Data<&Arc<Pages>>,
    Visitor(me): Visitor,
    Form(form): Form<MemberForm>,
) -> Result<Response, PageError> {
    let Some(me) = require_admin(me)? else {
        return Ok(account::to_login(&pages, "/admin"));
    };
    me.check_csrf(form.csrf_token.as_deref())?;
    let group = form.group.unwrap_or_default().trim().to_owned();
    check_group_name(&group).map_err(|why| PageError::bad_request("Not a group", why))?;
    let username = form.username.unwrap_or_default().trim().to_ascii_lowercase();
    let Some(user) = pages.store.find_user_by_username(&username).await? else {
        return Err(PageError::bad_request("No such user", format!("There is no user named {username}.")));
    };
    let detail = match form.action.as_deref() {
        Some("add") => {
            pages.store.add_local_member(&user.id, &group).await?;
            format!("added to group {group}, by an admin")
        }
        Some("remove") => {
            if !pages.store.remove_local_member(&user.id, &group).await? {
                return Err(PageError::bad_request(
                    "Not a member",
                    format!("{username} is not in the local group {group}."),
                ));
            }
            format!("removed from group {group}, by an admin")
        }
        _ => return Err(PageError::bad_request("Unknown action", "Add to the group or remove from it.")),
    };
    tracing::info!(admin = %me.user.id, user_id = %user.id, "group membership changed by an admin");
    let entry = AuditEntry { user_id: Some(&user.id), detail: Some(&detail), ..AuditEntry::default() };
    pages.store.audit(AuditKind::GroupChanged, entry).await;
    Ok(see_other(&format!("{}/admin?done=policy#policy", pages.base)))
}

/// Adds or removes a policy rule (CSRF-checked, audited).
#[handler]
pub async fn change_policy(
    pages: Data<&Arc<Pages>>,
    Visitor(me): Visitor,
    Form(form): Form<PolicyForm>,
) -> Result<Response, PageError> {
    let Some(me) = require_admin(me)? else {
        return Ok(account::to_login(&pages, "/admin"));
    };
    me.check_csrf(form.csrf_token.as_deref())?;
    let group = form.group.unwrap_or_default().trim().to_owned();
    let upstream = form.upstream.unwrap_or_default().trim().to_owned();
    let patterns = |v: Option<String>| -> Vec<String> {
        v.unwrap_or_default().split(',').map(str::trim).filter(|p| !p.is_empty()).map(str::to_owned).collect()
    };
    let detail = match form.action.as_deref() {
        Some("add") => {
            // What the database holds now (an upstream added a moment ago elsewhere counts).
            pages.upstreams.reload().await?;
            if upstream != "*" && !pages.upstreams.current().iter().any(|u| u.name == upstream) {
                return Err(PageError::bad_request(
                    "No such upstream",
                    format!("There is no upstream named {upstream}."),
                ));
            }
            let rule = Rule { group, upstream, allow: patterns(form.tools), deny: patterns(form.deny_tools) };
            rule.validate().map_err(|why| PageError::bad_request("Not a rule", why))?;
            pages.store.save_policy_rule(rule.to_row()).await?;
            format!("policy: {}, by an admin", rule.describe())
        }
        Some("remove") => {
            if !pages.store.remove_policy_rule(&group, &upstream).await? {
                return Err(PageError::not_found());
            }
            format!("policy: rule of group {group} for {upstream} removed, by an admin")
        }
        _ => return Err(PageError::bad_request("Unknown action", "Add or remove a rule.")),
    };
    tracing::info!(admin = %me.user.id, "policy changed by an admin");
    let entry = AuditEntry { user_id: Some(&me.user.id), detail: Some(&detail), ..AuditEntry::default() };
    pages.store.audit(AuditKind::GroupChanged, entry).await;
    Ok(see_other(&format!("{}/admin?done=policy#policy", pages.base)))
}

/// Disables or enables a trusted identity provider: while disabled, its assertions get no token.
#[handler]
pub async fn switch_idp(
    pages: Data<&Arc<Pages>>,
    Visitor(me): Visitor,
    Form(form): Form<SwitchForm>,
) -> Result<Response, PageError> {
    let Some((me, disable)) = admin_post(me, &form)? else {
        return Ok(account::to_login(&pages, "/admin"));
    };
    let name = form.name.unwrap_or_default();
    if !pages.store.set_identity_provider_disabled(&name, disable).await? {
        return Err(PageError::not_found());
    }
    let done = if disable { "disabled" } else { "enabled" };
    tracing::info!(provider = %name, disable, admin = %me.user.id, "identity provider switched by an admin");
    let detail = format!("identity provider {name} {done}, by an admin");
    let entry = AuditEntry { user_id: Some(&me.user.id), detail: Some(&detail), ..AuditEntry::default() };
    pages.store.audit(AuditKind::IdentityProviderChanged, entry).await;
    Ok(see_other(&format!("{}/admin?done=idp", pages.base)))
}

/// Disables or enables a user; a disabled user cannot sign in and their tokens stop working at once.
#[handler]
pub async fn switch_user(
    pages: Data<&Arc<Pages>>,
    Visitor(me): Visitor,
    Form(form): Form<SwitchForm>,
) -> Result<Response, PageError> {
    let Some((me, disable)) = admin_post(me, &form)? else {
        return Ok(account::to_login(&pages, "/admin"));
    };
    let username = form.username.unwrap_or_default();
    if username == me.user.username {
        return Err(PageError::bad_request("Not yourself", "An admin cannot disable their own account here."));
    }
    if !pages.store.set_user_disabled(&username, disable).await? {
        return Err(PageError::not_found());
    }
    tracing::info!(%username, disable, admin = %me.user.id, "user switched by an admin");
    let kind = if disable { AuditKind::UserDisabled } else { AuditKind::UserEnabled };
    let detail = format!("account {username}, by an admin");
    pages
        .store
        .audit(kind, AuditEntry { user_id: Some(&me.user.id), detail: Some(&detail), ..AuditEntry::default() })
        .await;
    Ok(see_other(&format!("{}/admin?done=user", pages.base)))
}

/// The admin page's upstream form: one of its buttons (add, disable, enable, remove) and, to add, the same
/// fields as `mcp-gateway upstream add` (lists one entry per line).
#[derive(Debug, Default, Deserialize)]
pub struct UpstreamForm {
    csrf_token: Option<String>,
    action: Option<String>,
    name: Option<String>,
    kind: Option<String>,
    command: Option<String>,
    args: Option<String>,
    env: Option<String>,
    cwd: Option<String>,
    url: Option<String>,
    headers: Option<String>,
    prefix: Option<String>,
    no_prefix: Option<String>,
    scope: Option<String>,
    timeout: Option<String>,
}

impl UpstreamForm {
    fn field(value: &Option<String>) -> Option<String> {
        value.as_deref().map(str::trim).filter(|v| !v.is_empty()).map(str::to_owned)
    }

    fn lines(value: &Option<String>) -> impl Iterator<Item = &str> {
        value.as_deref().unwrap_or_default().lines().map(str::trim).filter(|l| !l.is_empty())
    }

    fn upstream(&self) -> Result<Upstream, String> {
        let transport = match self.kind.as_deref() {
            Some("stdio") => Transport::stdio(
                Self::field(&self.command).ok_or("Give the program to run.")?,
                Self::lines(&self.args).map(str::to_owned).collect(),
                Self::lines(&self.env),
                Self::field(&self.cwd),
            )?,
            Some("http") => {
                Transport::http(Self::field(&self.url).ok_or("Give the server's URL.")?, Self::lines(&self.headers))?
            }
            _ => return Err("Choose a program (stdio) or a URL (Streamable HTTP).".into()),
        };
        let timeout_secs = match Self::field(&self.timeout) {
            None => DEFAULT_TIMEOUT.as_secs(),
            Some(t) => t.parse().map_err(|_| format!("'{t}' is not a number of seconds."))?,
        };
        Ok(Upstream {
            name: Self::field(&self.name).unwrap_or_default(),
            transport,
            prefix: if self.no_prefix.is_some() { Some(String::new()) } else { Self::field(&self.prefix) },
            scope: Self::field(&self.scope),
            timeout_secs,
            enabled: true,
            tools: Default::default(),
            oauth: None,
            env_per_user: vec![],
        })
    }
}

/// Adds, disables, enables or removes an upstream. Adding a program lets the server run it as its own user:
/// that is what an admin is trusted with (README, "Gateway").
#[handler]
pub async fn change_upstream(
    pages: Data<&Arc<Pages>>,
    Visitor(me): Visitor,
    Form(form): Form<UpstreamForm>,
) -> Result<Response, PageError> {
    let Some(me) = require_admin(me)? else {
        return Ok(account::to_login(&pages, "/admin"));
    };
    me.check_csrf(form.csrf_token.as_deref())?;
    let by = ChangedBy::admin(&me.user.id);
    let name = UpstreamForm::field(&form.name).unwrap_or_default();
    let refused = |e: UpstreamError| match e {
        UpstreamError::Storage(e) => PageError::from(e),
        other => PageError::bad_request("The upstream was not changed", other.to_string()),
    };
    let found = match form.action.as_deref() {
        Some("add") if form.kind.as_deref() == Some("stdio") && !pages.admin_programs => {
            return Err(PageError::forbidden(
                "Programs are added with the command line here",
                "This server is set up so that the admin page adds only Streamable HTTP upstreams \
                 (ADMIN_PAGE_PROGRAMS=off): a program would run as the server's user. Use `mcp-gateway upstream add`.",
            ));
        }
        Some("add") => {
            let upstream = form.upstream().map_err(|why| PageError::bad_request("The upstream was not added", why))?;
            pages.upstreams.add(upstream, by).await.map_err(refused)?;
            true
        }
        Some("disable") => pages.upstreams.set_enabled(&name, false, by).await.map_err(refused)?,
        Some("enable") => pages.upstreams.set_enabled(&name, true, by).await.map_err(refused)?,
        Some("remove") => pages.upstreams.remove(&name, by).await.map_err(refused)?,
        _ => return Err(PageError::bad_request("Unknown action", "Choose Add, Disable, Enable or Remove.")),
    };
    if !found {
        return Err(PageError::not_found());
    }
    tracing::info!(upstream = %name, action = ?form.action, admin = %me.user.id, "upstream changed by an admin");
    Ok(see_other(&format!("{}/admin?done=upstream", pages.base)))
}
