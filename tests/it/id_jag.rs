//! Enterprise-managed authorization: Identity Assertion JWT Authorization Grants (ID-JAG) from a trusted
//! identity provider, with real signatures. The provider here is keys made in the test and served from
//! 127.0.0.1 (its discovery document and JWKS); its assertions are signed with `jsonwebtoken`. Every rule
//! has a refusing case.
use std::sync::{Arc, Mutex};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use poem::listener::{Acceptor, Listener, TcpListener};
use poem::web::{Data, Json};
use poem::{EndpointExt, Route, Server, get, handler};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::keys::{Signer, es256, rs256, sign_typed};
use crate::support::mcp::McpClient;
use crate::support::*;

const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
const ID_JAG: &str = "oauth-id-jag+jwt";

/// An identity provider as far as this server sees it: a discovery document and a key set on 127.0.0.1.
struct Provider {
    issuer: String,
}

#[handler]
fn discovery(Data(issuer): Data<&String>) -> Json<Value> {
    Json(json!({"issuer": issuer, "jwks_uri": format!("{issuer}/jwks")}))
}

#[handler]
fn jwks(Data(keys): Data<&Arc<Mutex<Value>>>) -> Json<Value> {
    Json(keys.lock().unwrap().clone())
}

impl Provider {
    async fn start(signers: &[&Signer]) -> Provider {
        let acceptor = TcpListener::bind("127.0.0.1:0").into_acceptor().await.unwrap();
        let addr = *acceptor.local_addr()[0].as_socket_addr().unwrap();
        let issuer = format!("http://127.0.0.1:{}", addr.port());
        let keys = Arc::new(Mutex::new(json!({"keys": signers.iter().map(|s| s.jwk.clone()).collect::<Vec<_>>()})));
        let app = Route::new()
            .at("/.well-known/openid-configuration", get(discovery))
            .at("/jwks", get(jwks))
            .data(issuer.clone())
            .data(keys.clone());
        tokio::spawn(Server::new_with_acceptor(acceptor).run(app));
        Provider { issuer }
    }
}

/// The claims of an ID-JAG for `client_id` about the person `sub` (ada@example.com).
fn assertion_claims(app: &TestApp, provider: &Provider, client_id: &str, sub: &str) -> Value {
    json!({
        "iss": provider.issuer,
        "sub": sub,
        "email": "ada@example.com",
        "aud": app.issuer,
        "resource": app.resource,
        "client_id": client_id,
        "scope": "mcp:read mcp:write",
        "iat": now(),
        "exp": now() + 300,
        "jti": uuid::Uuid::new_v4().to_string(),
    })
}

/// A confidential client registered by the operator for the jwt-bearer grant.
fn enterprise_client(app: &TestApp) -> ClientAuth {
    let printed = app.cli(&["client", "add", "--name", "Enterprise agent", "--grant", JWT_BEARER, "--confidential"]);
    let field = |name: &str| printed.lines().find_map(|l| l.strip_prefix(name)).unwrap().trim().to_owned();
    ClientAuth::Basic(field("client_id: "), field("client_secret: "))
}

async fn exchange(app: &TestApp, auth: &ClientAuth, assertion: &str, scope: Option<&str>) -> reqwest::Response {
    let mut form = vec![("grant_type", JWT_BEARER), ("assertion", assertion)];
    if let Some(scope) = scope {
        form.push(("scope", scope));
    }
    app.post_as("/oauth/token", auth, &form).await
}

#[tokio::test]
async fn a_trusted_providers_assertion_gets_a_token_for_its_person_without_a_consent_page() {
    let signer = rs256("idp-1");
    let provider = Provider::start(&[&signer]).await;
    let app = spawn_app().await;
    let metadata = app.get_json("/.well-known/oauth-authorization-server").await;
    assert!(metadata["grant_types_supported"].as_array().unwrap().contains(&json!(JWT_BEARER)), "{metadata}");
    assert_eq!(
        metadata["authorization_grant_profiles_supported"],
        json!(["urn:ietf:params:oauth:grant-profile:id-jag"])
    );
    app.cli(&[
        "idp",
        "add",
        "corp",
        "--issuer",
        &provider.issuer,
        "--trust-id-jag",
        "--allowed-domains",
        "example.com",
    ]);
    // A local account named ada exists: the provider's ada gets an account of her own, never this one.
    app.cli(&["user", "add", "ada", "--password", PASSWORD]);
    let auth = enterprise_client(&app);

    let claims = assertion_claims(&app, &provider, auth.client_id(), "U-1");
    let tokens = json_ok(exchange(&app, &auth, &sign_typed(&signer, Some(ID_JAG), &claims), None).await).await;
    assert!(tokens.get("refresh_token").is_none(), "no refresh token for an ID-JAG: {tokens}");
    assert!(tokens["expires_in"].as_u64().unwrap() <= 300, "no longer than the assertion: {tokens}");
    assert_eq!(scope_set(&str_field(&tokens, "scope")), scope_set(ALL_SCOPES));
    let access_token = str_field(&tokens, "access_token");
    let mut mcp = McpClient::stateless(&app, &access_token);
    let me = mcp.call_tool("whoami", json!({})).await["structuredContent"].clone();
    assert_eq!(me["username"], "ada-2", "an account made at first sight, named after the email: {me}");
    assert_eq!(me["acts_for"], "person");
    let note = mcp.call_tool("notes_create", json!({"title": "From the IdP", "body": "b"})).await;
    assert_ne!(note["isError"], true, "{note}");

    // The same iss + sub finds the same account; the audit log says the provider's policy was the consent.
    let again = assertion_claims(&app, &provider, auth.client_id(), "U-1");
    let second = json_ok(exchange(&app, &auth, &sign_typed(&signer, Some(ID_JAG), &again), None).await).await;
    let (first_claims, second_claims) = (jwt_claims(&access_token), jwt_claims(&str_field(&second, "access_token")));
    assert_eq!(second_claims["sub"], first_claims["sub"]);
    assert_eq!(
        second_claims["grant_id"], first_claims["grant_id"],
        "one grant per person and client, not one per token"
    );
    let audit = app.cli(&["audit", "--event", "enterprise_token_issued"]);
    assert_eq!(audit.matches("no consent page").count(), 2, "{audit}");
    // Another subject with the same email is another person: never matched by email.
    let other = assertion_claims(&app, &provider, auth.client_id(), "U-2");
    let third = json_ok(exchange(&app, &auth, &sign_typed(&signer, Some(ID_JAG), &other), None).await).await;
    assert_ne!(jwt_claims(&str_field(&third, "access_token"))["sub"], jwt_claims(&access_token)["sub"]);

    // The scope is what was asked, asserted and allowed at once.
    let mut narrow = assertion_claims(&app, &provider, auth.client_id(), "U-1");
    narrow["scope"] = json!("mcp:read");
    let asked_more = exchange(&app, &auth, &sign_typed(&signer, Some(ID_JAG), &narrow), Some(ALL_SCOPES)).await;
    assert_eq!(str_field(&json_ok(asked_more).await, "scope"), "mcp:read");
    narrow["jti"] = json!(uuid::Uuid::new_v4().to_string());
    let only_write = exchange(&app, &auth, &sign_typed(&signer, Some(ID_JAG), &narrow), Some("mcp:write")).await;
    assert_oauth_error(only_write, StatusCode::BAD_REQUEST, "invalid_scope").await;

    // Disabling the person ends it.
    app.cli(&["user", "disable", "ada-2"]);
    let disabled = assertion_claims(&app, &provider, auth.client_id(), "U-1");
    let refused = exchange(&app, &auth, &sign_typed(&signer, Some(ID_JAG), &disabled), None).await;
    assert_oauth_error(refused, StatusCode::BAD_REQUEST, "invalid_grant").await;
}

#[tokio::test]
async fn every_rule_of_an_id_jag_refuses() {
    let signer = es256("idp-ec");
    let provider = Provider::start(&[&signer]).await;
    let untrusted_signer = es256("idp-ec");
    let untrusted = Provider::start(&[&untrusted_signer]).await;
    let app = spawn_app().await;
    app.cli(&[
        "idp",
        "add",
        "corp",
        "--issuer",
        &provider.issuer,
        "--trust-id-jag",
        "--allowed-domains",
        "example.com",
    ]);
    let auth = enterprise_client(&app);
    let client_id = auth.client_id().to_owned();
    let good = |edit: &dyn Fn(&mut Value)| {
        let mut c = assertion_claims(&app, &provider, &client_id, "U-9");
        edit(&mut c);
        c
    };

    let replayed = sign_typed(&signer, Some(ID_JAG), &good(&|_| {}));
    json_ok(exchange(&app, &auth, &replayed, None).await).await;
    let outsider = es256("idp-ec");
    for (why, assertion, error) in [
        ("replayed jti", replayed.clone(), "invalid_grant"),
        (
            "wrong audience",
            sign_typed(&signer, Some(ID_JAG), &good(&|c| c["aud"] = json!("https://other.example"))),
            "invalid_grant",
        ),
        (
            "two audiences",
            sign_typed(
                &signer,
                Some(ID_JAG),
                &good(&|c| c["aud"] = json!([c["aud"].clone(), "https://other.example"])),
            ),
            "invalid_grant",
        ),
        ("expired", sign_typed(&signer, Some(ID_JAG), &good(&|c| c["exp"] = json!(now() - 60))), "invalid_grant"),
        (
            "issued in the future",
            sign_typed(&signer, Some(ID_JAG), &good(&|c| c["iat"] = json!(now() + 600))),
            "invalid_grant",
        ),
        (
            "no jti",
            sign_typed(&signer, Some(ID_JAG), &good(&|c| drop(c.as_object_mut().unwrap().remove("jti")))),
            "invalid_grant",
        ),
        (
            "another client",
            sign_typed(&signer, Some(ID_JAG), &good(&|c| c["client_id"] = json!("someone-else"))),
            "invalid_grant",
        ),
        (
            "another resource",
            sign_typed(&signer, Some(ID_JAG), &good(&|c| c["resource"] = json!("https://other.example/mcp"))),
            "invalid_target",
        ),
        ("not an ID-JAG", sign_typed(&signer, Some("JWT"), &good(&|_| {})), "invalid_grant"),
        ("no typ", sign_typed(&signer, None, &good(&|_| {})), "invalid_grant"),
        ("key not in the provider's set", sign_typed(&outsider, Some(ID_JAG), &good(&|_| {})), "invalid_grant"),
        (
            "untrusted issuer",
            sign_typed(&untrusted_signer, Some(ID_JAG), &good(&|c| c["iss"] = json!(untrusted.issuer))),
            "invalid_grant",
        ),
        (
            "domain not allowed",
            sign_typed(
                &signer,
                Some(ID_JAG),
                &good(&|c| {
                    c["sub"] = json!("U-10");
                    c["email"] = json!("eve@elsewhere.example");
                }),
            ),
            "invalid_grant",
        ),
        (
            "HS256",
            {
                let mut header = Header::new(Algorithm::HS256);
                header.typ = Some(ID_JAG.into());
                header.kid = Some("idp-ec".into());
                let secret = EncodingKey::from_secret(signer.jwk["x"].as_str().unwrap().as_bytes());
                jsonwebtoken::encode(&header, &good(&|_| {}), &secret).unwrap()
            },
            "invalid_grant",
        ),
    ] {
        let response = exchange(&app, &auth, &assertion, None).await;
        let status = response.status();
        let body: Value = response.json().await.unwrap();
        assert_eq!((status, body["error"].as_str().unwrap()), (StatusCode::BAD_REQUEST, error), "{why}: {body}");
    }
    let none = app.post_as("/oauth/token", &auth, &[("grant_type", JWT_BEARER)]).await;
    assert_oauth_error(none, StatusCode::BAD_REQUEST, "invalid_request").await;
    let elsewhere = sign_typed(&signer, Some(ID_JAG), &good(&|_| {}));
    let form =
        [("grant_type", JWT_BEARER), ("assertion", elsewhere.as_str()), ("resource", "https://other.example/mcp")];
    assert_oauth_error(app.post_as("/oauth/token", &auth, &form).await, StatusCode::BAD_REQUEST, "invalid_target")
        .await;

    // Public clients cannot hold the grant: anyone holding an unspent assertion could redeem it.
    let public = app.cli_output(&["client", "add", "--name", "Public agent", "--grant", JWT_BEARER]);
    assert!(!public.status.success() && String::from_utf8_lossy(&public.stderr).contains("confidential"));
    let anonymous = json!({"grant_types": [JWT_BEARER], "token_endpoint_auth_method": "none"});
    assert_oauth_error(app.register(&anonymous).await, StatusCode::BAD_REQUEST, "invalid_client_metadata").await;

    // A client not registered for the grant, and a provider the operator disabled.
    let (id, secret) = app.register_confidential_client("client_secret_basic").await;
    let other_client = ClientAuth::Basic(id.clone(), secret);
    let for_other = sign_typed(&signer, Some(ID_JAG), &assertion_claims(&app, &provider, &id, "U-9"));
    assert_oauth_error(
        exchange(&app, &other_client, &for_other, None).await,
        StatusCode::BAD_REQUEST,
        "unauthorized_client",
    )
    .await;
    app.cli(&["idp", "disable", "corp"]);
    let while_disabled = sign_typed(&signer, Some(ID_JAG), &good(&|_| {}));
    assert_oauth_error(exchange(&app, &auth, &while_disabled, None).await, StatusCode::BAD_REQUEST, "invalid_grant")
        .await;
    app.cli(&["idp", "enable", "corp"]);
    let enabled = sign_typed(&signer, Some(ID_JAG), &good(&|_| {}));
    json_ok(exchange(&app, &auth, &enabled, None).await).await;
    let listed = app.cli(&["idp", "list"]);
    assert!(listed.contains("corp") && listed.contains("trusted") && listed.contains("example.com"), "{listed}");
}

#[tokio::test]
async fn the_operator_cannot_add_a_provider_that_could_not_work() {
    let app = spawn_app().await;
    for args in [
        vec!["idp", "add", "corp", "--issuer", "http://idp.example.com", "--trust-id-jag"],
        vec!["idp", "add", "corp", "--issuer", "https://idp.example.com"],
        vec!["idp", "add", "bad name", "--issuer", "https://idp.example.com", "--trust-id-jag"],
        vec![
            "idp",
            "add",
            "corp",
            "--issuer",
            "https://idp.example.com",
            "--trust-id-jag",
            "--allowed-domains",
            "nodot",
        ],
    ] {
        let output = app.cli_output(&args);
        assert!(!output.status.success(), "{args:?} was accepted");
    }
    // A provider whose keys cannot be fetched (nothing listens there): its assertions are refused, not a
    // server error.
    let issuer = "https://127.0.0.1:1";
    app.cli(&["idp", "add", "corp", "--issuer", issuer, "--trust-id-jag", "--allow-signup"]);
    let again = app.cli_output(&["idp", "add", "corp2", "--issuer", issuer, "--trust-id-jag"]);
    assert!(String::from_utf8_lossy(&again.stderr).contains("exists already"));
    let auth = enterprise_client(&app);
    let signer = rs256("k");
    let claims = json!({
        "iss": issuer, "sub": "U-1", "aud": app.issuer, "client_id": auth.client_id(), "scope": "mcp:read",
        "iat": now(), "exp": now() + 300, "jti": "j-1",
    });
    let refused = exchange(&app, &auth, &sign_typed(&signer, Some(ID_JAG), &claims), None).await;
    let body = assert_oauth_error(refused, StatusCode::BAD_REQUEST, "invalid_grant").await;
    assert!(body["error_description"].as_str().unwrap().contains("signing keys"), "{body}");
}

#[tokio::test]
async fn an_admin_sees_the_providers_and_can_stop_trusting_one() {
    let signer = es256("idp-admin");
    let provider = Provider::start(&[&signer]).await;
    let app = spawn_app().await;
    app.cli(&["idp", "add", "corp", "--issuer", &provider.issuer, "--trust-id-jag", "--allow-signup"]);
    let auth = enterprise_client(&app);
    app.cli(&["user", "add", "root", "--admin", "--password", PASSWORD]);
    let mut admin = Browser::new(&app);
    admin.login("root", PASSWORD).await;
    let html = admin.page("/admin").await;
    assert!(html.contains("corp") && html.contains(&provider.issuer) && html.contains("ID-JAG"), "{html}");
    let csrf = extract_hidden(&html, "csrf_token");

    let forged = [("csrf_token", "forged"), ("name", "corp"), ("action", "disable")];
    assert_html_error(admin.post_form("/admin/idps", &forged).await, StatusCode::BAD_REQUEST).await;
    let disable = [("csrf_token", csrf.as_str()), ("name", "corp"), ("action", "disable")];
    assert_eq!(admin.post_form("/admin/idps", &disable).await.status(), StatusCode::SEE_OTHER);
    let claims = assertion_claims(&app, &provider, auth.client_id(), "U-1");
    let refused = exchange(&app, &auth, &sign_typed(&signer, Some(ID_JAG), &claims), None).await;
    assert_oauth_error(refused, StatusCode::BAD_REQUEST, "invalid_grant").await;
    let unknown = [("csrf_token", csrf.as_str()), ("name", "nobody"), ("action", "disable")];
    assert_html_error(admin.post_form("/admin/idps", &unknown).await, StatusCode::NOT_FOUND).await;
    let audit = app.cli(&["audit", "--event", "identity_provider_changed"]);
    assert!(audit.contains("corp disabled, by an admin"), "{audit}");
}
