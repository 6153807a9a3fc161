//! askama templates (in `templates/`); every value is HTML-escaped by the `.html` templates.
use askama::Template;

#[derive(Template)]
#[template(path = "error.html")]
pub struct ErrorPage<'a> {
    pub base: &'a str,
    pub title: &'a str,
    pub message: &'a str,
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
    pub username: &'a str,
    pub client_name: &'a str,
    pub client_id: &'a str,
    pub unverified: bool,
    pub redirect_host: &'a str,
    pub redirect_uri: &'a str,
    pub loopback: bool,
    /// The host publishing the client's metadata document, for a client named by its document URL.
    pub document_host: Option<&'a str>,
    /// A metadata-document client whose every redirect URI is on this computer: anyone can publish such a
    /// document, so the page warns.
    pub localhost_only: bool,
    pub resource: &'a str,
    pub scopes: Vec<(&'static str, &'static str)>,
    /// The authorization request, carried to the decision and validated again there.
    pub fields: Vec<(&'static str, String)>,
    pub csrf_token: &'a str,
}

#[derive(Template)]
#[template(path = "home.html")]
pub struct HomePage<'a> {
    pub base: &'a str,
    pub username: Option<&'a str>,
    pub csrf_token: &'a str,
    pub signup: bool,
    pub resource: &'a str,
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
