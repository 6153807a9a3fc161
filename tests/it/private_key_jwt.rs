//! `private_key_jwt` client authentication (RFC 7523 §2.2) with real signatures: keys made here, the public
//! halves registered as `jwks` or served from a `jwks_uri` on a local TLS server, assertions signed with
//! `jsonwebtoken`. Every rule has a refusing case.
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::documents::DocumentServer;
use crate::support::keys::{ed25519, es256, rs256, sign};
use crate::support::*;

fn claims(app: &TestApp, client_id: &str) -> Value {
    json!({
        "iss": client_id,
        "sub": client_id,
        "aud": app.issuer,
        "iat": now(),
        "exp": now() + 60,
        "jti": uuid::Uuid::new_v4().to_string(),
    })
}

async fn machine_token(app: &TestApp, assertion: &str) -> reqwest::Response {
    let form = [
        ("grant_type", "client_credentials"),
        ("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"),
        ("client_assertion", assertion),
    ];
    app.post_form("/oauth/token", &form).await
}

async fn register(app: &TestApp, keys: Value) -> String {
    let mut metadata = json!({
        "client_name": unique_name("Signed agent"),
        "grant_types": ["client_credentials"],
        "token_endpoint_auth_method": "private_key_jwt",
    });
    for (k, v) in keys.as_object().unwrap() {
        metadata[k] = v.clone();
    }
    let registered = app.register_client(&metadata).await;
    assert!(registered.get("client_secret").is_none(), "no secret for private_key_jwt: {registered}");
    str_field(&registered, "client_id")
}

#[tokio::test]
async fn assertions_signed_by_a_registered_key_authenticate_and_every_rule_refuses() {
    let app = spawn_app_with(&[("DCR_CLIENT_CREDENTIALS", "on")]).await;
    let metadata = app.get_json("/.well-known/oauth-authorization-server").await;
    assert!(metadata["token_endpoint_auth_methods_supported"].as_array().unwrap().contains(&json!("private_key_jwt")));
    assert_eq!(metadata["token_endpoint_auth_signing_alg_values_supported"], json!(["ES256", "RS256", "EdDSA"]));

    let (ec, ed, rsa) = (es256("ec-1"), ed25519("ed-1"), rs256("rsa-1"));
    let client_id = register(&app, json!({"jwks": {"keys": [ec.jwk, ed.jwk, rsa.jwk]}})).await;
    for signer in [&ec, &ed, &rsa] {
        let tokens = json_ok(machine_token(&app, &sign(signer, &claims(&app, &client_id))).await).await;
        assert_eq!(jwt_claims(&str_field(&tokens, "access_token"))["sub"], client_id.as_str(), "{:?}", signer.alg);
    }
    // The token endpoint's URL is an audience too, and client_id may come along if it matches.
    let mut to_endpoint = claims(&app, &client_id);
    to_endpoint["aud"] = json!(format!("{}/oauth/token", app.issuer));
    json_ok(machine_token(&app, &sign(&ec, &to_endpoint)).await).await;

    let replayed = sign(&ec, &claims(&app, &client_id));
    json_ok(machine_token(&app, &replayed).await).await;
    let again = machine_token(&app, &replayed).await;
    assert_oauth_error(again, StatusCode::UNAUTHORIZED, "invalid_client").await;

    let refused = |edit: &dyn Fn(&mut Value)| {
        let mut c = claims(&app, &client_id);
        edit(&mut c);
        sign(&ec, &c)
    };
    let outsider = es256("ec-1");
    for (why, assertion) in [
        ("wrong audience", refused(&|c| c["aud"] = json!("https://elsewhere.example"))),
        ("several audiences", refused(&|c| c["aud"] = json!([c["aud"].clone(), "https://elsewhere.example"]))),
        ("issuer as an array", refused(&|c| c["iss"] = json!([c["sub"].clone()]))),
        ("expired", refused(&|c| c["exp"] = json!(now() - 60))),
        ("lives too long", refused(&|c| c["exp"] = json!(now() + 3600))),
        ("no jti", refused(&|c| drop(c.as_object_mut().unwrap().remove("jti")))),
        ("issuer is not the client", refused(&|c| c["iss"] = json!("someone-else"))),
        ("issued in the future", refused(&|c| c["iat"] = json!(now() + 600))),
        ("key not in the JWKS", sign(&outsider, &claims(&app, &client_id))),
        ("HS256 with the public key", {
            let mut header = Header::new(Algorithm::HS256);
            header.kid = Some("ec-1".into());
            let secret = EncodingKey::from_secret(ec.jwk["x"].as_str().unwrap().as_bytes());
            jsonwebtoken::encode(&header, &claims(&app, &client_id), &secret).unwrap()
        }),
        ("PS256 is not pinned", {
            let mut header = Header::new(Algorithm::PS256);
            header.kid = Some("rsa-1".into());
            jsonwebtoken::encode(&header, &claims(&app, &client_id), &rsa.key).unwrap()
        }),
        ("unsigned", {
            let signed = sign(&ec, &claims(&app, &client_id));
            let (head, _) = signed.rsplit_once('.').unwrap();
            format!("{head}.")
        }),
    ] {
        let response = machine_token(&app, &assertion).await;
        let status = response.status();
        let body = response.text().await.unwrap();
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{why}: {body}");
        assert!(body.contains("invalid_client"), "{why}: {body}");
    }

    // Another method next to the assertion, another client_id, or another assertion type: invalid_request.
    let good = sign(&ec, &claims(&app, &client_id));
    let mixed = [
        ("grant_type", "client_credentials"),
        ("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"),
        ("client_assertion", good.as_str()),
        ("client_secret", "guess"),
    ];
    assert_oauth_error(app.post_form("/oauth/token", &mixed).await, StatusCode::BAD_REQUEST, "invalid_request").await;
    let typed = [
        ("grant_type", "client_credentials"),
        ("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:saml2-bearer"),
        ("client_assertion", good.as_str()),
    ];
    assert_oauth_error(app.post_form("/oauth/token", &typed).await, StatusCode::BAD_REQUEST, "invalid_request").await;
    // The untouched good assertion still works: nothing above spent its jti.
    let tokens = json_ok(machine_token(&app, &good).await).await;

    // The same method at introspection and revocation, each assertion once.
    let access_token = str_field(&tokens, "access_token");
    let assertion_type = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
    let introspection = sign(&ed, &claims(&app, &client_id));
    let form = [
        ("token", access_token.as_str()),
        ("client_assertion_type", assertion_type),
        ("client_assertion", introspection.as_str()),
    ];
    let active = json_ok(app.post_form("/oauth/introspect", &form).await).await;
    assert_eq!(active["active"], true, "{active}");
    assert_eq!(active["sub"], client_id.as_str());
    let replay = app.post_form("/oauth/introspect", &form).await;
    assert_oauth_error(replay, StatusCode::UNAUTHORIZED, "invalid_client").await;
    let revocation = sign(&rsa, &claims(&app, &client_id));
    let form = [
        ("token", access_token.as_str()),
        ("client_assertion_type", assertion_type),
        ("client_assertion", revocation.as_str()),
    ];
    assert_eq!(app.post_form("/oauth/revoke", &form).await.status(), StatusCode::OK);
    eventually_status(StatusCode::UNAUTHORIZED, || app.call_mcp(&access_token)).await;
}

#[tokio::test]
async fn keys_are_checked_at_registration() {
    let app = spawn_app_with(&[("DCR_CLIENT_CREDENTIALS", "on")]).await;
    let mut private = es256("p").jwk;
    private["d"] = json!("AAAA");
    for (why, keys, said) in [
        ("no keys", json!({}), "exactly one of jwks and jwks_uri"),
        (
            "both",
            json!({"jwks": {"keys": [es256("a").jwk]}, "jwks_uri": "https://keys.example/jwks.json"}),
            "exactly one of jwks and jwks_uri",
        ),
        ("private key", json!({"jwks": {"keys": [private]}}), "private key"),
        ("symmetric key", json!({"jwks": {"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}}), "public EC P-256"),
        ("http jwks_uri", json!({"jwks_uri": "http://keys.example/jwks.json"}), "https URL"),
        ("IP jwks_uri", json!({"jwks_uri": "https://127.0.0.1/jwks.json"}), "https URL"),
        ("no path", json!({"jwks_uri": "https://keys.example/"}), "https URL"),
    ] {
        let mut metadata =
            json!({"grant_types": ["client_credentials"], "token_endpoint_auth_method": "private_key_jwt"});
        for (k, v) in keys.as_object().unwrap() {
            metadata[k] = v.clone();
        }
        let body =
            assert_oauth_error(app.register(&metadata).await, StatusCode::BAD_REQUEST, "invalid_client_metadata").await;
        assert!(body["error_description"].as_str().unwrap().contains(said), "{why}: {body}");
    }
    let with_secret = json!({
        "redirect_uris": [REDIRECT_URI],
        "token_endpoint_auth_method": "client_secret_basic",
        "jwks": {"keys": [es256("a").jwk]},
    });
    assert_oauth_error(app.register(&with_secret).await, StatusCode::BAD_REQUEST, "invalid_client_metadata").await;
}

#[tokio::test]
async fn keys_come_from_the_jwks_uri_and_are_cached() {
    let documents = DocumentServer::start().await;
    let app = documents.gateway_with(&[("DCR_CLIENT_CREDENTIALS", "on")]).await;
    let first = es256("k1");
    documents.docs.serve_json("/jwks.json", &json!({"keys": [first.jwk]}), "max-age=600");
    let client_id = register(&app, json!({"jwks_uri": documents.url("/jwks.json")})).await;
    json_ok(machine_token(&app, &sign(&first, &claims(&app, &client_id))).await).await;
    json_ok(machine_token(&app, &sign(&first, &claims(&app, &client_id))).await).await;
    assert_eq!(documents.docs.hits("/jwks.json"), 1, "cached");

    // A new key id is fetched for at most once a minute: right after the first fetch, the cache answers.
    let second = es256("k2");
    documents.docs.serve_json("/jwks.json", &json!({"keys": [first.jwk, second.jwk]}), "max-age=600");
    let early = machine_token(&app, &sign(&second, &claims(&app, &client_id))).await;
    assert_oauth_error(early, StatusCode::UNAUTHORIZED, "invalid_client").await;
    assert_eq!(documents.docs.hits("/jwks.json"), 1, "no fetch storm for unknown key ids");

    // A client whose jwks_uri answers garbage cannot authenticate.
    documents.docs.set("/bad.json", 200, &[("content-type", "application/json")], "{\"keys\": 5}".into());
    let broken = register(&app, json!({"jwks_uri": documents.url("/bad.json")})).await;
    let refused = machine_token(&app, &sign(&first, &claims(&app, &broken))).await;
    assert_oauth_error(refused, StatusCode::UNAUTHORIZED, "invalid_client").await;
}
