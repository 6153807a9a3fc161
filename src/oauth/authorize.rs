//! The authorization endpoint (RFC 6749 §4.1.1, OAuth 2.1 §4.1.1) with PKCE (RFC 7636), resource
//! indicators (RFC 8707) and the `iss` response parameter (RFC 9207).
//!
//! Order matters: the client and its redirect URI are checked first and a failure there is an HTML page,
//! never a redirect (RFC 6749 §4.1.2.1). Only then do errors go back to the client, and for a client the
//! operator did not register only after the person has seen the consent page (RFC 9700 §4.11.2). The
//! consent form carries the original request, bound to what the page showed by a MAC, and everything is
//! validated again when it is submitted.
use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use poem::web::cookie::CookieJar;
use poem_openapi::payload::Html;
use poem_openapi::{ApiResponse, Object};
use serde::Deserialize;

use super::error::ErrorCode;
use super::metadata_document::{MetadataDocuments, is_metadata_document_url};
use crate::clock::now;
use crate::crypto::{random_token, sha256_hex};
use crate::domain::client::{Client, GrantType};
use crate::domain::pkce::CodeChallenge;
use crate::domain::policy::Policy;
use crate::domain::redirect_uri::RedirectUri;
use crate::domain::resource::Resource;
use crate::domain::scope::{Scope, ScopeCatalog};
use crate::domain::sessions::{FormExpired, Sessions, SignedIn};
use crate::domain::upstreams::Upstreams;
use crate::domain::views::{AuthorizeViews, ConsentView, LeaveView};
use crate::store::{AuditEntry, AuditKind, Store, authorization_code, grant};

/// The authorization endpoint's service.
#[derive(Clone)]
pub struct Authorization {
    pub store: Store,
    pub sessions: Sessions,
    pub documents: MetadataDocuments,
    pub views: Arc<dyn AuthorizeViews>,
    pub issuer: String,
    /// The issuer's path (`""` or e.g. `/tenant`), prefixed to local links.
    pub base: String,
    pub resource: Resource,
    /// The scopes offered (the gateway's upstreams add theirs).
    pub scopes: ScopeCatalog,
    pub code_ttl: Duration,
    /// Which groups may use which upstream: the consent page offers only the scopes of upstreams the person
    /// may use.
    pub policy: Arc<Policy>,
    pub upstreams: Upstreams,
}

/// The parameters of an authorization request, as sent.
#[derive(Debug, Default, Clone, Object, Deserialize)]
pub struct AuthorizationRequest {
    /// Must be `code`.
    pub response_type: Option<String>,
    pub client_id: Option<String>,
    /// Required when the client registered more than one redirect URI.
    pub redirect_uri: Option<String>,
    /// Space-separated; defaults to the client's registered scope.
    pub scope: Option<String>,
    /// Returned unchanged to the client.
    pub state: Option<String>,
    /// base64url(SHA-256(code_verifier)).
    pub code_challenge: Option<String>,
    /// Must be `S256`.
    pub code_challenge_method: Option<String>,
    /// The MCP server the token is for (RFC 8707); defaults to this server's canonical URI.
    pub resource: Option<String>,
}

/// The consent form: the original request plus the person's decision.
#[derive(Debug, Object, Deserialize)]
pub struct ConsentDecision {
    #[oai(flatten)]
    #[serde(flatten)]
    pub request: AuthorizationRequest,
    /// The CSRF token of the consent page.
    pub csrf_token: Option<String>,
    /// The consent page's MAC over the request it showed; a decision about anything else is refused.
    pub consent_mac: Option<String>,
    /// `allow` or `deny`.
    pub decision: Option<String>,
}

#[derive(ApiResponse)]
#[oai(bad_request_handler = "malformed_authorization_request")]
pub enum AuthorizeResponse {
    /// The sign-in page (nobody is signed in) or the consent page.
    #[oai(status = 200)]
    Page(Html<String>),
    /// Back to the client: `code`, `state` and `iss`, or `error`, `error_description`, `state` and `iss`.
    #[oai(status = 302)]
    Redirect(#[oai(header = "Location")] String),
    /// The client or redirect URI is not valid, or the consent form is stale: an HTML page, no redirect.
    #[oai(status = 400)]
    BadRequest(Html<String>),
    /// The server failed.
    #[oai(status = 500)]
    ServerError(Html<String>),
}

fn malformed_authorization_request(err: poem::Error) -> AuthorizeResponse {
    // No service at hand here: the plain page of the HTML face's error template is not reachable, so a
    // minimal, escaped page.
    let detail = err.to_string().replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;");
    AuthorizeResponse::BadRequest(Html(format!(
        "<!doctype html><title>Invalid authorization request</title><h1>Invalid authorization request</h1>\
         <p>The request could not be read: {detail}</p>"
    )))
}

/// What is shown to the person instead of going anywhere.
#[derive(Debug)]
struct Refusal {
    title: &'static str,
    message: String,
    server_error: bool,
}

impl Refusal {
    fn new(title: &'static str, message: impl Into<String>) -> Refusal {
        Refusal { title, message: message.into(), server_error: false }
    }

    fn internal(cause: impl std::fmt::Display) -> Refusal {
        tracing::error!(error = %cause, "internal error");
        Refusal {
            title: "Something went wrong",
            message: "The server could not complete the request. Please try again.".into(),
            server_error: true,
        }
    }
}

impl From<sea_orm::DbErr> for Refusal {
    fn from(e: sea_orm::DbErr) -> Refusal {
        Refusal::internal(e)
    }
}

impl From<FormExpired> for Refusal {
    fn from(_: FormExpired) -> Refusal {
        Refusal::new(FormExpired::TITLE, FormExpired::MESSAGE)
    }
}

/// A request whose every part has been checked.
struct ValidRequest {
    client: Client,
    redirect_uri: String,
    redirect_uri_explicit: bool,
    scope: Scope,
    /// `scope` as text, for the consent MAC.
    scope_text: String,
    state: Option<String>,
    challenge: CodeChallenge,
    resource: String,
}

enum Rejection {
    /// The redirect URI cannot be trusted: tell the person, not the client.
    Page(Refusal),
    /// RFC 6749 §4.1.2.1: tell the client through its redirect URI. With `confirm`, the person is shown the
    /// error and a link to follow instead of being sent there (see [`Authorization::reject`]).
    ToClient { redirect_uri: String, code: ErrorCode, description: String, state: Option<String>, confirm: bool },
}

impl From<Refusal> for Rejection {
    fn from(r: Refusal) -> Rejection {
        Rejection::Page(r)
    }
}

/// Appends parameters to the redirect URI exactly as registered, keeping any query it already has.
fn with_query(redirect_uri: &str, params: &[(&str, String)]) -> String {
    let encoded = serde_urlencoded::to_string(params).unwrap_or_default();
    let separator = if redirect_uri.contains('?') { '&' } else { '?' };
    format!("{redirect_uri}{separator}{encoded}")
}

/// Names given more than once in a query (RFC 6749 §3.1: parameters must not repeat).
fn repeated_parameters(raw_query: &str) -> HashSet<String> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(raw_query).unwrap_or_default();
    let mut seen = HashSet::new();
    pairs.into_iter().filter_map(|(name, _)| (!seen.insert(name.clone())).then_some(name)).collect()
}

/// The purpose of the consent page's MAC.
const CONSENT_MAC: &str = "consent";

/// What the consent decision is bound to: the validated request as the page showed it.
fn mac_values(valid: &ValidRequest) -> [Option<&str>; 6] {
    [
        Some(valid.client.id.as_str()),
        Some(valid.redirect_uri.as_str()),
        Some(valid.scope_text.as_str()),
        Some(valid.resource.as_str()),
        valid.state.as_deref(),
        Some(valid.challenge.as_str()),
    ]
}

/// The parameters a trusted client's request must have right (RFC 6749 §4.1.1, RFC 7636 §4.3, RFC 8707 §2),
/// checked without I/O; an error is the `(code, description)` that goes back to the client.
fn check_parameters(
    client: &Client,
    req: &AuthorizationRequest,
    resource: &Resource,
    offered: &ScopeCatalog,
) -> Result<(CodeChallenge, Scope, String), (ErrorCode, String)> {
    let error = |code: ErrorCode, description: &str| (code, description.to_owned());
    match req.response_type.as_deref() {
        Some("code") => {}
        None => return Err(error(ErrorCode::InvalidRequest, "response_type is required")),
        Some(_) => return Err(error(ErrorCode::UnsupportedResponseType, "only response_type=code is supported")),
    }
    if !client.grant_types.allows(GrantType::AuthorizationCode) {
        return Err(error(ErrorCode::UnauthorizedClient, "this client may not use the authorization code grant"));
    }
    let challenge = CodeChallenge::parse(req.code_challenge.as_deref(), req.code_challenge_method.as_deref())
        .map_err(|e| error(ErrorCode::InvalidRequest, e))?;
    let scope = match req.scope.as_deref().filter(|s| !s.trim().is_empty()) {
        None => client.scope.clone().unwrap_or_else(|| offered.all()),
        Some(s) => offered.parse_known(s).map_err(|e| error(ErrorCode::InvalidScope, &e))?,
    };
    if scope.is_empty() || client.scope.as_ref().is_some_and(|allowed| !scope.is_subset_of(allowed)) {
        return Err(error(ErrorCode::InvalidScope, "the requested scope is not allowed for this client"));
    }
    let resource = match req.resource.as_deref() {
        None => resource.as_str().to_owned(),
        Some(r) if resource.is_named_by(r) => resource.as_str().to_owned(),
        Some(_) => return Err(error(ErrorCode::InvalidTarget, "resource must be this MCP server's canonical URI")),
    };
    Ok((challenge, scope, resource))
}

impl Authorization {
    fn page(&self, refusal: Refusal) -> AuthorizeResponse {
        let html = Html(self.views.error(refusal.title, &refusal.message));
        if refusal.server_error { AuthorizeResponse::ServerError(html) } else { AuthorizeResponse::BadRequest(html) }
    }

    /// A client the operator did not register is attacker-controlled (its redirect URI too), so an error
    /// found before the person has seen the consent page is not an automatic redirect: that would make
    /// this server's address a launderer for links to any site (RFC 9700 §4.11.2, MCP authorization "Open
    /// Redirection"). The person reads the error, sees the destination host, and may follow the link.
    fn reject(&self, rejection: Rejection) -> AuthorizeResponse {
        match rejection {
            Rejection::Page(refusal) => self.page(refusal),
            Rejection::ToClient { redirect_uri, code, description, state, confirm } => {
                let mut params = vec![("error", code.as_str().to_owned()), ("error_description", description.clone())];
                params.extend(state.map(|s| ("state", s)));
                params.push(("iss", self.issuer.clone()));
                let target = with_query(&redirect_uri, &params);
                if !confirm {
                    return AuthorizeResponse::Redirect(target);
                }
                let host = RedirectUri::parse(&redirect_uri).map(|r| r.display_host()).unwrap_or_default();
                let message = format!("The application's request cannot be accepted: {description}.");
                let view = LeaveView {
                    title: "This request cannot be completed",
                    message: &message,
                    host: &host,
                    href: &target,
                };
                AuthorizeResponse::BadRequest(Html(self.views.leave(&view)))
            }
        }
    }

    /// The client a request names: a registered one, or one described by its metadata document.
    async fn client(&self, client_id: &str, client_ip: Option<IpAddr>) -> Result<Client, Refusal> {
        let unknown = || {
            Refusal::new(
                "Unknown application",
                "The application that sent you here is not registered with this server.",
            )
        };
        let found = if is_metadata_document_url(client_id) {
            self.documents.client(client_id, client_ip).await.map_err(|e| {
                // The reason goes to the log only: telling an anonymous caller which check failed would make
                // this fetcher a probe of other hosts.
                tracing::info!(client_id, reason = %e, "client metadata document not usable");
                Refusal::new(
                    "Unknown application",
                    "The application that sent you here names itself by a metadata document that could not be used. \
                     Try again later, or tell the application's maker.",
                )
            })?
        } else {
            self.store.find_client(client_id).await?.and_then(Client::from_row)
        };
        found.ok_or_else(unknown)
    }

    /// Checks every part of the request. `consent_shown`: the person has seen the consent page for it (the
    /// decision), so an error may go back to the client at once.
    async fn validate(
        &self,
        client_ip: Option<IpAddr>,
        req: &AuthorizationRequest,
        repeated: &HashSet<String>,
        consent_shown: bool,
    ) -> Result<ValidRequest, Rejection> {
        let invalid = |message: &str| Refusal::new("Invalid authorization request", message);
        if repeated.contains("client_id") || repeated.contains("redirect_uri") {
            return Err(invalid("client_id and redirect_uri must be sent once.").into());
        }
        let client_id = req
            .client_id
            .as_deref()
            .filter(|c| !c.is_empty())
            .ok_or_else(|| invalid("The request names no client (client_id is missing)."))?;
        let client = self.client(client_id, client_ip).await?;
        let (redirect_uri, redirect_uri_explicit) = match (req.redirect_uri.as_deref(), client.redirect_uris.as_slice())
        {
            (Some(asked), _) if client.redirect_uri_matching(asked).is_some() => (asked.to_owned(), true),
            (Some(_), _) => {
                return Err(Refusal::new(
                    "Invalid redirect URI",
                    "The application asked to send you to an address it did not register. For your safety you were not sent there.",
                )
                .into());
            }
            (None, [only]) => (only.as_str().to_owned(), false),
            (None, _) => return Err(invalid("redirect_uri is required for this application.").into()),
        };
        let to_client = |(code, description): (ErrorCode, String)| Rejection::ToClient {
            redirect_uri: redirect_uri.clone(),
            code,
            description,
            state: req.state.clone(),
            confirm: !consent_shown && client.source.is_self_registered(),
        };
        if let Some(name) = repeated.iter().next() {
            let description = format!("parameter '{}' was sent more than once", name.escape_default());
            return Err(to_client((ErrorCode::InvalidRequest, description)));
        }
        let (challenge, scope, resource) =
            check_parameters(&client, req, &self.resource, &self.scopes).map_err(to_client)?;
        Ok(ValidRequest {
            client,
            redirect_uri,
            redirect_uri_explicit,
            scope_text: scope.to_string(),
            scope,
            state: req.state.clone(),
            challenge,
            resource,
        })
    }

    /// `valid` without the scopes of upstreams the policy does not let this person use (a scope that opens
    /// only such upstreams): the consent page neither shows nor grants them.
    async fn within_policy(&self, me: &SignedIn, mut valid: ValidRequest) -> Result<ValidRequest, sea_orm::DbErr> {
        let view = self.policy.view(Some(&me.user.id)).await?;
        let upstreams = self.upstreams.current();
        let kept: Vec<&str> = valid
            .scope
            .iter()
            .filter(|scope| {
                let opened: Vec<&str> = upstreams
                    .iter()
                    .filter(|u| u.enabled && u.scope.as_deref() == Some(*scope))
                    .map(|u| u.name.as_str())
                    .collect();
                opened.is_empty() || opened.iter().any(|name| view.allows(name, None).is_ok())
            })
            .collect();
        if kept.len() != valid.scope.iter().count() {
            valid.scope = Scope::parse(&kept.join(" ")).unwrap_or_default();
            valid.scope_text = valid.scope.to_string();
        }
        Ok(valid)
    }

    /// `GET /oauth/authorize`: the sign-in page, the consent page, or straight back to the client when the
    /// person already consented to this client, resource and scope.
    pub async fn begin(
        &self,
        jar: &CookieJar,
        client_ip: Option<IpAddr>,
        raw_query: &str,
        req: AuthorizationRequest,
    ) -> AuthorizeResponse {
        let valid = match self.validate(client_ip, &req, &repeated_parameters(raw_query), false).await {
            Ok(v) => v,
            Err(rejection) => return self.reject(rejection),
        };
        let me = match self.sessions.signed_in(jar).await {
            Ok(Some(me)) => me,
            Ok(None) => {
                let return_to = format!("{}/oauth/authorize?{raw_query}", self.base);
                return AuthorizeResponse::Page(Html(self.views.login(jar, &return_to)));
            }
            Err(e) => return self.page(e.into()),
        };
        let valid = match self.within_policy(&me, valid).await {
            Ok(valid) => valid,
            Err(e) => return self.page(e.into()),
        };
        // A remembered consent answers without asking only when the code goes to an https redirect URI: a
        // loopback or private-use redirect can be received by any local program that knows the client_id
        // (RFC 8252 §8.6), so those always ask.
        let remembered = valid.redirect_uri.starts_with("https://")
            && match self.store.find_consent(&me.user.id, &valid.client.id, &valid.resource).await {
                Ok(consent) => consent
                    .is_some_and(|c| Scope::parse(&c.scope).is_ok_and(|granted| valid.scope.is_subset_of(&granted))),
                Err(e) => return self.page(e.into()),
            };
        if remembered {
            return self.issue_code(&valid, &me).await;
        }
        AuthorizeResponse::Page(Html(self.consent_page(&me, &valid, &req)))
    }

    fn consent_page(&self, me: &SignedIn, valid: &ValidRequest, req: &AuthorizationRequest) -> String {
        let fields: Vec<(&'static str, String)> = [
            ("response_type", &req.response_type),
            ("client_id", &req.client_id),
            ("redirect_uri", &req.redirect_uri),
            ("scope", &req.scope),
            ("state", &req.state),
            ("code_challenge", &req.code_challenge),
            ("code_challenge_method", &req.code_challenge_method),
            ("resource", &req.resource),
        ]
        .into_iter()
        .filter_map(|(name, value)| value.clone().map(|v| (name, v)))
        .collect();
        let redirect = RedirectUri::parse(&valid.redirect_uri);
        let redirect_host = redirect.as_ref().map(|r| r.display_host()).unwrap_or_default();
        let csrf = me.csrf_token();
        let consent_mac = me.mac(CONSENT_MAC, &mac_values(valid));
        let document_host = valid.client.document_host();
        let localhost_only = document_host.is_some() && valid.client.redirect_uris.iter().all(|r| r.is_loopback());
        self.views.consent(&ConsentView {
            username: &me.user.username,
            client_name: valid.client.display_name(),
            client_id: &valid.client.id,
            unverified: valid.client.source.is_self_registered(),
            redirect_host: &redirect_host,
            redirect_uri: &valid.redirect_uri,
            loopback: redirect.is_ok_and(|r| r.is_loopback()),
            document_host: document_host.as_deref(),
            localhost_only,
            resource: &valid.resource,
            scopes: self.scopes.described(&valid.scope),
            fields,
            csrf_token: &csrf,
            consent_mac: &consent_mac,
        })
    }

    /// `POST /oauth/authorize`: the person's answer on the consent page.
    pub async fn decide(&self, jar: &CookieJar, client_ip: Option<IpAddr>, form: ConsentDecision) -> AuthorizeResponse {
        let me = match self.sessions.signed_in(jar).await {
            Ok(Some(me)) => me,
            Ok(None) => {
                return self.page(Refusal::new(
                    "You are signed out",
                    "Your session ended before you answered. Return to the application and start again.",
                ));
            }
            Err(e) => return self.page(e.into()),
        };
        if let Err(e) = me.check_csrf(form.csrf_token.as_deref()) {
            return self.page(e.into());
        }
        let valid = match self.validate(client_ip, &form.request, &HashSet::new(), true).await {
            Ok(v) => v,
            Err(rejection) => return self.reject(rejection),
        };
        let valid = match self.within_policy(&me, valid).await {
            Ok(valid) => valid,
            Err(e) => return self.page(e.into()),
        };
        // The decision is about exactly what the page showed: a form whose client, redirect URI, scope,
        // resource, state or PKCE challenge was changed after the page was rendered is refused.
        if !me.mac_matches(CONSENT_MAC, &mac_values(&valid), form.consent_mac.as_deref()) {
            return self.page(Refusal::new(
                "This form does not match the request",
                "The answer was not about the request this page showed. Return to the application and start again.",
            ));
        }
        let entry =
            AuditEntry { user_id: Some(&me.user.id), client_id: Some(&valid.client.id), ip: client_ip, detail: None };
        match form.decision.as_deref() {
            Some("allow") => {
                let scope = valid.scope.to_string();
                if let Err(e) = self.store.grant_consent(&me.user.id, &valid.client.id, &valid.resource, &scope).await {
                    return self.page(e.into());
                }
                tracing::info!(user_id = %me.user.id, client_id = %valid.client.id, %scope, "consent granted");
                self.store.audit(AuditKind::ConsentGranted, AuditEntry { detail: Some(&scope), ..entry }).await;
                self.issue_code(&valid, &me).await
            }
            Some("deny") => {
                tracing::info!(user_id = %me.user.id, client_id = %valid.client.id, "consent denied");
                self.store.audit(AuditKind::ConsentDenied, entry).await;
                self.reject(Rejection::ToClient {
                    redirect_uri: valid.redirect_uri,
                    code: ErrorCode::AccessDenied,
                    description: "the user denied the request".into(),
                    state: valid.state,
                    confirm: false,
                })
            }
            _ => self.page(Refusal::new("Invalid answer", "Choose Allow or Deny.")),
        }
    }

    /// Stores a single-use code bound to client, redirect URI, PKCE challenge, scope and resource, and
    /// sends the browser back with `code`, `state` and `iss`.
    async fn issue_code(&self, valid: &ValidRequest, me: &SignedIn) -> AuthorizeResponse {
        let code = random_token();
        let grant_id = uuid::Uuid::new_v4().to_string();
        let at = now();
        let grant = grant::Model {
            grant_id: grant_id.clone(),
            user_id: me.user.id.clone(),
            client_id: valid.client.id.clone(),
            resource: valid.resource.clone(),
            scope: valid.scope_text.clone(),
            created_at: at,
            revoked_at: None,
        };
        let model = authorization_code::Model {
            code_hash: sha256_hex(&code),
            client_id: valid.client.id.clone(),
            user_id: me.user.id.clone(),
            redirect_uri: valid.redirect_uri.clone(),
            redirect_uri_explicit: valid.redirect_uri_explicit,
            scope: valid.scope_text.clone(),
            resource: valid.resource.clone(),
            code_challenge: valid.challenge.as_str().to_owned(),
            family_id: grant_id,
            expires_at: at + self.code_ttl,
            used_at: None,
        };
        if let Err(e) = self.store.insert_code(grant, model).await {
            return self.page(e.into());
        }
        let mut params = vec![("code", code)];
        params.extend(valid.state.clone().map(|s| ("state", s)));
        params.push(("iss", self.issuer.clone()));
        AuthorizeResponse::Redirect(with_query(&valid.redirect_uri, &params))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::UnixTime;
    use crate::domain::client::{AuthMethod, GrantTypes, RegistrationSource};

    #[test]
    fn parameters_are_appended_to_an_existing_query() {
        assert_eq!(with_query("https://a.example/cb", &[("code", "x y".into())]), "https://a.example/cb?code=x+y");
        assert_eq!(
            with_query("https://a.example/cb?k=1", &[("state", "s".into())]),
            "https://a.example/cb?k=1&state=s"
        );
    }

    #[test]
    fn repeated_parameters_are_found() {
        let repeated = repeated_parameters("a=1&b=2&a=3&c");
        assert!(repeated.contains("a") && repeated.len() == 1);
    }

    fn client(grants: &[GrantType], scope: &str) -> Client {
        Client {
            id: "c".into(),
            name: "App".into(),
            redirect_uris: vec![RedirectUri::parse("https://app.example/cb").unwrap()],
            grant_types: GrantTypes::new(grants.iter().copied()),
            auth_method: AuthMethod::None,
            scope: Some(Scope::parse(scope).unwrap()),
            source: RegistrationSource::Dynamic,
            secret_hash: None,
            owner_user_id: None,
            registration_access_token_hash: None,
            metadata_url: None,
            metadata: "{}".into(),
            metadata_hash: None,
            disabled: false,
            created_at: UnixTime(0),
            expires_at: None,
        }
    }

    fn request(edit: impl FnOnce(&mut AuthorizationRequest)) -> AuthorizationRequest {
        let mut req = AuthorizationRequest {
            response_type: Some("code".into()),
            code_challenge: Some("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".into()),
            code_challenge_method: Some("S256".into()),
            ..Default::default()
        };
        edit(&mut req);
        req
    }

    #[test]
    fn the_parameters_of_a_trusted_clients_request_are_checked_without_io() {
        let resource = Resource::parse("https://mcp.example/mcp").unwrap();
        let app = client(&[GrantType::AuthorizationCode], "mcp:read mcp:write");
        let offered = ScopeCatalog::default();
        let (_, scope, aud) = check_parameters(&app, &request(|_| {}), &resource, &offered).unwrap();
        assert_eq!((scope.to_string().as_str(), aud.as_str()), ("mcp:read mcp:write", "https://mcp.example/mcp"));
        let refused = |edit: fn(&mut AuthorizationRequest)| {
            check_parameters(&app, &request(edit), &resource, &offered).unwrap_err().0
        };
        assert_eq!(refused(|r| r.response_type = Some("token".into())), ErrorCode::UnsupportedResponseType);
        assert_eq!(refused(|r| r.response_type = None), ErrorCode::InvalidRequest);
        assert_eq!(refused(|r| r.code_challenge_method = Some("plain".into())), ErrorCode::InvalidRequest);
        assert_eq!(refused(|r| r.scope = Some("admin".into())), ErrorCode::InvalidScope);
        assert_eq!(refused(|r| r.resource = Some("https://other.example/mcp".into())), ErrorCode::InvalidTarget);
        let narrow = client(&[GrantType::AuthorizationCode], "mcp:read");
        let wider = check_parameters(&narrow, &request(|r| r.scope = Some("mcp:write".into())), &resource, &offered);
        assert_eq!(wider.unwrap_err().0, ErrorCode::InvalidScope, "a client asks at most its registered scope");
        let no_code = client(&[GrantType::RefreshToken], "mcp:read");
        assert_eq!(
            check_parameters(&no_code, &request(|_| {}), &resource, &offered).unwrap_err().0,
            ErrorCode::UnauthorizedClient
        );
    }
}
