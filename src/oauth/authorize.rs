//! The authorization endpoint (RFC 6749 §4.1.1, OAuth 2.1 §4.1.1) with PKCE (RFC 7636), resource
//! indicators (RFC 8707) and the `iss` response parameter (RFC 9207).
//!
//! Order matters: the client and its redirect URI are checked first and a failure there is an HTML page,
//! never a redirect (RFC 6749 §4.1.2.1). Only then do errors go back to the client. The consent form
//! carries the original request and everything is validated again when it is submitted.
use std::collections::HashSet;
use std::net::IpAddr;

use poem::web::cookie::CookieJar;
use poem_openapi::payload::Html;
use poem_openapi::{ApiResponse, Object};
use serde::Deserialize;

use super::metadata_document::is_metadata_document_url;
use super::pkce::CodeChallenge;
use super::register::{RegistrationSource, registered_redirect_uris};
use super::scope::Scope;
use crate::crypto::{now, random_token, sha256_hex};
use crate::error::{ErrorCode, PageError};
use crate::pages::login_html;
use crate::pages::session::{SignedIn, signed_in};
use crate::pages::templates::{ConsentPage, LeavePage, render, render_error};
use crate::state::State;
use crate::store::{AuditEntry, AuditKind, authorization_code, client, grant};

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
    PageError::bad_request("Invalid authorization request", format!("The request could not be read: {err}")).into()
}

impl From<PageError> for AuthorizeResponse {
    fn from(e: PageError) -> AuthorizeResponse {
        let html = Html(render_error(&e.title, &e.message));
        if e.status.is_server_error() {
            AuthorizeResponse::ServerError(html)
        } else {
            AuthorizeResponse::BadRequest(html)
        }
    }
}

/// A request whose every part has been checked.
struct ValidRequest {
    client: client::Model,
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
    Page(PageError),
    /// RFC 6749 §4.1.2.1: tell the client through its redirect URI. With `confirm`, the person is shown the
    /// error and a link to follow instead of being sent there (see [`Rejection::into_response`]).
    ToClient { redirect_uri: String, code: ErrorCode, description: String, state: Option<String>, confirm: bool },
}

impl Rejection {
    /// A client the operator did not register is attacker-controlled (its redirect URI too), so an error
    /// found before the person has seen the consent page is not an automatic redirect: that would make
    /// this server's address a launderer for links to any site (RFC 9700 §4.11.2, MCP authorization "Open
    /// Redirection"). The person reads the error, sees the destination host, and may follow the link.
    fn into_response(self, state: &State) -> AuthorizeResponse {
        match self {
            Rejection::Page(e) => e.into(),
            Rejection::ToClient { redirect_uri, code, description, state: client_state, confirm } => {
                let mut params = vec![("error", code.as_str().to_owned()), ("error_description", description.clone())];
                params.extend(client_state.map(|s| ("state", s)));
                params.push(("iss", state.config.issuer.clone()));
                let target = with_query(&redirect_uri, &params);
                if !confirm {
                    return AuthorizeResponse::Redirect(target);
                }
                let host = super::redirect_uri::RedirectUri::parse(&redirect_uri)
                    .map(|r| r.display_host())
                    .unwrap_or_default();
                let message = format!("The application's request cannot be accepted: {description}.");
                AuthorizeResponse::BadRequest(Html(render(&LeavePage {
                    base: state.config.issuer_path(),
                    title: "This request cannot be completed",
                    message: &message,
                    host: &host,
                    href: &target,
                })))
            }
        }
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

/// Checks every part of the request. `consent_shown`: the person has seen the consent page for it (the
/// decision), so an error may go back to the client at once.
async fn validate(
    state: &State,
    client_ip: Option<IpAddr>,
    req: &AuthorizationRequest,
    repeated: &HashSet<String>,
    consent_shown: bool,
) -> Result<ValidRequest, Rejection> {
    let page = |title: &'static str, message: String| Rejection::Page(PageError::bad_request(title, message));
    if repeated.contains("client_id") || repeated.contains("redirect_uri") {
        return Err(page("Invalid authorization request", "client_id and redirect_uri must be sent once.".into()));
    }
    let client_id = req.client_id.as_deref().filter(|c| !c.is_empty()).ok_or_else(|| {
        page("Invalid authorization request", "The request names no client (client_id is missing).".into())
    })?;
    let unknown =
        || page("Unknown application", "The application that sent you here is not registered with this server.".into());
    let client = if is_metadata_document_url(client_id) {
        state.metadata_documents.client(state, client_id, client_ip).await.map_err(|e| {
            // The reason goes to the log only: telling an anonymous caller which check failed would make this
            // fetcher a probe of other hosts.
            tracing::info!(client_id, reason = %e, "client metadata document not usable");
            page(
                "Unknown application",
                "The application that sent you here names itself by a metadata document that could not be used. \
                 Try again later, or tell the application's maker."
                    .into(),
            )
        })?
    } else {
        state.store.find_client(client_id).await.map_err(|e| Rejection::Page(e.into()))?
    }
    .ok_or_else(unknown)?;
    let registered = registered_redirect_uris(&client);
    let (redirect_uri, redirect_uri_explicit) = match req.redirect_uri.as_deref() {
        Some(asked) if registered.iter().any(|r| r.matches(asked)) => (asked.to_owned(), true),
        Some(_) => return Err(page("Invalid redirect URI", "The application asked to send you to an address it did not register. For your safety you were not sent there.".into())),
        None if registered.len() == 1 => (registered[0].as_str().to_owned(), false),
        None => return Err(page("Invalid authorization request", "redirect_uri is required for this application.".into())),
    };

    let state_param = req.state.clone();
    let confirm = !consent_shown && client.registration_source != RegistrationSource::Operator.as_str();
    let to_client = |code: ErrorCode, description: &str| Rejection::ToClient {
        redirect_uri: redirect_uri.clone(),
        code,
        description: description.to_owned(),
        state: state_param.clone(),
        confirm,
    };
    if let Some(name) = repeated.iter().next() {
        return Err(to_client(
            ErrorCode::InvalidRequest,
            &format!("parameter '{}' was sent more than once", name.escape_default()),
        ));
    }
    match req.response_type.as_deref() {
        Some("code") => {}
        None => {
            return Err(to_client(ErrorCode::InvalidRequest, "response_type is required"));
        }
        Some(_) => {
            return Err(to_client(ErrorCode::UnsupportedResponseType, "only response_type=code is supported"));
        }
    }
    if !client.grant_types.split(' ').any(|g| g == "authorization_code") {
        return Err(to_client(ErrorCode::UnauthorizedClient, "this client may not use the authorization code grant"));
    }
    let challenge = CodeChallenge::parse(req.code_challenge.as_deref(), req.code_challenge_method.as_deref())
        .map_err(|e| to_client(ErrorCode::InvalidRequest, e))?;
    let allowed = Scope::parse(&client.scope).unwrap_or_default();
    let scope = match req.scope.as_deref().filter(|s| !s.trim().is_empty()) {
        None => allowed.clone(),
        Some(s) => Scope::parse(s).map_err(|e| to_client(ErrorCode::InvalidScope, &e))?,
    };
    if scope.is_empty() || !scope.is_subset_of(&allowed) {
        return Err(to_client(ErrorCode::InvalidScope, "the requested scope is not allowed for this client"));
    }
    let resource = match req.resource.as_deref() {
        None => state.config.resource.as_str().to_owned(),
        Some(r) if state.config.resource.is_named_by(r) => state.config.resource.as_str().to_owned(),
        Some(_) => {
            return Err(to_client(ErrorCode::InvalidTarget, "resource must be this MCP server's canonical URI"));
        }
    };
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

/// `GET /oauth/authorize`: the sign-in page, the consent page, or straight back to the client when the
/// person already consented to this client, resource and scope.
pub async fn begin(
    state: &State,
    jar: &CookieJar,
    client_ip: Option<IpAddr>,
    raw_query: &str,
    req: AuthorizationRequest,
) -> AuthorizeResponse {
    let valid = match validate(state, client_ip, &req, &repeated_parameters(raw_query), false).await {
        Ok(v) => v,
        Err(rejection) => return rejection.into_response(state),
    };
    let me = match signed_in(state, jar).await {
        Ok(Some(me)) => me,
        Ok(None) => {
            let return_to = format!("{}/oauth/authorize?{raw_query}", state.config.issuer_path());
            return AuthorizeResponse::Page(Html(login_html(state, jar, &return_to, "", None)));
        }
        Err(e) => return e.into(),
    };
    // A remembered consent answers without asking only when the code goes to an https redirect URI: a
    // loopback or private-use redirect can be received by any local program that knows the client_id
    // (RFC 8252 §8.6), so those always ask.
    let remembered = valid.redirect_uri.starts_with("https://")
        && match state.store.find_consent(&me.user.id, &valid.client.client_id, &valid.resource).await {
            Ok(consent) => {
                consent.is_some_and(|c| Scope::parse(&c.scope).is_ok_and(|granted| valid.scope.is_subset_of(&granted)))
            }
            Err(e) => return PageError::from(e).into(),
        };
    if remembered {
        return issue_code(state, &valid, &me).await;
    }
    AuthorizeResponse::Page(Html(consent_page(state, &me, &valid, &req)))
}

fn consent_page(state: &State, me: &SignedIn, valid: &ValidRequest, req: &AuthorizationRequest) -> String {
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
    let redirect = super::redirect_uri::RedirectUri::parse(&valid.redirect_uri);
    let redirect_host = redirect.as_ref().map(|r| r.display_host()).unwrap_or_default();
    let name = if valid.client.name.is_empty() { "An unnamed application" } else { valid.client.name.as_str() };
    let csrf = me.csrf_token();
    let consent_mac = me.mac(CONSENT_MAC, &mac_values(valid));
    let document_host = valid
        .client
        .metadata_url
        .as_deref()
        .and_then(|u| url::Url::parse(u).ok())
        .and_then(|u| u.host_str().map(str::to_owned));
    let localhost_only =
        document_host.is_some() && registered_redirect_uris(&valid.client).iter().all(|r| r.is_loopback());
    render(&ConsentPage {
        base: state.config.issuer_path(),
        username: &me.user.username,
        client_name: name,
        client_id: &valid.client.client_id,
        unverified: valid.client.registration_source != RegistrationSource::Operator.as_str(),
        redirect_host: &redirect_host,
        redirect_uri: &valid.redirect_uri,
        loopback: redirect.is_ok_and(|r| r.is_loopback()),
        document_host: document_host.as_deref(),
        localhost_only,
        resource: &valid.resource,
        scopes: valid.scope.described(),
        fields,
        csrf_token: &csrf,
        consent_mac: &consent_mac,
    })
}

/// The purpose of the consent page's MAC.
const CONSENT_MAC: &str = "consent";

/// What the consent decision is bound to: the validated request as the page showed it.
fn mac_values(valid: &ValidRequest) -> [Option<&str>; 6] {
    [
        Some(valid.client.client_id.as_str()),
        Some(valid.redirect_uri.as_str()),
        Some(valid.scope_text.as_str()),
        Some(valid.resource.as_str()),
        valid.state.as_deref(),
        Some(valid.challenge.as_str()),
    ]
}

/// `POST /oauth/authorize`: the person's answer on the consent page.
pub async fn decide(
    state: &State,
    jar: &CookieJar,
    client_ip: Option<IpAddr>,
    form: ConsentDecision,
) -> AuthorizeResponse {
    let me = match signed_in(state, jar).await {
        Ok(Some(me)) => me,
        Ok(None) => {
            return PageError::bad_request(
                "You are signed out",
                "Your session ended before you answered. Return to the application and start again.",
            )
            .into();
        }
        Err(e) => return e.into(),
    };
    if let Err(e) = me.check_csrf(form.csrf_token.as_deref()) {
        return e.into();
    }
    let valid = match validate(state, client_ip, &form.request, &HashSet::new(), true).await {
        Ok(v) => v,
        Err(rejection) => return rejection.into_response(state),
    };
    // The decision is about exactly what the page showed: a form whose client, redirect URI, scope,
    // resource, state or PKCE challenge was changed after the page was rendered is refused.
    if !me.mac_matches(CONSENT_MAC, &mac_values(&valid), form.consent_mac.as_deref()) {
        return PageError::bad_request(
            "This form does not match the request",
            "The answer was not about the request this page showed. Return to the application and start again.",
        )
        .into();
    }
    match form.decision.as_deref() {
        Some("allow") => {
            let scope = valid.scope.to_string();
            if let Err(e) =
                state.store.grant_consent(&me.user.id, &valid.client.client_id, &valid.resource, &scope).await
            {
                return PageError::from(e).into();
            }
            tracing::info!(user_id = %me.user.id, client_id = %valid.client.client_id, %scope, "consent granted");
            let entry = AuditEntry {
                user_id: Some(&me.user.id),
                client_id: Some(&valid.client.client_id),
                ip: client_ip,
                detail: Some(&scope),
            };
            state.store.audit(AuditKind::ConsentGranted, entry).await;
            issue_code(state, &valid, &me).await
        }
        Some("deny") => {
            tracing::info!(user_id = %me.user.id, client_id = %valid.client.client_id, "consent denied");
            let entry = AuditEntry {
                user_id: Some(&me.user.id),
                client_id: Some(&valid.client.client_id),
                ip: client_ip,
                detail: None,
            };
            state.store.audit(AuditKind::ConsentDenied, entry).await;
            Rejection::ToClient {
                redirect_uri: valid.redirect_uri,
                code: ErrorCode::AccessDenied,
                description: "the user denied the request".into(),
                state: valid.state,
                confirm: false,
            }
            .into_response(state)
        }
        _ => PageError::bad_request("Invalid answer", "Choose Allow or Deny.").into(),
    }
}

/// Stores a single-use code bound to client, redirect URI, PKCE challenge, scope and resource, and
/// sends the browser back with `code`, `state` and `iss`.
async fn issue_code(state: &State, valid: &ValidRequest, me: &SignedIn) -> AuthorizeResponse {
    let code = random_token();
    let grant_id = uuid::Uuid::new_v4().to_string();
    let grant = grant::Model {
        grant_id: grant_id.clone(),
        user_id: me.user.id.clone(),
        client_id: valid.client.client_id.clone(),
        resource: valid.resource.clone(),
        scope: valid.scope.to_string(),
        created_at: now(),
        revoked_at: None,
    };
    let model = authorization_code::Model {
        code_hash: sha256_hex(&code),
        client_id: valid.client.client_id.clone(),
        user_id: me.user.id.clone(),
        redirect_uri: valid.redirect_uri.clone(),
        redirect_uri_explicit: valid.redirect_uri_explicit,
        scope: valid.scope.to_string(),
        resource: valid.resource.clone(),
        code_challenge: valid.challenge.as_str().to_owned(),
        family_id: grant_id,
        expires_at: now() + state.config.auth_code_ttl.as_secs() as i64,
        used_at: None,
    };
    if let Err(e) = state.store.insert_code(grant, model).await {
        return PageError::from(e).into();
    }
    let mut params = vec![("code", code)];
    params.extend(valid.state.clone().map(|s| ("state", s)));
    params.push(("iss", state.config.issuer.clone()));
    AuthorizeResponse::Redirect(with_query(&valid.redirect_uri, &params))
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
