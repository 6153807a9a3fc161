//! The poem-openapi operations: thin adapters from HTTP to the modules that implement each RFC.
use std::sync::Arc;

use poem::Request;
use poem::web::Data;
use poem::web::cookie::CookieJar;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::{Form, Json};
use poem_openapi::{ApiResponse, OpenApi, Tags};

use super::authorize::{Authorization, AuthorizationRequest, AuthorizeResponse, ConsentDecision};
use super::error::{ErrorCode, OAuthResponse};
use super::introspect::{self, IntrospectRequest, Introspection};
use super::metadata::{self, AuthorizationServerMetadata, Discovery, ProtectedResourceMetadata};
use super::register::{ClientInformation, ClientUpdateRequest, RegistrationService};
use super::revoke::{self, RevokeRequest, Revoked};
use super::token::{self, TokenRequest, TokenResponseBody, TokenService};
use crate::domain::registration::ClientMetadata;
use crate::domain::tokens::BearerToken;
use crate::limits::ClientAddress;
use crate::oauth_response;

#[derive(Tags)]
enum ApiTags {
    /// Metadata documents clients read to find the authorization server and its endpoints.
    Discovery,
    /// The OAuth 2.1 authorization server.
    #[oai(rename = "OAuth 2.1")]
    OAuth,
}

oauth_response!(
    /// Token endpoint response.
    TokenResponse, 200, TokenResponseBody
);
impl OAuthResponse for TokenResponse {}

oauth_response!(
    /// Registration response.
    RegisterResponse, 201, ClientInformation
);
impl OAuthResponse for RegisterResponse {
    const MALFORMED: ErrorCode = ErrorCode::InvalidClientMetadata;
}

oauth_response!(
    /// The client's current registration (RFC 7592).
    ClientConfigurationResponse, 200, ClientInformation
);
impl OAuthResponse for ClientConfigurationResponse {
    const MALFORMED: ErrorCode = ErrorCode::InvalidClientMetadata;
}

oauth_response!(
    /// The answer to deleting a registration (RFC 7592 §2.3): 204 once the client and everything issued to
    /// it are gone.
    ClientDeleteResponse, 204
);
impl OAuthResponse for ClientDeleteResponse {}

oauth_response!(
    /// Revocation response.
    RevokeResponse, 200, Revoked
);
impl OAuthResponse for RevokeResponse {}

oauth_response!(
    /// Introspection response.
    IntrospectResponse, 200, Introspection
);
impl OAuthResponse for IntrospectResponse {}

/// The `Authorization` header, as presented (client credentials or a registration access token).
fn authorization_header(req: &Request) -> Option<&str> {
    req.headers().get(poem::http::header::AUTHORIZATION).and_then(|v| v.to_str().ok())
}

/// The gateway's Client ID Metadata Document for one upstream.
#[derive(ApiResponse)]
pub enum ClientDocumentResponse {
    /// The document.
    #[oai(status = 200)]
    Found(Json<serde_json::Value>),
    /// No upstream could have that name (1–32 letters, digits, `-` or `_`).
    #[oai(status = 404)]
    NotFound,
}

/// Discovery: RFC 9728, RFC 8414 and the JWKS.
pub struct DiscoveryApi;

#[OpenApi(tag = "ApiTags::Discovery")]
impl DiscoveryApi {
    /// Protected resource metadata (RFC 9728) of the MCP server.
    #[oai(path = "/.well-known/oauth-protected-resource", method = "get")]
    async fn protected_resource(&self, discovery: Data<&Arc<Discovery>>) -> Json<ProtectedResourceMetadata> {
        Json(metadata::protected_resource(&discovery))
    }

    /// Protected resource metadata at the path-inserted location for the `/mcp` resource (RFC 9728 §3.1).
    #[oai(path = "/.well-known/oauth-protected-resource/mcp", method = "get")]
    async fn protected_resource_mcp(&self, discovery: Data<&Arc<Discovery>>) -> Json<ProtectedResourceMetadata> {
        Json(metadata::protected_resource(&discovery))
    }

    /// Authorization server metadata (RFC 8414).
    #[oai(path = "/.well-known/oauth-authorization-server", method = "get")]
    async fn authorization_server(&self, discovery: Data<&Arc<Discovery>>) -> Json<AuthorizationServerMetadata> {
        Json(metadata::authorization_server(&discovery))
    }

    /// The same metadata at the OpenID Connect Discovery location, for clients that look there.
    #[oai(path = "/.well-known/openid-configuration", method = "get")]
    async fn openid_configuration(&self, discovery: Data<&Arc<Discovery>>) -> Json<AuthorizationServerMetadata> {
        Json(metadata::authorization_server(&discovery))
    }

    /// The gateway's own Client ID Metadata Document for one upstream: its client id at an OAuth-protected
    /// upstream that accepts those (the upstream fetches it when a person connects their account there).
    #[oai(path = "/oauth/upstream-clients/:upstream", method = "get")]
    async fn upstream_client_document(
        &self,
        discovery: Data<&Arc<Discovery>>,
        upstream: Path<String>,
    ) -> ClientDocumentResponse {
        match crate::domain::upstream_accounts::client_document(&discovery.issuer, &upstream.0) {
            Some(document) => ClientDocumentResponse::Found(Json(document)),
            None => ClientDocumentResponse::NotFound,
        }
    }

    /// The public keys that verify access tokens (RFC 7517). Empty when tokens are HS256.
    #[oai(path = "/.well-known/jwks.json", method = "get")]
    async fn jwks(&self, discovery: Data<&Arc<Discovery>>) -> Json<serde_json::Value> {
        Json(serde_json::to_value(discovery.tokens.keys().jwks()).unwrap_or_default())
    }
}

/// The authorization server's endpoints.
pub struct OAuthApi;

#[OpenApi(tag = "ApiTags::OAuth")]
impl OAuthApi {
    /// Authorization endpoint (RFC 6749 §4.1.1, PKCE S256 required, RFC 8707 `resource`).
    ///
    /// Shows the sign-in page, then the consent page; redirects back with `code`, `state` and `iss`
    /// (RFC 9207). An unknown client or unregistered redirect URI gets an HTML error page, never a redirect.
    /// Also served at `/authorize`.
    #[allow(clippy::too_many_arguments)]
    #[oai(path = "/oauth/authorize", method = "get")]
    async fn authorize(
        &self,
        authorization: Data<&Arc<Authorization>>,
        req: &Request,
        jar: &CookieJar,
        ip: ClientAddress,
        response_type: Query<Option<String>>,
        client_id: Query<Option<String>>,
        redirect_uri: Query<Option<String>>,
        scope: Query<Option<String>>,
        #[oai(name = "state")] client_state: Query<Option<String>>,
        code_challenge: Query<Option<String>>,
        code_challenge_method: Query<Option<String>>,
        resource: Query<Option<String>>,
    ) -> AuthorizeResponse {
        let request = AuthorizationRequest {
            response_type: response_type.0,
            client_id: client_id.0,
            redirect_uri: redirect_uri.0,
            scope: scope.0,
            state: client_state.0,
            code_challenge: code_challenge.0,
            code_challenge_method: code_challenge_method.0,
            resource: resource.0,
        };
        authorization.begin(jar, ip.0, req.uri().query().unwrap_or_default(), request).await
    }

    /// The consent page's form: `decision=allow` or `decision=deny`, with the page's CSRF token.
    #[oai(path = "/oauth/authorize", method = "post")]
    async fn authorize_decision(
        &self,
        authorization: Data<&Arc<Authorization>>,
        jar: &CookieJar,
        ip: ClientAddress,
        form: Form<ConsentDecision>,
    ) -> AuthorizeResponse {
        authorization.decide(jar, ip.0, form.0).await
    }

    /// Token endpoint (RFC 6749 §3.2): `authorization_code`, `refresh_token` and `client_credentials` grants.
    ///
    /// Clients authenticate with HTTP Basic (`client_secret_basic`), with `client_id` and `client_secret`
    /// in the body (`client_secret_post`), with a signed `client_assertion` (`private_key_jwt`, RFC 7523), or
    /// with `client_id` alone (public clients). `client_credentials` gives a confidential client a token
    /// that acts for itself (`sub` = the client), without a refresh token. Refresh tokens
    /// rotate on every use; presenting a used one revokes the whole grant. Also served at `/token`.
    /// Failed client authentication is rate-limited per IP address, invalid grants per client at one address
    /// (`RATE_LIMITS=token=…`): over the limit, 429 `temporarily_unavailable` with `Retry-After`.
    #[oai(path = "/oauth/token", method = "post")]
    async fn token(
        &self,
        tokens: Data<&Arc<TokenService>>,
        req: &Request,
        ip: ClientAddress,
        form: Form<TokenRequest>,
    ) -> TokenResponse {
        token::token(&tokens, authorization_header(req), ip.0, form.0).await.into()
    }

    /// Dynamic client registration (RFC 7591). Confidential clients receive their secret once, and every
    /// client a registration access token for `registration_client_uri` (RFC 7592). Rate-limited per IP
    /// address (429 with `Retry-After`). An unused client expires after `CLIENT_UNUSED_TTL`; the same
    /// public-client metadata registered again from the same address within an hour, while that client is
    /// unused, returns the existing client (without a registration access token). Also served at `/register`.
    #[oai(path = "/oauth/register", method = "post")]
    async fn register(
        &self,
        registration: Data<&Arc<RegistrationService>>,
        ip: ClientAddress,
        metadata: Json<ClientMetadata>,
    ) -> RegisterResponse {
        registration.register(metadata.0, ip.0).await.into()
    }

    /// Reads a client's registration (RFC 7592 §2.1) with its registration access token as bearer token.
    #[oai(path = "/oauth/register/:client_id", method = "get")]
    async fn read_registration(
        &self,
        registration: Data<&Arc<RegistrationService>>,
        BearerToken(bearer): BearerToken,
        client_id: Path<String>,
    ) -> ClientConfigurationResponse {
        registration.read(&client_id.0, bearer.as_deref()).await.into()
    }

    /// Replaces a client's metadata (RFC 7592 §2.2). The body is the complete metadata plus `client_id`;
    /// the authentication method cannot change and the secret is not reissued.
    #[oai(path = "/oauth/register/:client_id", method = "put")]
    async fn update_registration(
        &self,
        registration: Data<&Arc<RegistrationService>>,
        BearerToken(bearer): BearerToken,
        client_id: Path<String>,
        update: Json<ClientUpdateRequest>,
    ) -> ClientConfigurationResponse {
        registration.update(&client_id.0, bearer.as_deref(), update.0).await.into()
    }

    /// Deletes a client (RFC 7592 §2.3); its grants and tokens are revoked.
    #[oai(path = "/oauth/register/:client_id", method = "delete")]
    async fn delete_registration(
        &self,
        registration: Data<&Arc<RegistrationService>>,
        BearerToken(bearer): BearerToken,
        client_id: Path<String>,
    ) -> ClientDeleteResponse {
        registration.delete(&client_id.0, bearer.as_deref()).await.into()
    }

    /// Token revocation (RFC 7009). Same client authentication, and the same limit on failed client
    /// authentication per IP address, as the token endpoint.
    #[oai(path = "/oauth/revoke", method = "post")]
    async fn revoke(
        &self,
        tokens: Data<&Arc<TokenService>>,
        req: &Request,
        ip: ClientAddress,
        form: Form<RevokeRequest>,
    ) -> RevokeResponse {
        revoke::revoke(&tokens, authorization_header(req), ip.0, form.0).await.into()
    }

    /// Token introspection (RFC 7662) for confidential clients, about tokens issued to them. Failed client
    /// authentication is limited per IP address as at the token endpoint.
    #[oai(path = "/oauth/introspect", method = "post")]
    async fn introspect(
        &self,
        tokens: Data<&Arc<TokenService>>,
        req: &Request,
        ip: ClientAddress,
        form: Form<IntrospectRequest>,
    ) -> IntrospectResponse {
        introspect::introspect(&tokens, authorization_header(req), ip.0, form.0).await.into()
    }
}
