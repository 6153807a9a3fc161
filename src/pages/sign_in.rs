//! "Sign in with NAME": the OpenID Connect authorization code flow at an identity provider the operator
//! added with `--client-id`. The browser carries the flow in a sealed, short-lived cookie (`state`, `nonce`
//! and the PKCE verifier), so the way back works on any instance and only in the browser that set out; the ID
//! token is verified against the provider's keys with pinned algorithms, its issuer, audience, lifetime and
//! `nonce`. The person is found by the provider's `iss` + `sub`, or gets an account where the provider may add
//! them; their groups are refreshed from the provider's claim.
use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::Validation;
use poem::http::StatusCode;
use poem::web::cookie::CookieJar;
use poem::web::{Data, Form, Path, Query};
use poem::{Response, handler};
use serde::{Deserialize, Serialize};
use url::Url;

use super::error::PageError;
use super::{Pages, account, see_other};
use crate::clock::now;
use crate::crypto::{random_token, sha256_b64, sha256_hex};
use crate::domain::client_keys::assertion_algorithm;
use crate::domain::identity_providers::{PersonRefused, person_for};
use crate::domain::sessions::{Visitor, safe_return_to};
use crate::limits::ClientAddress;
use crate::store::{AuditEntry, AuditKind, identity_provider};

/// The cookie that carries a sign-in under way.
const FLOW_COOKIE: &str = "mcpgw_idp";
/// How long a person has to come back from the provider.
const FLOW_LIFETIME: Duration = Duration::from_secs(600);
/// Clock skew allowed on the ID token's times.
const LEEWAY: u64 = 60;
/// Most groups kept from a provider's claim, and the longest group name.
const MAX_GROUPS: usize = 200;
const MAX_GROUP_NAME: usize = 128;

/// A sign-in under way, sealed in its cookie.
#[derive(Serialize, Deserialize)]
struct Flow {
    provider: String,
    state: String,
    nonce: String,
    verifier: String,
    return_to: String,
    expires_at: i64,
    /// Set when a signed-in person links this provider to their account instead of signing in.
    #[serde(default)]
    link_user: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct StartQuery {
    return_to: Option<String>,
}

/// Sends the browser to the provider's sign-in, with `state`, `nonce` (OpenID Connect) and PKCE S256.
#[handler]
pub async fn start(
    pages: Data<&Arc<Pages>>,
    jar: &CookieJar,
    Path(name): Path<String>,
    Query(query): Query<StartQuery>,
) -> Result<Response, PageError> {
    let provider = provider(&pages, &name).await?;
    set_out(&pages, jar, &provider, safe_return_to(query.return_to.as_deref()), None).await
}

#[derive(Debug, Deserialize)]
pub struct LinkForm {
    csrf_token: Option<String>,
}

/// A signed-in person links this provider to their account (from the home page; CSRF-checked): the same
/// flow, which comes back to link the identity to this account rather than sign anyone in.
#[handler]
pub async fn link(
    pages: Data<&Arc<Pages>>,
    jar: &CookieJar,
    Visitor(me): Visitor,
    Path(name): Path<String>,
    Form(form): Form<LinkForm>,
) -> Result<Response, PageError> {
    let Some(me) = me else {
        return Ok(account::to_login(&pages, "/"));
    };
    me.check_csrf(form.csrf_token.as_deref())?;
    let provider = provider(&pages, &name).await?;
    set_out(&pages, jar, &provider, format!("{}/", pages.base), Some(me.user.id.clone())).await
}

/// Takes a provider off a signed-in person's account (CSRF-checked), unless it is their only way to sign in.
#[handler]
pub async fn unlink(
    pages: Data<&Arc<Pages>>,
    Visitor(me): Visitor,
    ClientAddress(ip): ClientAddress,
    Path(name): Path<String>,
    Form(form): Form<LinkForm>,
) -> Result<Response, PageError> {
    let Some(me) = me else {
        return Ok(account::to_login(&pages, "/"));
    };
    me.check_csrf(form.csrf_token.as_deref())?;
    let providers = pages.store.list_identity_providers().await?;
    let provider = providers.iter().find(|p| p.name == name).ok_or_else(PageError::not_found)?;
    if !pages.store.unlink_identity(&me.user.id, &provider.issuer).await? {
        return Err(PageError::bad_request(
            "Not unlinked",
            format!(
                "{} is not linked to your account, or it is your only way to sign in: link another provider first.",
                provider.name
            ),
        ));
    }
    pages.store.set_user_groups(&me.user.id, &format!("idp:{}", provider.name), &[]).await?;
    let detail = format!("idp={}", provider.name);
    let entry = AuditEntry { user_id: Some(&me.user.id), ip, detail: Some(&detail), ..AuditEntry::default() };
    pages.store.audit(AuditKind::IdentityUnlinked, entry).await;
    Ok(see_other(&format!("{}/?done=unlinked", pages.base)))
}

/// Seals the flow in its cookie and sends the browser to the provider.
async fn set_out(
    pages: &Pages,
    jar: &CookieJar,
    provider: &identity_provider::Model,
    return_to: String,
    link_user: Option<String>,
) -> Result<Response, PageError> {
    let Some(client_id) = provider.client_id.clone() else {
        return Err(PageError::not_found());
    };
    let found = pages.providers.discovery(provider).await.map_err(|why| unreachable(provider, &why))?;
    let flow = Flow {
        provider: provider.name.clone(),
        state: random_token(),
        nonce: random_token(),
        verifier: format!("{}{}", random_token(), random_token()),
        return_to,
        expires_at: now().seconds() + i64::try_from(FLOW_LIFETIME.as_secs()).unwrap_or(600),
        link_user,
    };
    let mut target = Url::parse(&found.authorization_endpoint).map_err(|_| unreachable(provider, "bad endpoint"))?;
    {
        let mut pairs = target.query_pairs_mut();
        pairs
            .append_pair("response_type", "code")
            .append_pair("client_id", &client_id)
            .append_pair("redirect_uri", &callback_url(pages, &provider.name))
            .append_pair("scope", &provider.scopes)
            .append_pair("state", &flow.state)
            .append_pair("code_challenge", &sha256_b64(flow.verifier.as_bytes()))
            .append_pair("code_challenge_method", "S256");
        if !provider.is_github() {
            pairs.append_pair("nonce", &flow.nonce);
        }
        if provider.is_github() && flow.link_user.is_none() {
            // Sign-in, not sign-up at GitHub.
            pairs.append_pair("allow_signup", "false");
        }
    }
    let sealed = pages.secrets.seal(FLOW_COOKIE, &serde_json::to_string(&flow).expect("a flow serializes"));
    pages.sessions.set_flow_cookie(jar, FLOW_COOKIE, sealed, FLOW_LIFETIME);
    Ok(see_other(target.as_str()))
}

#[derive(Debug, Deserialize)]
pub struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    iss: Option<String>,
    error: Option<String>,
}

#[derive(Deserialize)]
struct IdClaims {
    sub: String,
    aud: serde_json::Value,
    azp: Option<String>,
    nonce: Option<String>,
    email: Option<String>,
    email_verified: Option<serde_json::Value>,
    preferred_username: Option<String>,
    #[serde(flatten)]
    rest: serde_json::Map<String, serde_json::Value>,
}

/// Who the provider says came back.
struct Vouched {
    subject: String,
    email: Option<String>,
    email_verified: bool,
    username: Option<String>,
    /// The groups it names, when it names any (`None`: leave the kept ones alone).
    groups: Option<Vec<String>>,
}

/// Where the provider sends the browser back: the flow cookie must be this browser's, for this provider, in
/// time, with the same `state`; the code is redeemed with the PKCE verifier; the ID token must verify (or,
/// for GitHub, its API names the person). Then the person is signed in, or, when they set out to link this
/// provider, it is linked to the account that is still signed in here.
#[handler]
pub async fn callback(
    pages: Data<&Arc<Pages>>,
    ClientAddress(ip): ClientAddress,
    Visitor(me): Visitor,
    jar: &CookieJar,
    Path(name): Path<String>,
    Query(query): Query<CallbackQuery>,
) -> Result<Response, PageError> {
    let refused = |message: &str| PageError::bad_request("Not signed in", message.to_owned());
    let flow: Flow = pages
        .sessions
        .take_flow_cookie(jar, FLOW_COOKIE)
        .and_then(|sealed| pages.secrets.open(FLOW_COOKIE, &sealed).ok())
        .and_then(|text| serde_json::from_str(&text).ok())
        .ok_or_else(|| refused("This sign-in did not start in this browser, or took too long. Start again."))?;
    let state_matches =
        query.state.as_deref().is_some_and(|s| crate::crypto::matches_sha256(s, &sha256_hex(&flow.state)));
    if flow.provider != name || !state_matches || flow.expires_at < now().seconds() {
        return Err(refused("This sign-in did not start in this browser, or took too long. Start again."));
    }
    let provider = provider(&pages, &name).await?;
    if let Some(error) = query.error {
        let said: String = error.chars().filter(|c| c.is_ascii_graphic()).take(64).collect();
        return Err(refused(&format!("{} did not sign you in ({said}).", provider.name)));
    }
    // RFC 9207: a provider that names itself must name itself.
    if query.iss.as_deref().is_some_and(|iss| iss != provider.issuer) {
        return Err(refused("The answer came from another identity provider than the one you were sent to."));
    }
    let Some(code) = query.code.filter(|c| !c.is_empty() && c.len() <= 4096) else {
        return Err(refused("The identity provider sent no code."));
    };
    let client_id = provider.client_id.clone().ok_or_else(PageError::not_found)?;
    let secret = match &provider.client_secret_sealed {
        Some(sealed) => Some(
            pages
                .secrets
                .open(&identity_provider::secret_context(&provider.name), sealed)
                .map_err(|_| PageError::internal("an identity provider's client secret does not open"))?,
        ),
        None => None,
    };
    let found = pages.providers.discovery(&provider).await.map_err(|why| unreachable(&provider, &why))?;
    let redirect_uri = callback_url(&pages, &provider.name);
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", redirect_uri.as_str()),
        ("code_verifier", flow.verifier.as_str()),
    ];
    let tokens = pages
        .providers
        .token_request(&found.token_endpoint, &client_id, secret.as_deref(), provider.is_github(), &form)
        .await
        .map_err(|why| unreachable(&provider, &why))?;
    let vouched = if provider.is_github() {
        github_person(&pages, &provider, &client_id, secret.as_deref(), &tokens).await?
    } else {
        let id_token =
            tokens.get("id_token").and_then(|v| v.as_str()).ok_or_else(|| refused("No ID token came back."))?;
        let claims = verify_id_token(&pages, &provider, &client_id, id_token, &flow.nonce).await.map_err(|why| {
            tracing::warn!(provider = %provider.name, why, "an ID token was refused");
            refused(&format!("The identity provider's answer is not valid: {why}."))
        })?;
        let email_verified = match &claims.email_verified {
            Some(serde_json::Value::Bool(b)) => *b,
            Some(serde_json::Value::String(s)) => s == "true",
            _ => false,
        };
        Vouched {
            groups: provider.groups_claim.as_ref().map(|claim| groups_of(claims.rest.get(claim))),
            subject: claims.sub,
            email: claims.email,
            email_verified,
            username: claims.preferred_username,
        }
    };
    let email = vouched.email.as_deref().filter(|e| e.len() <= 320 && e.contains('@'));
    let source = format!("idp:{}", provider.name);
    let detail = format!("idp={}", provider.name);
    if let Some(user_id) = &flow.link_user {
        // Linking: only to the account that set out, still signed in in this browser.
        if me.as_ref().map(|m| &m.user.id) != Some(user_id) {
            return Err(refused("Sign in again as the account that asked to link this provider."));
        }
        let linked_to = pages.store.link_identity(&provider.issuer, &vouched.subject, user_id, email).await?;
        if &linked_to != user_id {
            return Err(PageError::forbidden(
                "Not linked",
                format!("This {} account is already linked to another account here.", provider.name),
            ));
        }
        if let Some(groups) = &vouched.groups {
            pages.store.set_user_groups(user_id, &source, &groups_kept(groups)).await?;
        }
        let entry = AuditEntry { user_id: Some(user_id), ip, detail: Some(&detail), ..AuditEntry::default() };
        pages.store.audit(AuditKind::IdentityLinked, entry).await;
        return Ok(see_other(&format!("{}/?done=linked", pages.base)));
    }
    let user = match person_for(
        &pages.store,
        &provider,
        &vouched.subject,
        email,
        vouched.email_verified,
        vouched.username.as_deref(),
    )
    .await
    {
        Ok(user) => user,
        Err(PersonRefused::Db(e)) => return Err(e.into()),
        Err(PersonRefused::NotAllowed) => {
            return Err(PageError::forbidden(
                "No account here",
                format!(
                    "{} knows you, but nobody here is linked to you and it may not add accounts for you. Ask an \
                     administrator.",
                    provider.name
                ),
            ));
        }
        Err(PersonRefused::Disabled) => {
            return Err(PageError::forbidden("Account disabled", "This account is disabled."));
        }
    };
    if let Some(groups) = &vouched.groups {
        pages.store.set_user_groups(&user.id, &source, &groups_kept(groups)).await?;
    }
    pages.sessions.start(jar, &user).await?;
    tracing::info!(user_id = %user.id, provider = %provider.name, "signed in through an identity provider");
    let entry = AuditEntry { user_id: Some(&user.id), ip, detail: Some(&detail), ..AuditEntry::default() };
    pages.store.audit(AuditKind::LoginSucceeded, entry).await;
    Ok(see_other(&flow.return_to))
}

/// GitHub: the person its API names for the token just issued; the token is given back at once.
async fn github_person(
    pages: &Pages,
    provider: &identity_provider::Model,
    client_id: &str,
    secret: Option<&str>,
    tokens: &serde_json::Value,
) -> Result<Vouched, PageError> {
    let token = tokens
        .get("access_token")
        .and_then(|v| v.as_str())
        .filter(|t| !t.is_empty() && t.len() <= 4096)
        .ok_or_else(|| PageError::bad_request("Not signed in", "GitHub sent no access token.".to_owned()))?;
    let api = provider.api_url.as_deref().ok_or_else(|| PageError::internal("a GitHub provider without its API"))?;
    let found = pages.providers.github_person(api, token).await;
    if let Some(secret) = secret {
        pages.providers.github_forget(api, client_id, secret, token).await;
    }
    let person = found.map_err(|why| unreachable(provider, &why))?;
    // Organization names on GitHub are anyone's to register: they count here only under the provider's
    // name (`github:acme`), never as a group of the same name from the company's own directory.
    let groups = person.groups.iter().map(|g| format!("{}:{g}", provider.name)).collect();
    Ok(Vouched {
        subject: person.id,
        email: person.email,
        email_verified: person.email_verified,
        username: person.login,
        groups: Some(groups),
    })
}

/// Verifies an ID token: a pinned algorithm and one of the provider's keys; `iss` the provider; `aud` our
/// client id (and `azp` ours when it names several); `exp` ahead; `nonce` the one this browser sent.
async fn verify_id_token(
    pages: &Pages,
    provider: &identity_provider::Model,
    client_id: &str,
    id_token: &str,
    nonce: &str,
) -> Result<IdClaims, &'static str> {
    let header = jsonwebtoken::decode_header(id_token).map_err(|_| "it is not a JWT")?;
    let alg = assertion_algorithm(header.alg).ok_or("its algorithm is not accepted (ES256, RS256 or EdDSA)")?;
    let keys =
        pages.providers.keys(provider, header.kid.as_deref()).await.ok_or("the provider's keys are unavailable")?;
    let mut validation = Validation::new(alg);
    validation.leeway = LEEWAY;
    validation.set_issuer(&[&provider.issuer]);
    validation.set_audience(&[client_id]);
    validation.set_required_spec_claims(&["exp", "iss", "sub", "aud"]);
    let claims = keys
        .candidates(alg, header.kid.as_deref())
        .iter()
        .find_map(|key| jsonwebtoken::decode::<IdClaims>(id_token, key, &validation).ok())
        .map(|d| d.claims)
        .ok_or("its signature, issuer, audience or lifetime is not valid")?;
    if let serde_json::Value::Array(audiences) = &claims.aud
        && audiences.len() > 1
        && claims.azp.as_deref() != Some(client_id)
    {
        return Err("it names several audiences but was not issued to us (azp)");
    }
    let nonce_matches = claims.nonce.as_deref().is_some_and(|n| crate::crypto::matches_sha256(n, &sha256_hex(nonce)));
    if !nonce_matches {
        return Err("its nonce is not the one this sign-in sent");
    }
    if claims.sub.is_empty() || claims.sub.len() > 255 {
        return Err("its subject is empty or too long");
    }
    Ok(claims)
}

/// A groups claim: a list of names (or one name).
fn groups_of(claim: Option<&serde_json::Value>) -> Vec<String> {
    match claim {
        Some(serde_json::Value::Array(items)) => items.iter().filter_map(|v| v.as_str()).map(str::to_owned).collect(),
        Some(serde_json::Value::String(one)) => vec![one.clone()],
        _ => vec![],
    }
}

/// Group names as kept: printable, bounded, sorted, once each.
fn groups_kept(names: &[String]) -> Vec<String> {
    let mut groups: Vec<String> = names
        .iter()
        .filter(|n| !n.is_empty() && n.len() <= MAX_GROUP_NAME && !n.chars().any(char::is_control))
        .cloned()
        .collect();
    groups.sort();
    groups.dedup();
    groups.truncate(MAX_GROUPS);
    groups
}

async fn provider(pages: &Pages, name: &str) -> Result<identity_provider::Model, PageError> {
    pages.store.sign_in_provider(name).await?.ok_or_else(PageError::not_found)
}

fn callback_url(pages: &Pages, provider: &str) -> String {
    format!("{}/login/idp/{provider}/callback", pages.issuer)
}

fn unreachable(provider: &identity_provider::Model, why: &str) -> PageError {
    tracing::warn!(provider = %provider.name, why, "signing in through an identity provider failed");
    PageError {
        status: StatusCode::BAD_GATEWAY,
        title: "The identity provider did not answer as it should".into(),
        message: format!("Signing in through {} failed. Try again, or ask an administrator.", provider.name).into(),
    }
}
