//! JWT access tokens (RFC 9068): `typ: at+jwt`, `kid`, and the claims iss, sub, aud, client_id, scope,
//! iat, exp, jti. Verification pins the algorithm, type, issuer, audience and lifetime.
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jsonwebtoken::{Header, Validation};
use poem::http::header::AUTHORIZATION;
use poem::{FromRequest, Request, RequestBody};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::keys::KeyRing;
use crate::clock::UnixTime;

pub const ACCESS_TOKEN_TYPE: &str = "at+jwt";
/// Clock skew tolerated on `exp`, `nbf` and `iat`.
const LEEWAY: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AccessClaims {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    pub client_id: String,
    pub scope: String,
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
    /// The grant (refresh-token family) this token was issued under, so revoking it can revoke the grant.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub grant_id: String,
}

impl AccessClaims {
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scope.split(' ').any(|s| s == scope)
    }

    /// The scopes of the token, in the order granted.
    pub fn scopes(&self) -> Vec<&str> {
        self.scope.split(' ').filter(|s| !s.is_empty()).collect()
    }

    /// The person the token acts for: its subject, unless the token is a client's own (client credentials,
    /// RFC 9068 §2.2: then the subject is the client).
    pub fn person(&self) -> Option<&str> {
        (self.sub != self.client_id).then_some(self.sub.as_str())
    }

    pub fn expires_at(&self) -> UnixTime {
        UnixTime(self.exp)
    }

    /// Whether the token has expired (no leeway: for streams deciding to stop).
    pub fn has_expired(&self) -> bool {
        self.expires_at() <= UnixTime::now()
    }

    /// Whether the token is past its lifetime and the leeway.
    fn expired_beyond_leeway(&self, at: UnixTime) -> bool {
        self.expires_at() + LEEWAY <= at
    }
}

#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("the token is malformed")]
    Malformed,
    #[error("the token is not an access token (typ must be at+jwt)")]
    WrongType,
    #[error("the token is signed with an unknown key")]
    UnknownKey,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet")]
    NotYetValid,
    #[error("the token is not valid: {0}")]
    Invalid(&'static str),
}

/// Who an access token is for and what it allows.
#[derive(Debug, Clone, Copy)]
pub struct Grant<'a> {
    pub subject: &'a str,
    pub client_id: &'a str,
    pub scope: &'a str,
    pub audience: &'a str,
    pub grant_id: &'a str,
}

/// Signs and verifies access tokens for one issuer and one audience.
#[derive(Clone)]
pub struct AccessTokens {
    keys: KeyRing,
    issuer: String,
    audience: String,
    /// Tokens this instance has already verified, by SHA-256 of the whole token, until they expire: a
    /// client presents the same token on every request, and checking the signature once is enough.
    verified: Arc<Mutex<HashMap<[u8; 32], AccessClaims>>>,
}

/// Most verified tokens remembered; when full, expired entries go, and if none has, all.
const VERIFIED_CACHE_SIZE: usize = 10_000;

impl AccessTokens {
    pub fn new(keys: KeyRing, issuer: String, audience: String) -> AccessTokens {
        AccessTokens { keys, issuer, audience, verified: Arc::default() }
    }

    pub fn keys(&self) -> &KeyRing {
        &self.keys
    }

    /// Issues an access token for a grant; returns the JWT and its claims.
    pub fn issue(
        &self,
        grant: Grant<'_>,
        ttl: Duration,
    ) -> Result<(String, AccessClaims), jsonwebtoken::errors::Error> {
        let iat = UnixTime::now();
        let claims = AccessClaims {
            iss: self.issuer.clone(),
            sub: grant.subject.to_owned(),
            aud: grant.audience.to_owned(),
            client_id: grant.client_id.to_owned(),
            scope: grant.scope.to_owned(),
            iat: iat.seconds(),
            exp: (iat + ttl).seconds(),
            jti: uuid::Uuid::new_v4().to_string(),
            grant_id: grant.grant_id.to_owned(),
        };
        let (kid, key) = self.keys.signing_key();
        let mut header = Header::new(self.keys.algorithm());
        header.typ = Some(ACCESS_TOKEN_TYPE.into());
        header.kid = kid;
        Ok((jsonwebtoken::encode(&header, &claims, &key)?, claims))
    }

    /// Verifies a bearer token: signature with a known key of the pinned algorithm, `typ`, `iss`, `aud`,
    /// `exp`/`nbf`/`iat` with a small leeway. `alg: none` and algorithm confusion fail at the pinned algorithm.
    /// Verifies a token (signature, algorithm, type, issuer, audience, lifetime) and returns its claims.
    /// The outcome for a valid token is remembered until it expires; revocation is the guard's separate
    /// grant check, made on every request.
    pub async fn verify(&self, token: &str) -> Result<AccessClaims, VerifyError> {
        let key: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let at = UnixTime::now();
        if let Some(claims) = self.verified.lock().expect("verified tokens lock").get(&key)
            && !claims.expired_beyond_leeway(at)
        {
            return Ok(claims.clone());
        }
        let claims = self.verify_uncached(token).await?;
        let mut verified = self.verified.lock().expect("verified tokens lock");
        if verified.len() >= VERIFIED_CACHE_SIZE {
            verified.retain(|_, c| !c.expired_beyond_leeway(at));
            if verified.len() >= VERIFIED_CACHE_SIZE {
                verified.clear();
            }
        }
        verified.insert(key, claims.clone());
        Ok(claims)
    }

    async fn verify_uncached(&self, token: &str) -> Result<AccessClaims, VerifyError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| VerifyError::Malformed)?;
        if header.alg != self.keys.algorithm() {
            return Err(VerifyError::Invalid("unexpected algorithm"));
        }
        if !header
            .typ
            .as_deref()
            .is_some_and(|t| t.eq_ignore_ascii_case(ACCESS_TOKEN_TYPE) || t.eq_ignore_ascii_case("application/at+jwt"))
        {
            return Err(VerifyError::WrongType);
        }
        let kid = header.kid.as_deref();
        let key = match self.keys.verifying_key(kid) {
            Some(key) => key,
            None if self.keys.reload_if_stale().await => self.keys.verifying_key(kid).ok_or(VerifyError::UnknownKey)?,
            None => return Err(VerifyError::UnknownKey),
        };
        let mut validation = Validation::new(self.keys.algorithm());
        validation.leeway = LEEWAY.as_secs();
        validation.validate_nbf = true;
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[&self.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        let data = jsonwebtoken::decode::<AccessClaims>(token, &key, &validation).map_err(|e| match e.kind() {
            jsonwebtoken::errors::ErrorKind::ExpiredSignature => VerifyError::Expired,
            jsonwebtoken::errors::ErrorKind::ImmatureSignature => VerifyError::NotYetValid,
            jsonwebtoken::errors::ErrorKind::InvalidToken | jsonwebtoken::errors::ErrorKind::Base64(_) => {
                VerifyError::Malformed
            }
            jsonwebtoken::errors::ErrorKind::InvalidIssuer => VerifyError::Invalid("wrong issuer"),
            jsonwebtoken::errors::ErrorKind::InvalidAudience => VerifyError::Invalid("wrong audience"),
            jsonwebtoken::errors::ErrorKind::InvalidSignature => VerifyError::Invalid("bad signature"),
            jsonwebtoken::errors::ErrorKind::MissingRequiredClaim(_) => {
                VerifyError::Invalid("a required claim is missing")
            }
            _ => VerifyError::Invalid("the token could not be verified"),
        })?;
        if UnixTime(data.claims.iat) > UnixTime::now() + LEEWAY {
            return Err(VerifyError::NotYetValid);
        }
        Ok(data.claims)
    }
}
/// `Authorization: Bearer <token>` (scheme case-insensitive), as an extractor. Tokens in the query string
/// are not accepted.
pub struct BearerToken(pub Option<String>);

impl<'a> FromRequest<'a> for BearerToken {
    async fn from_request(req: &'a Request, _body: &mut RequestBody) -> poem::Result<BearerToken> {
        Ok(BearerToken(bearer_token(req).map(str::to_owned)))
    }
}

/// `Authorization: Bearer <token>` (scheme case-insensitive). Tokens in the query string are not accepted.
pub fn bearer_token(req: &Request) -> Option<&str> {
    let value = req.headers().get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}
