//! Discovery documents: protected resource metadata (RFC 9728), authorization server metadata (RFC 8414,
//! also served as `openid-configuration`), and the JWKS.
use poem_openapi::Object;

use super::id_jag::ID_JAG_PROFILE;
use crate::domain::client::{AuthMethod, GrantType};
use crate::domain::client_keys::ASSERTION_ALGORITHMS;
use crate::domain::resource::Resource;
use crate::domain::scope::ScopeCatalog;
use crate::domain::tokens::AccessTokens;

/// What the discovery endpoints publish: who the authorization server is, what it protects, its keys.
#[derive(Clone)]
pub struct Discovery {
    pub issuer: String,
    pub resource: Resource,
    pub tokens: AccessTokens,
    pub scopes: ScopeCatalog,
}

/// RFC 9728 §2.
#[derive(Debug, Object)]
pub struct ProtectedResourceMetadata {
    /// The canonical URI of the MCP server; the `resource` clients send and the `aud` of its tokens.
    pub resource: String,
    /// The issuer of the authorization server, byte for byte the `issuer` in its metadata.
    pub authorization_servers: Vec<String>,
    pub scopes_supported: Vec<String>,
    /// Only the `Authorization` header (RFC 6750 §2.1).
    pub bearer_methods_supported: Vec<String>,
    pub resource_name: String,
    pub resource_documentation: String,
}

/// RFC 8414 §2.
#[derive(Debug, Object)]
pub struct AuthorizationServerMetadata {
    pub issuer: String,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    pub registration_endpoint: String,
    pub revocation_endpoint: String,
    pub introspection_endpoint: String,
    pub jwks_uri: String,
    pub scopes_supported: Vec<String>,
    pub response_types_supported: Vec<String>,
    pub response_modes_supported: Vec<String>,
    pub grant_types_supported: Vec<String>,
    pub token_endpoint_auth_methods_supported: Vec<String>,
    pub revocation_endpoint_auth_methods_supported: Vec<String>,
    pub introspection_endpoint_auth_methods_supported: Vec<String>,
    /// What a `private_key_jwt` client assertion may be signed with (RFC 8414 §2).
    pub token_endpoint_auth_signing_alg_values_supported: Vec<String>,
    pub revocation_endpoint_auth_signing_alg_values_supported: Vec<String>,
    pub introspection_endpoint_auth_signing_alg_values_supported: Vec<String>,
    /// `urn:ietf:params:oauth:grant-profile:id-jag`: ID-JAG assertions from trusted enterprise identity
    /// providers are accepted with the jwt-bearer grant (draft-ietf-oauth-identity-assertion-authz-grant §7.2).
    pub authorization_grant_profiles_supported: Vec<String>,
    /// Only `S256` (PKCE is required for every client).
    pub code_challenge_methods_supported: Vec<String>,
    /// RFC 9207: the authorization response carries `iss`.
    pub authorization_response_iss_parameter_supported: bool,
    pub client_id_metadata_document_supported: bool,
    pub service_documentation: String,
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

pub fn protected_resource(discovery: &Discovery) -> ProtectedResourceMetadata {
    ProtectedResourceMetadata {
        resource: discovery.resource.as_str().to_owned(),
        authorization_servers: vec![discovery.issuer.clone()],
        scopes_supported: discovery.scopes.all().names(),
        bearer_methods_supported: strings(&["header"]),
        resource_name: "mcp-gateway".into(),
        resource_documentation: format!("{}/docs", discovery.issuer),
    }
}

pub fn authorization_server(discovery: &Discovery) -> AuthorizationServerMetadata {
    let issuer = &discovery.issuer;
    let methods: Vec<String> = AuthMethod::ALL.iter().map(|m| m.as_str().to_owned()).collect();
    let authenticated: Vec<String> =
        AuthMethod::ALL.iter().filter(|m| m.is_confidential()).map(|m| m.as_str().to_owned()).collect();
    AuthorizationServerMetadata {
        issuer: issuer.clone(),
        authorization_endpoint: format!("{issuer}/oauth/authorize"),
        token_endpoint: format!("{issuer}/oauth/token"),
        registration_endpoint: format!("{issuer}/oauth/register"),
        revocation_endpoint: format!("{issuer}/oauth/revoke"),
        introspection_endpoint: format!("{issuer}/oauth/introspect"),
        jwks_uri: format!("{issuer}/.well-known/jwks.json"),
        scopes_supported: discovery.scopes.all().names(),
        response_types_supported: strings(&["code"]),
        response_modes_supported: strings(&["query"]),
        grant_types_supported: GrantType::ALL.iter().map(|g| g.as_str().to_owned()).collect(),
        token_endpoint_auth_methods_supported: methods.clone(),
        revocation_endpoint_auth_methods_supported: methods,
        introspection_endpoint_auth_methods_supported: authenticated,
        token_endpoint_auth_signing_alg_values_supported: strings(&ASSERTION_ALGORITHMS),
        revocation_endpoint_auth_signing_alg_values_supported: strings(&ASSERTION_ALGORITHMS),
        introspection_endpoint_auth_signing_alg_values_supported: strings(&ASSERTION_ALGORITHMS),
        authorization_grant_profiles_supported: strings(&[ID_JAG_PROFILE]),
        code_challenge_methods_supported: strings(&["S256"]),
        authorization_response_iss_parameter_supported: true,
        client_id_metadata_document_supported: true,
        service_documentation: format!("{issuer}/docs"),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::domain::keys::KeyRing;
    use crate::store::Store;

    async fn discovery(issuer: &str) -> Discovery {
        let store = Store::connect("sqlite::memory:", 1, Duration::from_secs(5)).await.unwrap();
        store.migrate().await.unwrap();
        let secrets = std::sync::Arc::new(crate::crypto::SecretsKey::from_hex(&"ab".repeat(32)).unwrap());
        let keys =
            KeyRing::load(store, secrets, Some("a-shared-secret-of-at-least-32-bytes!"), Duration::ZERO).await.unwrap();
        let resource = Resource::parse(&format!("{issuer}/mcp")).unwrap();
        Discovery {
            issuer: issuer.into(),
            tokens: AccessTokens::new(keys, issuer.into(), resource.as_str().into()),
            resource,
            scopes: ScopeCatalog::default(),
        }
    }

    #[tokio::test]
    async fn the_resource_names_its_authorization_server_byte_for_byte() {
        let d = discovery("https://as.example/tenant").await;
        let (prm, asm) = (protected_resource(&d), authorization_server(&d));
        assert_eq!(prm.authorization_servers, vec![asm.issuer]);
        assert_eq!(prm.resource, "https://as.example/tenant/mcp");
        assert_eq!(asm.token_endpoint, "https://as.example/tenant/oauth/token");
        assert_eq!(asm.code_challenge_methods_supported, ["S256"]);
        assert!(!asm.introspection_endpoint_auth_methods_supported.contains(&"none".to_owned()));
        assert!(asm.token_endpoint_auth_methods_supported.contains(&"none".to_owned()));
    }
}
