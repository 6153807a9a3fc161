//! The committed OpenAPI description must be what the code generates (`mcp-gateway openapi export`).
use mcp_gateway::app::openapi_service;

#[test]
fn exported_openapi_json_matches_the_code() {
    let committed = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi/openapi.json"))
        .expect("openapi/openapi.json exists");
    assert!(
        committed == openapi_service().spec() + "\n",
        "openapi/openapi.json is stale: run `cargo run -- openapi export` and commit the result"
    );
}

#[test]
fn exported_openapi_yaml_matches_the_code() {
    let committed = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi/openapi.yaml"))
        .expect("openapi/openapi.yaml exists");
    assert!(
        committed == openapi_service().spec_yaml(),
        "openapi/openapi.yaml is stale: run `cargo run -- openapi export`"
    );
}

#[test]
fn every_oauth_and_discovery_endpoint_is_documented() {
    let spec: serde_json::Value = serde_json::from_str(&openapi_service().spec()).unwrap();
    let paths = spec["paths"].as_object().unwrap();
    for path in [
        "/oauth/authorize",
        "/oauth/token",
        "/oauth/register",
        "/oauth/revoke",
        "/oauth/introspect",
        "/.well-known/oauth-protected-resource",
        "/.well-known/oauth-protected-resource/mcp",
        "/.well-known/oauth-authorization-server",
        "/.well-known/openid-configuration",
        "/.well-known/jwks.json",
    ] {
        assert!(paths.contains_key(path), "{path} is missing from the OpenAPI description");
    }
    let token_errors = &spec["paths"]["/oauth/token"]["post"]["responses"];
    for status in ["200", "400", "401"] {
        assert!(token_errors.get(status).is_some(), "token endpoint does not document {status}");
    }
}
