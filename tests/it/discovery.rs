use crate::support::*;
use reqwest::StatusCode;
use serde_json::{Value, json};

fn sorted_strings(value: &Value) -> Vec<String> {
    let mut items: Vec<String> = value
        .as_array()
        .unwrap_or_else(|| panic!("expected an array, got {value}"))
        .iter()
        .map(|item| item.as_str().expect("array of strings").to_string())
        .collect();
    items.sort();
    items
}

#[tokio::test]
async fn protected_resource_metadata_names_the_mcp_resource_and_this_authorization_server() {
    let app = spawn_app().await;
    for path in ["/.well-known/oauth-protected-resource", "/.well-known/oauth-protected-resource/mcp"] {
        let prm = app.get_json(path).await;
        assert_eq!(prm["resource"], format!("{}/mcp", app.base), "{path}");
        assert_eq!(prm["authorization_servers"], json!([app.issuer]), "{path}");
        assert_eq!(sorted_strings(&prm["scopes_supported"]), ["mcp:read", "mcp:write"]);
        assert_eq!(prm["bearer_methods_supported"], json!(["header"]), "{path}");
    }
}

#[tokio::test]
async fn protected_resource_metadata_follows_the_configured_resource_uri() {
    let app = spawn_app_with(&[("MCP_RESOURCE_URI", "https://mcp.example.com/mcp")]).await;
    let prm = app.get_json("/.well-known/oauth-protected-resource/mcp").await;
    assert_eq!(prm["resource"], "https://mcp.example.com/mcp");
    assert_eq!(prm["authorization_servers"], json!([app.issuer]));
}

#[tokio::test]
async fn authorization_server_metadata_lists_every_endpoint_under_the_issuer() {
    let app = spawn_app().await;
    let metadata = app.get_json("/.well-known/oauth-authorization-server").await;
    let issuer = &app.issuer;
    assert_eq!(metadata["issuer"], issuer.as_str());
    for (field, path) in [
        ("authorization_endpoint", "/oauth/authorize"),
        ("token_endpoint", "/oauth/token"),
        ("registration_endpoint", "/oauth/register"),
        ("revocation_endpoint", "/oauth/revoke"),
        ("introspection_endpoint", "/oauth/introspect"),
        ("jwks_uri", "/.well-known/jwks.json"),
    ] {
        assert_eq!(metadata[field], format!("{issuer}{path}"), "{field}");
    }
}

#[tokio::test]
async fn authorization_server_metadata_advertises_the_code_flow_with_s256_and_client_credentials() {
    let app = spawn_app().await;
    let metadata = app.get_json("/.well-known/oauth-authorization-server").await;
    assert_eq!(metadata["response_types_supported"], json!(["code"]));
    assert_eq!(metadata["response_modes_supported"], json!(["query"]));
    assert_eq!(metadata["code_challenge_methods_supported"], json!(["S256"]));
    assert_eq!(
        sorted_strings(&metadata["grant_types_supported"]),
        ["authorization_code", "client_credentials", "refresh_token", "urn:ietf:params:oauth:grant-type:jwt-bearer"]
    );
    assert_eq!(
        sorted_strings(&metadata["token_endpoint_auth_methods_supported"]),
        ["client_secret_basic", "client_secret_post", "none", "private_key_jwt"]
    );
    let scopes = sorted_strings(&metadata["scopes_supported"]);
    assert!(scopes.iter().any(|scope| scope == "mcp:read"), "{scopes:?}");
    assert!(scopes.iter().any(|scope| scope == "mcp:write"), "{scopes:?}");
    assert_eq!(metadata["authorization_response_iss_parameter_supported"], true);
}

#[tokio::test]
async fn issuer_is_identical_in_every_metadata_document() {
    let app = spawn_app().await;
    let prm = app.get_json("/.well-known/oauth-protected-resource/mcp").await;
    let oauth = app.get_json("/.well-known/oauth-authorization-server").await;
    let openid = app.get_json("/.well-known/openid-configuration").await;
    let advertised = prm["authorization_servers"][0].as_str().expect("an authorization server");
    assert_eq!(oauth["issuer"], advertised);
    assert_eq!(openid["issuer"], advertised);
    assert!(!advertised.ends_with('/'), "issuer must not end with a slash");
}

#[tokio::test]
async fn openid_configuration_mirrors_the_oauth_metadata() {
    let app = spawn_app().await;
    let oauth = app.get_json("/.well-known/oauth-authorization-server").await;
    let openid = app.get_json("/.well-known/openid-configuration").await;
    for field in [
        "issuer",
        "authorization_endpoint",
        "token_endpoint",
        "registration_endpoint",
        "jwks_uri",
        "code_challenge_methods_supported",
    ] {
        assert_eq!(openid[field], oauth[field], "{field}");
    }
}

#[tokio::test]
async fn issuer_with_a_path_is_discoverable_at_every_path_inserted_url() {
    let app = spawn_app_with(&[("AUTH_ISSUER", "{base}/tenant")]).await;
    let issuer = format!("{}/tenant", app.base);
    assert_eq!(app.issuer, issuer);
    for path in [
        "/.well-known/oauth-authorization-server/tenant",
        "/.well-known/openid-configuration/tenant",
        "/tenant/.well-known/openid-configuration",
    ] {
        let metadata = app.get_json(path).await;
        assert_eq!(metadata["issuer"], issuer, "{path}");
        assert_eq!(metadata["token_endpoint"], format!("{issuer}/oauth/token"), "{path}");
        assert_eq!(metadata["authorization_endpoint"], format!("{issuer}/oauth/authorize"));
    }
}

#[tokio::test]
async fn endpoints_of_an_issuer_with_a_path_are_served_under_that_path() {
    let app = spawn_app_with(&[("AUTH_ISSUER", "{base}/tenant")]).await;
    let metadata = app.get_json("/.well-known/oauth-authorization-server/tenant").await;
    let registration_endpoint = str_field(&metadata, "registration_endpoint");
    let registered = app
        .client
        .post(registration_endpoint)
        .json(&json!({
            "redirect_uris": [REDIRECT_URI],
            "token_endpoint_auth_method": "none",
        }))
        .send()
        .await
        .expect("registration reaches the gateway");
    assert_eq!(registered.status(), StatusCode::CREATED);
    let client: Value = registered.json().await.expect("registration JSON");
    let client_id = str_field(&client, "client_id");
    let token_endpoint = str_field(&metadata, "token_endpoint");
    assert!(token_endpoint.ends_with("/tenant/oauth/token"), "{token_endpoint}");
    let response = app
        .client
        .post(token_endpoint)
        .form(&[("grant_type", "urn:example:bogus"), ("client_id", client_id.as_str())])
        .send()
        .await
        .expect("token request reaches the gateway");
    assert_oauth_error(response, StatusCode::BAD_REQUEST, "unsupported_grant_type").await;
}

#[tokio::test]
async fn jwks_publishes_p256_public_keys_without_private_parts() {
    let app = spawn_app().await;
    let jwks = app.get_json("/.well-known/jwks.json").await;
    let keys = jwks["keys"].as_array().expect("a keys array");
    assert!(!keys.is_empty(), "at least one signing key is published");
    for key in keys {
        assert_eq!(key["kty"], "EC", "{key}");
        assert_eq!(key["crv"], "P-256", "{key}");
        assert_eq!(key["alg"], "ES256", "{key}");
        assert_eq!(key["use"], "sig", "{key}");
        assert!(!str_field(key, "kid").is_empty(), "{key}");
        for coordinate in ["x", "y"] {
            let decoded = b64_decode(&str_field(key, coordinate));
            assert_eq!(decoded.len(), 32, "{coordinate} of {key}");
        }
        assert!(key.get("d").is_none(), "private key leaked: {key}");
    }
}

#[tokio::test]
async fn jwks_is_empty_when_tokens_are_signed_with_a_shared_secret() {
    let app = spawn_app_with(&[("JWT_SECRET", JWT_SECRET)]).await;
    let jwks = app.get_json("/.well-known/jwks.json").await;
    assert_eq!(jwks["keys"], json!([]));
}

#[tokio::test]
async fn swagger_ui_is_served_at_docs() {
    let app = spawn_app().await;
    // The page is made at the first request; the second gets the same.
    for _ in 0..2 {
        let response = app.get("/docs").await;
        assert_eq!(response.status(), StatusCode::OK);
        let content_type = header(&response, "content-type").unwrap_or_default();
        assert!(content_type.starts_with("text/html"), "{content_type}");
        let page = response.text().await.unwrap();
        assert!(page.contains("SwaggerUIBundle") && page.contains("/oauth/token"), "not the docs with our spec");
    }
    let receiver = app.get("/docs/oauth-receiver.html").await;
    assert_eq!(receiver.status(), StatusCode::OK);
}

#[tokio::test]
async fn openapi_document_describes_the_oauth_endpoints() {
    let app = spawn_app().await;
    let openapi = app.get_json("/openapi.json").await;
    for path in [
        "/oauth/token",
        "/oauth/register",
        "/oauth/revoke",
        "/oauth/introspect",
        "/oauth/authorize",
        "/.well-known/oauth-authorization-server",
    ] {
        assert!(openapi["paths"].get(path).is_some(), "{path} missing from the OpenAPI document");
    }
}
