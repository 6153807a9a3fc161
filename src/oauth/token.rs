//! The token endpoint (RFC 6749 §3.2, §4.1.3, §6; OAuth 2.1 §4.1.3, §4.3): the authorization-code and
//! refresh-token grants, issuing RFC 9068 JWT access tokens and rotating refresh tokens.
use std::net::IpAddr;
use std::time::Duration;

use poem_openapi::Object;
use serde::Deserialize;

use super::client_auth::{ClientAuthenticator, FormCredentials, PresentedClient};
use super::error::{ErrorCode, OAuthError};
use super::id_jag::{Asserted, EnterpriseAssertions};
use crate::clock::now;
use crate::crypto::{open_for, random_token, seal_for, sha256_hex};
use crate::domain::client::{Client, GrantType, RegistrationSource};
use crate::domain::identity_providers::{PersonRefused, person_for};
use crate::domain::pkce::{CodeChallenge, is_well_formed_verifier};
use crate::domain::resource::Resource;
use crate::domain::scope::{Scope, ScopeCatalog};
use crate::domain::tokens::{AccessTokens, Grant};
use crate::metrics::Metrics;
use crate::store::{AuditEntry, AuditKind, Store, authorization_code, grant, refresh_token, user};

/// The token endpoint, revocation and introspection: everything that issues, rotates or describes tokens.
#[derive(Clone)]
pub struct TokenService {
    pub(crate) store: Store,
    pub(crate) tokens: AccessTokens,
    pub(crate) clients: ClientAuthenticator,
    pub(crate) metrics: Metrics,
    /// The canonical URI of this MCP server: the only resource tokens are issued for.
    pub(crate) resource: Resource,
    pub(crate) issuer: String,
    pub(crate) lifetimes: TokenLifetimes,
    /// Every scope offered: what a client credentials request may name.
    pub(crate) scopes: ScopeCatalog,
    /// `DCR_CLIENT_CREDENTIALS`: while off, anonymously registered machine clients get no token either.
    pub(crate) dynamic_machine_clients: bool,
    /// Checks ID-JAG assertions (the jwt-bearer grant) against the trusted identity providers.
    pub(crate) enterprise: EnterpriseAssertions,
}

/// How long what the token endpoint issues lives.
#[derive(Debug, Clone, Copy)]
pub struct TokenLifetimes {
    pub access_token: Duration,
    pub refresh_token: Duration,
    /// A rotated refresh token presented again this soon, while its successor is unused, gets that same
    /// successor back (a retry, two racing requests); zero turns it off.
    pub refresh_grace: Duration,
}

/// A token request (`application/x-www-form-urlencoded`).
#[derive(Debug, Object, Deserialize)]
pub struct TokenRequest {
    /// `authorization_code`, `refresh_token` or `client_credentials`.
    pub grant_type: String,
    /// The authorization code (authorization_code grant).
    pub code: Option<String>,
    /// The redirect URI used in the authorization request (authorization_code grant).
    pub redirect_uri: Option<String>,
    /// The PKCE code verifier (authorization_code grant, RFC 7636).
    pub code_verifier: Option<String>,
    /// The refresh token (refresh_token grant).
    pub refresh_token: Option<String>,
    /// A narrower scope than granted (refresh_token grant); the scopes asked for (client_credentials grant).
    pub scope: Option<String>,
    /// The resource the token is for (RFC 8707); must be the one the grant was made for.
    pub resource: Option<String>,
    /// The client, for public clients and `client_secret_post`.
    pub client_id: Option<String>,
    /// The client secret, for `client_secret_post`.
    pub client_secret: Option<String>,
    /// The Identity Assertion JWT Authorization Grant (ID-JAG) from a trusted enterprise identity provider
    /// (`urn:ietf:params:oauth:grant-type:jwt-bearer` grant).
    pub assertion: Option<String>,
    /// `urn:ietf:params:oauth:client-assertion-type:jwt-bearer`, for `private_key_jwt` (RFC 7523 §2.2).
    pub client_assertion_type: Option<String>,
    /// The signed client assertion, for `private_key_jwt`; `client_id` may then be omitted.
    pub client_assertion: Option<String>,
}

impl TokenRequest {
    /// The client credentials the form carried.
    pub fn credentials(&self) -> FormCredentials<'_> {
        FormCredentials {
            client_id: self.client_id.as_deref(),
            client_secret: self.client_secret.as_deref(),
            client_assertion_type: self.client_assertion_type.as_deref(),
            client_assertion: self.client_assertion.as_deref(),
        }
    }
}

/// A successful token response (RFC 6749 §5.1).
#[derive(Debug, Object)]
pub struct TokenResponseBody {
    /// A JWT access token (RFC 9068).
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Lifetime of the access token in seconds.
    pub expires_in: u64,
    /// A new refresh token; the one presented (if any) is now used up.
    #[oai(skip_serializing_if_is_none)]
    pub refresh_token: Option<String>,
    /// The scope of the access token.
    pub scope: String,
}

/// `POST /oauth/token` (RFC 6749 §3.2), counted in the metrics by grant type or error code.
pub async fn token(
    svc: &TokenService,
    authorization: Option<&str>,
    ip: Option<IpAddr>,
    req: TokenRequest,
) -> Result<TokenResponseBody, OAuthError> {
    let grant_type = GrantType::parse(&req.grant_type).unwrap_or(GrantType::AuthorizationCode).as_str();
    let answer = authenticate_and_redeem(svc, authorization, ip, req).await;
    match &answer {
        Ok(_) => svc.metrics.token_issued(grant_type),
        Err(e) => svc.metrics.token_error(e.code.as_str()),
    }
    answer
}

async fn authenticate_and_redeem(
    svc: &TokenService,
    authorization: Option<&str>,
    ip: Option<IpAddr>,
    req: TokenRequest,
) -> Result<TokenResponseBody, OAuthError> {
    let presented = PresentedClient::from_request(authorization, req.credentials())?;
    // Failed client authentication counts against the address; invalid grants against the client at that
    // address (see `Limits`). A blocked key is refused before any secret is checked.
    let client = svc.clients.authenticate(&presented, ip).await?;
    let answer = redeem_grant(svc, &client, ip, req).await;
    if answer.as_ref().is_err_and(|e| e.code == ErrorCode::InvalidGrant) {
        svc.clients.grant_failed(ip, &client.id);
    }
    answer
}

async fn redeem_grant(
    svc: &TokenService,
    client: &Client,
    ip: Option<IpAddr>,
    req: TokenRequest,
) -> Result<TokenResponseBody, OAuthError> {
    match GrantType::parse(&req.grant_type) {
        Some(grant) if !client.grant_types.allows(grant) => {
            Err(OAuthError::new(ErrorCode::UnauthorizedClient, "this client is not registered for that grant type"))
        }
        Some(GrantType::AuthorizationCode) => redeem_authorization_code(svc, client, ip, req).await,
        Some(GrantType::RefreshToken) => refresh(svc, client, ip, req).await,
        Some(GrantType::ClientCredentials) => client_credentials(svc, client, ip, req).await,
        Some(GrantType::JwtBearer) => enterprise_assertion(svc, client, ip, req).await,
        None => Err(OAuthError::new(
            ErrorCode::UnsupportedGrantType,
            "grant_type must be authorization_code, refresh_token, client_credentials or \
             urn:ietf:params:oauth:grant-type:jwt-bearer",
        )),
    }
}

/// RFC 6749 §4.1.3 with PKCE (RFC 7636 §4.6) and resource binding (RFC 8707 §2.2).
async fn redeem_authorization_code(
    svc: &TokenService,
    client: &Client,
    ip: Option<IpAddr>,
    req: TokenRequest,
) -> Result<TokenResponseBody, OAuthError> {
    let code =
        req.code.as_deref().filter(|c| !c.is_empty()).ok_or_else(|| OAuthError::invalid_request("code is required"))?;
    let verifier =
        req.code_verifier.as_deref().ok_or_else(|| OAuthError::invalid_request("code_verifier is required (PKCE)"))?;
    // A malformed request is refused before the code is touched; a well-formed wrong verifier spends it.
    if !is_well_formed_verifier(verifier) {
        return Err(OAuthError::invalid_request("code_verifier must be 43 to 128 characters of A-Z a-z 0-9 - . _ ~"));
    }
    let code_hash = sha256_hex(code);
    let Some(grant) = svc.store.redeem_code(&code_hash, &client.id).await? else {
        // RFC 6749 §4.1.2 / RFC 9700 §4.2.4: a second redemption revokes what the first one issued.
        if let Some(used) =
            svc.store.find_code(&code_hash).await?.filter(|c| c.client_id == client.id && c.used_at.is_some())
        {
            revoke_replayed(svc, Replayed::Code, &used.family_id, &used.user_id, &client.id, ip).await?;
        }
        return Err(OAuthError::invalid_grant("the authorization code is invalid, expired or already used"));
    };
    check_code_bindings(svc, &grant, &req, verifier)?;
    if client.expires_at.is_some() {
        svc.store.mark_client_used(&client.id).await?;
    }
    let scope = grant.scope.clone();
    let refresh_token = first_refresh_token(svc, client, &grant).await?;
    access_token_response(svc, client, &grant.user_id, &scope, &grant.resource, &grant.family_id, refresh_token)
}

/// Everything the code is bound to: lifetime, redirect URI, PKCE verifier, resource.
fn check_code_bindings(
    svc: &TokenService,
    grant: &authorization_code::Model,
    req: &TokenRequest,
    verifier: &str,
) -> Result<(), OAuthError> {
    if grant.expires_at <= now() {
        return Err(OAuthError::invalid_grant("the authorization code has expired"));
    }
    match req.redirect_uri.as_deref() {
        Some(sent) if sent == grant.redirect_uri => {}
        None if !grant.redirect_uri_explicit => {}
        None => {
            return Err(OAuthError::invalid_request(
                "redirect_uri is required: it was part of the authorization request",
            ));
        }
        Some(_) => {
            return Err(OAuthError::invalid_grant("redirect_uri does not match the authorization request"));
        }
    }
    if !CodeChallenge::from_stored(grant.code_challenge.clone()).is_satisfied_by(verifier) {
        return Err(OAuthError::invalid_grant("code_verifier does not match the code_challenge"));
    }
    check_resource(svc, req.resource.as_deref(), &grant.resource)
}

fn check_resource(svc: &TokenService, requested: Option<&str>, granted: &str) -> Result<(), OAuthError> {
    match requested {
        Some(r) if !(svc.resource.is_named_by(r) && svc.resource.as_str() == granted) => {
            Err(OAuthError::new(ErrorCode::InvalidTarget, "resource does not match the grant"))
        }
        _ => Ok(()),
    }
}

/// A grant without a redirect (client credentials, jwt-bearer): a `resource` sent must name this MCP server.
fn check_resource_named(svc: &TokenService, requested: Option<&str>) -> Result<(), OAuthError> {
    match requested {
        Some(resource) if !svc.resource.is_named_by(resource) => Err(OAuthError::new(
            ErrorCode::InvalidTarget,
            format!("resource must be this MCP server, {}", svc.resource.as_str()),
        )),
        _ => Ok(()),
    }
}

/// What a client may get without a consent page: what it registered and the server still offers (an
/// upstream's scope goes with the upstream), or everything offered when it registered no scope.
fn allowed_scope(svc: &TokenService, client: &Client) -> Scope {
    let offered = svc.scopes.all();
    match &client.scope {
        Some(registered) => registered.intersection(&offered),
        None => offered,
    }
}

/// RFC 6749 §4.4 (OAuth 2.1 §4.2): a confidential client, authenticated above, gets a token that acts for
/// itself (`sub` = the client, RFC 9068 §2.2) under its machine grant, so revoking its machine access ends
/// every such token at once. The scope is what it asked for, within what it registered (default: all it
/// registered, or every scope offered when it registered none); no refresh token (RFC 6749 §4.4.3).
async fn client_credentials(
    svc: &TokenService,
    client: &Client,
    ip: Option<IpAddr>,
    req: TokenRequest,
) -> Result<TokenResponseBody, OAuthError> {
    if !client.auth_method.is_confidential() {
        return Err(OAuthError::new(ErrorCode::UnauthorizedClient, "client_credentials is for confidential clients"));
    }
    if client.source == RegistrationSource::Dynamic && !svc.dynamic_machine_clients {
        return Err(OAuthError::new(
            ErrorCode::UnauthorizedClient,
            "this server no longer serves anonymously registered machine clients (DCR_CLIENT_CREDENTIALS)",
        ));
    }
    check_resource_named(svc, req.resource.as_deref())?;
    let allowed = allowed_scope(svc, client);
    if allowed.is_empty() {
        return Err(OAuthError::new(ErrorCode::InvalidScope, "no scope this client registered is offered any more"));
    }
    let scope = match req.scope.as_deref().filter(|s| !s.trim().is_empty()) {
        None => allowed.clone(),
        Some(asked) => match svc.scopes.parse_known(asked) {
            Ok(asked) if asked.is_subset_of(&allowed) => asked,
            Ok(_) => {
                return Err(OAuthError::new(
                    ErrorCode::InvalidScope,
                    format!("this client may ask for at most: {allowed}"),
                ));
            }
            Err(e) => return Err(OAuthError::new(ErrorCode::InvalidScope, e)),
        },
    };
    let resource = svc.resource.as_str();
    let (scope, allowed) = (scope.to_string(), allowed.to_string());
    let grant_id = svc.store.machine_grant(&client.id, resource, &allowed).await?;
    // Live as the guard sees it: a client from the apps page stops with the person who registered it.
    if !svc.store.grant_is_active(&grant_id).await? {
        return Err(OAuthError::new(ErrorCode::UnauthorizedClient, "this client's machine access has ended"));
    }
    if client.expires_at.is_some() {
        svc.store.mark_client_used(&client.id).await?;
    }
    let detail = format!("client credentials, scope {scope}");
    let entry = AuditEntry { user_id: None, client_id: Some(&client.id), ip, detail: Some(&detail) };
    svc.store.audit(AuditKind::MachineTokenIssued, entry).await;
    access_token_response(svc, client, &client.id, &scope, resource, &grant_id, None)
}

/// The jwt-bearer grant with an ID-JAG (MCP Enterprise-Managed Authorization): the person the enterprise
/// identity provider vouches for (found by its `iss` + `sub`, or given an account now where the provider
/// allows it), the scope that was asked, asserted and allowed all at once, a token that lives no longer
/// than the assertion, and no refresh token. No consent page: the provider's policy decided, and the audit
/// log says so.
async fn enterprise_assertion(
    svc: &TokenService,
    client: &Client,
    ip: Option<IpAddr>,
    req: TokenRequest,
) -> Result<TokenResponseBody, OAuthError> {
    if !client.auth_method.is_confidential() {
        return Err(OAuthError::new(ErrorCode::UnauthorizedClient, "the jwt-bearer grant is for confidential clients"));
    }
    check_resource_named(svc, req.resource.as_deref())?;
    let assertion = req
        .assertion
        .as_deref()
        .filter(|a| !a.is_empty())
        .ok_or_else(|| OAuthError::invalid_request("assertion is required"))?;
    let asserted = svc.enterprise.verify(assertion, &client.id).await?;
    let user = person_of(svc, &asserted).await?;
    let allowed = allowed_scope(svc, client);
    let asserted_scope =
        Scope::parse(&asserted.scope).map_err(|_| OAuthError::invalid_grant("the assertion's scope cannot be read"))?;
    let asked = match req.scope.as_deref().filter(|s| !s.trim().is_empty()) {
        Some(asked) => Scope::parse(asked).map_err(|e| OAuthError::new(ErrorCode::InvalidScope, e))?,
        None => asserted_scope.clone(),
    };
    let scope = asked.intersection(&asserted_scope).intersection(&allowed);
    if scope.is_empty() {
        return Err(OAuthError::new(
            ErrorCode::InvalidScope,
            "no scope is both asked for, allowed by the identity provider's assertion and allowed for this client",
        ));
    }
    let remaining = asserted.expires_at.seconds() - now().seconds();
    let ttl = svc.lifetimes.access_token.min(Duration::from_secs(u64::try_from(remaining).unwrap_or(0)));
    if ttl.is_zero() {
        return Err(OAuthError::invalid_grant("the assertion has expired"));
    }
    let resource = svc.resource.as_str();
    let scope = scope.to_string();
    let grant_id = svc.store.enterprise_grant(&user.id, &client.id, resource, &scope).await?;
    if client.expires_at.is_some() {
        svc.store.mark_client_used(&client.id).await?;
    }
    let detail = format!(
        "ID-JAG from identity provider {}: its policy is the consent (no consent page); scope {scope}",
        asserted.provider.name
    );
    let entry = AuditEntry { user_id: Some(&user.id), client_id: Some(&client.id), ip, detail: Some(&detail) };
    svc.store.audit(AuditKind::EnterpriseTokenIssued, entry).await;
    let grant =
        Grant { subject: &user.id, client_id: &client.id, scope: &scope, audience: resource, grant_id: &grant_id };
    let (access_token, _) = svc.tokens.issue(grant, ttl).map_err(OAuthError::internal)?;
    Ok(TokenResponseBody {
        access_token,
        token_type: "Bearer".into(),
        expires_in: ttl.as_secs(),
        refresh_token: None,
        scope,
    })
}

/// The account an ID-JAG's person has here (see [`person_for`]): the assertion's email counts unless the
/// provider said it is not verified.
async fn person_of(svc: &TokenService, asserted: &Asserted) -> Result<user::Model, OAuthError> {
    let vouched = asserted.email_verified != Some(false);
    person_for(&svc.store, &asserted.provider, &asserted.subject, asserted.email.as_deref(), vouched, None)
        .await
        .map_err(|e| match e {
            PersonRefused::Db(e) => OAuthError::from(e),
            PersonRefused::NotAllowed => OAuthError::invalid_grant(
                "nobody here is linked to this person, and the identity provider may not add accounts for them \
                 (its --allowed-domains or --allow-signup)",
            ),
            PersonRefused::Disabled => OAuthError::invalid_grant("this person's account is disabled"),
        })
}

/// RFC 6749 §6 with rotation (OAuth 2.1 §4.3.1, RFC 9700 §4.14.2): every use returns a new refresh token,
/// and presenting a used one revokes the whole family, with one exception for harmless races: within
/// `REFRESH_GRACE_SECS` of the rotation, while its successor is still unused, the same successor is
/// handed out again (never a second one).
async fn refresh(
    svc: &TokenService,
    client: &Client,
    ip: Option<IpAddr>,
    req: TokenRequest,
) -> Result<TokenResponseBody, OAuthError> {
    let presented = req
        .refresh_token
        .as_deref()
        .filter(|t| !t.is_empty())
        .ok_or_else(|| OAuthError::invalid_request("refresh_token is required"))?;
    let token_hash = sha256_hex(presented);
    // The request is checked against the token's grant before the token is used up: a refused request
    // (another resource, a wider scope) leaves the client its refresh token (RFC 6749 §5.2).
    let acceptable = |token: &refresh_token::Model| {
        check_resource(svc, req.resource.as_deref(), &token.resource)?;
        narrowed_scope(&token.scope, req.scope.as_deref()).map(drop)
    };
    let successor = random_token();
    let sealed = seal_for(SUCCESSOR_PURPOSE, presented, &successor);
    let ttl = svc.lifetimes.refresh_token;
    let rotated = svc
        .store
        .rotate_refresh_token(&token_hash, &client.id, &sha256_hex(&successor), &sealed, ttl, acceptable)
        .await?;
    let (old, successor) = match rotated {
        Some(old) => (old, successor),
        // Used already: a retry within the grace window gets the same successor, if the request is
        // acceptable; anything else is reuse, and the grant is revoked whatever the request asked for.
        None => match retry_within_grace(svc, client, ip, &token_hash, presented).await? {
            Some(again) => {
                acceptable(&again.0)?;
                again
            }
            None => {
                return Err(OAuthError::invalid_grant(
                    "the refresh token is invalid, expired, revoked or already used",
                ));
            }
        },
    };
    let scope = narrowed_scope(&old.scope, req.scope.as_deref())?;
    access_token_response(svc, client, &old.user_id, &scope.to_string(), &old.resource, &old.family_id, Some(successor))
}

const SUCCESSOR_PURPOSE: &str = "refresh-token-successor";

/// The scope of the new access token: the granted scope, or a narrower one the client asked for.
fn narrowed_scope(granted: &str, asked: Option<&str>) -> Result<Scope, OAuthError> {
    let granted = Scope::parse(granted)
        .map_err(|_| OAuthError::invalid_grant("the grant's scope cannot be read; authorize again"))?;
    match asked {
        None => Ok(granted),
        Some(s) => match Scope::parse(s) {
            Ok(asked) if !asked.is_empty() && asked.is_subset_of(&granted) => Ok(asked),
            _ => Err(OAuthError::new(ErrorCode::InvalidScope, "scope may only narrow the granted scope")),
        },
    }
}

/// A refresh token that lost the rotation race: the same successor again if the rotation happened within
/// the grace window and the successor is still unused; otherwise it is reuse, and the grant is revoked.
async fn retry_within_grace(
    svc: &TokenService,
    client: &Client,
    ip: Option<IpAddr>,
    token_hash: &str,
    presented: &str,
) -> Result<Option<(refresh_token::Model, String)>, OAuthError> {
    let Some(old) = svc.store.find_refresh_token(token_hash).await?.filter(|t| t.client_id == client.id) else {
        return Ok(None);
    };
    let (Some(used_at), None) = (old.used_at, old.revoked_at) else {
        return Ok(None);
    };
    let grace = svc.lifetimes.refresh_grace;
    let successor_unused = match old.successor_hash.as_deref() {
        Some(hash) => {
            svc.store.find_refresh_token(hash).await?.is_some_and(|s| s.used_at.is_none() && s.revoked_at.is_none())
        }
        None => false,
    };
    let again = old.successor_sealed.as_deref().and_then(|sealed| open_for(SUCCESSOR_PURPOSE, presented, sealed));
    match again {
        Some(successor)
            if now().since(used_at) < grace
                && successor_unused
                && svc.store.grant_is_active(&old.family_id).await? =>
        {
            tracing::info!(client_id = %client.id, "refresh retried within the grace window; same successor returned");
            Ok(Some((old, successor)))
        }
        _ => {
            revoke_replayed(svc, Replayed::RefreshToken, &old.family_id, &old.user_id, &client.id, ip).await?;
            Ok(None)
        }
    }
}

/// What was presented a second time.
#[derive(Clone, Copy)]
enum Replayed {
    Code,
    RefreshToken,
}

/// A code redeemed again (RFC 6749 §4.1.2) or a rotated refresh token presented again (RFC 9700 §4.14.2):
/// the grant is revoked, and the event counted, logged and audited.
async fn revoke_replayed(
    svc: &TokenService,
    what: Replayed,
    grant_id: &str,
    user_id: &str,
    client_id: &str,
    ip: Option<IpAddr>,
) -> Result<(), OAuthError> {
    let (metric, kind, message) = match what {
        Replayed::Code => ("code_replay", AuditKind::CodeReplayed, "authorization code replayed"),
        Replayed::RefreshToken => ("refresh_reuse", AuditKind::RefreshTokenReused, "refresh token reused"),
    };
    let revoked = svc.store.revoke_grant(grant_id).await?;
    svc.metrics.grant_revoked(metric);
    tracing::warn!(%client_id, revoked, "{message}; its grant is revoked");
    let detail = Some("the grant was revoked");
    svc.store.audit(kind, AuditEntry { user_id: Some(user_id), client_id: Some(client_id), ip, detail }).await;
    Ok(())
}

/// `mcp-gateway token mint`: an access token for operators and scripts, under a grant of its own (so
/// it can be revoked like any other), signed exactly as the token endpoint signs.
pub async fn mint_for_operator(
    svc: &TokenService,
    username: &str,
    client_id: &str,
    scope: &str,
    ttl: Duration,
    with_refresh_token: bool,
) -> Result<(String, Option<String>), OAuthError> {
    let user = svc
        .store
        .find_user_by_username(&username.to_ascii_lowercase())
        .await?
        .filter(|u| !u.disabled)
        .ok_or_else(|| OAuthError::invalid_request(format!("no active user named {username}")))?;
    let client = svc
        .clients
        .find(client_id)
        .await?
        .ok_or_else(|| OAuthError::new(ErrorCode::InvalidClient, format!("no client {client_id}")))?;
    let scope = Scope::parse(scope).map_err(|e| OAuthError::new(ErrorCode::InvalidScope, e))?;
    if scope.is_empty() {
        return Err(OAuthError::new(ErrorCode::InvalidScope, "name at least one scope"));
    }
    let resource = svc.resource.as_str();
    let grant_id = uuid::Uuid::new_v4().to_string();
    svc.store
        .insert_grant(grant::Model {
            grant_id: grant_id.clone(),
            user_id: user.id.clone(),
            client_id: client.id.clone(),
            resource: resource.to_owned(),
            scope: scope.to_string(),
            created_at: now(),
            revoked_at: None,
        })
        .await?;
    let scope = scope.to_string();
    let grant =
        Grant { subject: &user.id, client_id: &client.id, scope: &scope, audience: resource, grant_id: &grant_id };
    let (token, _) = svc.tokens.issue(grant, ttl).map_err(OAuthError::internal)?;
    let refresh_token = match with_refresh_token {
        true => new_refresh_token(svc, &client, &grant_id, &user.id, &scope, resource)
            .await?
            .ok_or_else(|| OAuthError::new(ErrorCode::UnauthorizedClient, "the client may not use refresh tokens"))?
            .into(),
        false => None,
    };
    Ok((token, refresh_token))
}

/// Starts the refresh-token family of a new grant, when the client may refresh.
async fn first_refresh_token(
    svc: &TokenService,
    client: &Client,
    grant: &authorization_code::Model,
) -> Result<Option<String>, OAuthError> {
    new_refresh_token(svc, client, &grant.family_id, &grant.user_id, &grant.scope, &grant.resource).await
}

/// A new refresh token in the grant `family_id`, if the client may use refresh tokens.
async fn new_refresh_token(
    svc: &TokenService,
    client: &Client,
    family_id: &str,
    user_id: &str,
    scope: &str,
    resource: &str,
) -> Result<Option<String>, OAuthError> {
    if !client.grant_types.allows(GrantType::RefreshToken) {
        return Ok(None);
    }
    let raw = random_token();
    let issued_at = now();
    svc.store
        .insert_refresh_token(refresh_token::Model {
            token_hash: sha256_hex(&raw),
            family_id: family_id.to_owned(),
            client_id: client.id.clone(),
            user_id: user_id.to_owned(),
            scope: scope.to_owned(),
            resource: resource.to_owned(),
            issued_at,
            expires_at: issued_at + svc.lifetimes.refresh_token,
            used_at: None,
            revoked_at: None,
            successor_hash: None,
            successor_sealed: None,
        })
        .await?;
    Ok(Some(raw))
}

/// Signs the access token and builds the token response (RFC 6749 §5.1).
fn access_token_response(
    svc: &TokenService,
    client: &Client,
    user_id: &str,
    scope: &str,
    resource: &str,
    grant_id: &str,
    refresh_token: Option<String>,
) -> Result<TokenResponseBody, OAuthError> {
    let ttl = svc.lifetimes.access_token;
    let grant = Grant { subject: user_id, client_id: &client.id, scope, audience: resource, grant_id };
    let (access_token, _) = svc.tokens.issue(grant, ttl).map_err(OAuthError::internal)?;
    Ok(TokenResponseBody {
        access_token,
        token_type: "Bearer".into(),
        expires_in: ttl.as_secs(),
        refresh_token,
        scope: scope.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refresh_may_narrow_the_granted_scope_but_never_widen_it() {
        let granted = "mcp:read mcp:write";
        assert_eq!(narrowed_scope(granted, None).unwrap().to_string(), granted);
        assert_eq!(narrowed_scope(granted, Some("mcp:read")).unwrap().to_string(), "mcp:read");
        assert_eq!(narrowed_scope("mcp:read", Some("mcp:read mcp:write")).unwrap_err().code, ErrorCode::InvalidScope);
        assert_eq!(narrowed_scope(granted, Some("")).unwrap_err().code, ErrorCode::InvalidScope, "not empty");
        assert_eq!(narrowed_scope(granted, Some("admin")).unwrap_err().code, ErrorCode::InvalidScope);
        assert!(narrowed_scope("files mcp:read", None).is_ok(), "an upstream's scope refreshes like any other");
        let unreadable = narrowed_scope("mcp:read a\\b", None).unwrap_err();
        assert_eq!(
            unreadable.code,
            ErrorCode::InvalidGrant,
            "a grant whose stored scope cannot be read must authorize again"
        );
    }
}
