//! The pages the authorization endpoint shows (sign-in, consent, and the errors it tells a person), as a
//! narrow interface: the OAuth face decides what to show, the HTML face renders it, and neither knows the
//! other (the application hands the renderer in).
use poem::web::cookie::CookieJar;

/// What the consent page shows, and the request it carries back to the decision.
pub struct ConsentView<'a> {
    pub username: &'a str,
    pub client_name: &'a str,
    pub client_id: &'a str,
    /// Not registered by the operator: its name is checked by nobody.
    pub unverified: bool,
    /// Where the browser goes after the answer: host (and port), or a private-use scheme's description.
    pub redirect_host: &'a str,
    pub redirect_uri: &'a str,
    pub loopback: bool,
    /// The host publishing the client's metadata document, for a client named by its document URL.
    pub document_host: Option<&'a str>,
    /// A metadata-document client whose every redirect URI is on this computer: anyone can publish such a
    /// document, so the page warns.
    pub localhost_only: bool,
    pub resource: &'a str,
    pub scopes: Vec<(String, String)>,
    /// The authorization request, carried to the decision and validated again there.
    pub fields: Vec<(&'static str, String)>,
    pub csrf_token: &'a str,
    /// A MAC (keyed per session) over what this page shows; the decision must match it.
    pub consent_mac: &'a str,
}

/// An error the client should hear of, shown to the person with a link they may follow to the client
/// (never an automatic redirect; RFC 9700 §4.11.2).
pub struct LeaveView<'a> {
    pub title: &'a str,
    pub message: &'a str,
    /// Where the link goes: the host (and port) of `href`, or the private-use scheme's description.
    pub host: &'a str,
    pub href: &'a str,
}

/// Renders the authorization endpoint's pages to HTML.
pub trait AuthorizeViews: Send + Sync {
    /// The sign-in form, which comes back to `return_to` (a local path) afterwards.
    fn login(&self, jar: &CookieJar, return_to: &str) -> String;
    fn consent(&self, view: &ConsentView<'_>) -> String;
    fn leave(&self, view: &LeaveView<'_>) -> String;
    /// A readable error page.
    fn error(&self, title: &str, message: &str) -> String;
}
