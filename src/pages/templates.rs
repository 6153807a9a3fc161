//! askama templates (in `templates/`); every value is HTML-escaped by the `.html` templates.
use askama::Template;

use crate::domain::views::{ConsentView, LeaveView};

#[derive(Template)]
#[template(path = "error.html")]
pub struct ErrorPage<'a> {
    pub base: &'a str,
    pub title: &'a str,
    pub message: &'a str,
}

/// An error the client should hear of, for a client the operator did not register: the person sees it and
/// may follow the link back to the client (RFC 9700 §4.11.2), but is never sent there automatically.
#[derive(Template)]
#[template(path = "leave.html")]
pub struct LeavePage<'a> {
    pub base: &'a str,
    pub view: &'a LeaveView<'a>,
}

#[derive(Template)]
#[template(path = "login.html")]
pub struct LoginPage<'a> {
    pub base: &'a str,
    pub csrf_token: &'a str,
    pub return_to: &'a str,
    pub username: &'a str,
    pub error: Option<&'a str>,
    pub signup: bool,
    /// The identity providers people may sign in through ("Sign in with NAME").
    pub providers: Vec<String>,
    /// The username and password form is offered (`PASSWORD_LOGIN`).
    pub password_login: bool,
}

#[derive(Template)]
#[template(path = "signup.html")]
pub struct SignupPage<'a> {
    pub base: &'a str,
    pub csrf_token: &'a str,
    pub return_to: &'a str,
    pub username: &'a str,
    pub error: Option<&'a str>,
}

#[derive(Template)]
#[template(path = "consent.html")]
pub struct ConsentPage<'a> {
    pub base: &'a str,
    pub view: &'a ConsentView<'a>,
}

#[derive(Template)]
#[template(path = "home.html")]
pub struct HomePage<'a> {
    pub base: &'a str,
    pub nav: Option<Nav<'a>>,
    pub username: Option<&'a str>,
    pub admin: bool,
    pub csrf_token: &'a str,
    pub signup: bool,
    pub resource: &'a str,
    /// The identity providers linked to this account, and the ones it may link.
    pub linked: Vec<LinkedProvider>,
    pub linkable: Vec<String>,
    pub notice: Option<&'static str>,
}

/// An identity provider linked to the signed-in account.
pub struct LinkedProvider {
    pub name: String,
    pub email: Option<String>,
}

/// Renders a template; a rendering failure (a bug) becomes the plain error page.
pub fn render(template: &impl Template) -> String {
    template.render().unwrap_or_else(|e| {
        tracing::error!(error = %e, "template rendering failed");
        render_error("Something went wrong", "The page could not be shown.")
    })
}

/// The error page. It links to the site root, so it needs no configuration.
pub fn render_error(title: &str, message: &str) -> String {
    ErrorPage { base: "", title, message }
        .render()
        .unwrap_or_else(|_| "<!doctype html><title>Error</title><h1>Error</h1>".to_owned())
}

/// The account navigation of signed-in pages (`nav.html`).
pub struct Nav<'a> {
    pub base: &'a str,
    pub username: &'a str,
    pub admin: bool,
    pub csrf_token: String,
    /// Which entry is the current page: `apps`, `connections` or `admin`.
    pub current: &'static str,
}

/// One of my registered clients.
pub struct AppRow {
    pub client_id: String,
    pub name: String,
    pub kind: &'static str,
    pub redirect_uris: Vec<String>,
    pub created: String,
    pub disabled: bool,
}

#[derive(Template)]
#[template(path = "apps.html")]
pub struct AppsPage<'a> {
    pub base: &'a str,
    pub nav: Nav<'a>,
    pub apps: Vec<AppRow>,
    pub error: Option<&'a str>,
    pub form_name: &'a str,
    pub form_redirect_uris: &'a str,
    /// `public`, `confidential` or `machine`.
    pub form_kind: &'a str,
}

#[derive(Template)]
#[template(path = "app.html")]
pub struct AppPage<'a> {
    pub base: &'a str,
    pub nav: Nav<'a>,
    pub client_id: &'a str,
    pub name: &'a str,
    pub kind: &'static str,
    pub auth_method: &'a str,
    pub created: String,
    pub confidential: bool,
    pub error: Option<&'a str>,
    pub notice: Option<&'a str>,
    pub form_name: &'a str,
    pub form_redirect_uris: &'a str,
}

#[derive(Template)]
#[template(path = "app_secret.html")]
pub struct AppSecretPage<'a> {
    pub base: &'a str,
    pub nav: Nav<'a>,
    pub heading: &'a str,
    pub name: &'a str,
    pub client_id: &'a str,
    pub secret: &'a str,
}

/// One client I have granted access to.
pub struct ConnectionRow {
    pub client_id: String,
    pub name: String,
    pub unverified: bool,
    pub scopes: Vec<String>,
    pub resource: String,
    pub granted: String,
}

#[derive(Template)]
#[template(path = "connections.html")]
pub struct ConnectionsPage<'a> {
    pub base: &'a str,
    pub nav: Nav<'a>,
    pub notice: Option<&'a str>,
    pub connections: Vec<ConnectionRow>,
    /// Upstreams that act on the person's own account there.
    pub accounts: Vec<UpstreamAccountRow>,
}

pub struct UpstreamAccountRow {
    pub name: String,
    /// The program's variables each person gives (empty for an OAuth upstream).
    pub values: Vec<String>,
    /// The upstream's URL, as it may be shown.
    pub target: String,
    /// When the person connected, if they have.
    pub connected: Option<String>,
    pub scopes: Vec<String>,
    /// Why the connection stopped working.
    pub problem: Option<String>,
}

#[derive(Template)]
#[template(path = "connect.html")]
pub struct ConnectPage<'a> {
    pub base: &'a str,
    pub nav: Nav<'a>,
    pub name: String,
    pub target: String,
    /// The variables to give (a program with per-person values); empty for an OAuth upstream.
    pub values: Vec<String>,
}

pub struct AdminClientRow {
    pub client_id: String,
    pub name: String,
    pub source: String,
    pub kind: &'static str,
    /// Registered for client credentials: the admin may revoke that.
    pub machine: bool,
    pub owner: Option<String>,
    pub created: String,
    pub disabled: bool,
}

pub struct AdminUserRow {
    pub username: String,
    pub admin: bool,
    pub disabled: bool,
    pub created: String,
    pub is_me: bool,
}

/// A trusted identity provider on the admin page.
pub struct AdminIdpRow {
    pub name: String,
    pub issuer: String,
    pub disabled: bool,
    pub trust_id_jag: bool,
    /// People sign in through it.
    pub sign_in: bool,
    /// Who gets an account when first seen: `anyone`, `none`, or the allowed email domains.
    pub signup: String,
}

pub struct AdminUpstreamRow {
    pub name: String,
    pub kind: &'static str,
    /// The program and its arguments, or the URL (never environment or headers).
    pub target: String,
    pub prefix: String,
    pub scope: Option<String>,
    pub enabled: bool,
    pub status: String,
    pub error: Option<String>,
    /// The names clients see, from the instance that found the most.
    pub tools: Vec<String>,
}

#[derive(Template)]
#[template(path = "admin.html")]
pub struct AdminPage<'a> {
    pub base: &'a str,
    pub nav: Nav<'a>,
    pub notice: Option<&'a str>,
    pub clients: Vec<AdminClientRow>,
    pub users: Vec<AdminUserRow>,
    pub upstreams: Vec<AdminUpstreamRow>,
    pub idps: Vec<AdminIdpRow>,
    /// The add form offers programs (stdio) too.
    pub programs: bool,
    /// Groups with their members (username and where the membership comes from).
    pub groups: Vec<(String, Vec<String>)>,
    /// Policy rules: group, upstream, and the rule in words.
    pub rules: Vec<(String, String, String)>,
}
