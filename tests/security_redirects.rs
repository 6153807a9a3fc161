//! Redirect URI attacks (DESIGN.md security rules, redirect_uri; RFC 9700 §4.1 "Insufficient Redirect URI
//! Validation" and §4.11 "Open Redirection"; OAuth 2.1 §7.5.3 exact matching). A redirect that does not match
//! a registered value exactly gets a local HTML error and never a redirect; registration refuses the
//! dangerous forms outright.
mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::json;

const REGISTERED: &str = "https://app.example.com/oauth/callback";

/// Near misses of [`REGISTERED`]: every one must be refused at /oauth/authorize without a redirect.
const NEAR_MISSES: &[&str] = &[
    // prefix, suffix and substring matches (RFC 9700 §4.1.1)
    "https://app.example.com/oauth/callback/",
    "https://app.example.com/oauth/callback/../../evil",
    "https://app.example.com/oauth/callbackx",
    "https://app.example.com/oauth/callback?next=https://evil.example",
    "https://app.example.com/oauth/callback#fragment",
    "https://app.example.com/oauth/",
    "https://app.example.com.evil.example/oauth/callback",
    "https://evil.example/https://app.example.com/oauth/callback",
    "https://app.example.com%2F.evil.example/oauth/callback",
    "https://app.example.com\\@evil.example/oauth/callback",
    // userinfo smuggling another host
    "https://app.example.com@evil.example/oauth/callback",
    "https://user:pass@app.example.com/oauth/callback",
    // case changes in scheme or host: no normalisation before comparing
    "HTTPS://app.example.com/oauth/callback",
    "https://APP.example.com/oauth/callback",
    "https://app.example.com/OAUTH/callback",
    // another port or scheme
    "https://app.example.com:8443/oauth/callback",
    "http://app.example.com/oauth/callback",
    // encodings of the same path
    "https://app.example.com/oauth%2Fcallback",
    "https://app.example.com/oauth/callback%20",
    " https://app.example.com/oauth/callback",
    "https://app.example.com/oauth/callback\t",
];

/// Script-bearing and otherwise dangerous schemes, in several spellings.
const DANGEROUS: &[&str] = &[
    "javascript:alert(1)",
    "JavaScript:alert(document.cookie)",
    "JAVASCRIPT:alert(1)",
    " javascript:alert(1)",
    "\tjavascript:alert(1)",
    "\u{0}javascript:alert(1)",
    "java\tscript:alert(1)",
    "java\nscript:alert(1)",
    "data:text/html,<script>alert(1)</script>",
    "DATA:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==",
    " data:text/html,x",
    "vbscript:msgbox(1)",
    "VBScript:msgbox(1)",
    "file:///etc/passwd",
    "//evil.example/callback",
    "/callback",
];

#[tokio::test]
async fn near_misses_of_a_registered_redirect_uri_get_an_error_page_not_a_redirect() {
    let app = spawn_app().await;
    let client_id = app.register_public_client(REGISTERED).await;
    let mut browser = signup_and_login(&app, "alice", PASSWORD).await;
    for redirect_uri in NEAR_MISSES.iter().chain(DANGEROUS) {
        let params = app.authorize_params(&client_id, redirect_uri, &pkce_pair());
        let response = browser.get(&params.path()).await;
        let page = assert_html_error(response, StatusCode::BAD_REQUEST).await;
        assert!(!page.contains("<script>alert"), "the refused URI is escaped on the page: {redirect_uri:?}");
    }
    // The exact value still works: the refusals above were about the URI, not the client.
    let params = app.authorize_params(&client_id, REGISTERED, &pkce_pair());
    assert!(is_consent_page(&browser.page(&params.path()).await));
}

#[tokio::test]
async fn dangerous_redirect_uris_cannot_be_registered_in_any_spelling() {
    let app = spawn_app().await;
    let mut refused = DANGEROUS.to_vec();
    refused.extend([
        "https://app.example.com/callback#frag",
        "https://user@app.example.com/callback",
        "http://app.example.com/callback",
    ]);
    for redirect_uri in refused {
        let response = app
            .register(
                &json!({"client_name": "x", "redirect_uris": [redirect_uri], "token_endpoint_auth_method": "none"}),
            )
            .await;
        assert_oauth_error(response, StatusCode::BAD_REQUEST, "invalid_redirect_uri").await;
    }
}

#[tokio::test]
async fn a_failed_login_cannot_be_turned_into_an_open_redirect() {
    let app = spawn_app().await;
    signup_and_login(&app, "alice", PASSWORD).await;
    for target in [
        "https://evil.example/",
        "//evil.example/",
        "/\\evil.example/",
        "\\\\evil.example",
        "javascript:alert(1)",
        "/%2F%2Fevil.example",
        "http:evil.example",
    ] {
        let mut browser = Browser::new(&app);
        let page = browser.page(&format!("/login?return_to={}", urlencode(target))).await;
        // A wrong password first, then the right one: the return target must still be local.
        let failed = browser.submit_login(&page, "alice", "wrong-password").await;
        assert_eq!(failed.status(), StatusCode::UNAUTHORIZED);
        let retry_page = failed.text().await.expect("login page again");
        let response = browser.submit_login(&retry_page, "alice", PASSWORD).await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "{target}");
        let location = location(&response);
        assert!(
            location.starts_with('/') && !location.starts_with("//") && !location.contains('\\'),
            "{target} → {location}"
        );
    }
}

#[tokio::test]
async fn tampering_with_the_consent_form_is_refused_or_harmless() {
    let app = spawn_app().await;
    let client_id = app.register_public_client(REDIRECT_URI).await;
    let mut browser = signup_and_login(&app, "alice", PASSWORD).await;
    let params = app.authorize_params(&client_id, REDIRECT_URI, &pkce_pair());
    let html = browser.consent_page(&params).await;
    let form = form_hidden_inputs(&html, "/oauth/authorize");

    // Another redirect URI (of this client's own shape) in the submitted form: a local error page.
    for evil in ["https://evil.example/callback", "http://127.0.0.1:7777/callback/../x", "javascript:alert(1)"] {
        let mut tampered = form.clone();
        tampered.retain(|(name, _)| name != "redirect_uri");
        tampered.push(("redirect_uri".into(), evil.into()));
        tampered.push(("decision".into(), "allow".into()));
        let response = browser.post_form("/oauth/authorize", &tampered).await;
        assert_html_error(response, StatusCode::BAD_REQUEST).await;
    }
    // Another client_id: the consent was shown for one client, so it cannot be spent on another.
    let other = app.register_public_client("http://127.0.0.1:7777/other").await;
    let mut tampered = form.clone();
    tampered.retain(|(name, _)| name != "client_id");
    tampered.push(("client_id".into(), other));
    tampered.push(("decision".into(), "allow".into()));
    let response = browser.post_form("/oauth/authorize", &tampered).await;
    assert_html_error(response, StatusCode::BAD_REQUEST).await;

    // A changed state travels back verbatim: it is the client's own value, checked by the client.
    let mut tampered = form.clone();
    tampered.retain(|(name, _)| name != "state");
    tampered.push(("state".into(), "<script>x</script>".into()));
    tampered.push(("decision".into(), "allow".into()));
    let response = browser.post_form("/oauth/authorize", &tampered).await;
    assert_eq!(response.status(), StatusCode::FOUND);
    let location = location(&response);
    assert!(location.starts_with(REDIRECT_URI), "{location}");
    assert!(!location.contains("<script>"), "state is URL-encoded in the redirect: {location}");
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}
