//! Redirect URI attacks (README security model, redirect URIs; RFC 9700 §4.1 "Insufficient Redirect URI
//! Validation" and §4.11 "Open Redirection"; OAuth 2.1 §7.5.3 exact matching). A redirect that does not match
//! a registered value exactly gets a local HTML error and never a redirect; registration refuses the
//! dangerous forms outright.

use crate::support::*;
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

    // The decision is bound (by a MAC keyed per session) to what the page showed: another client with the
    // very same redirect URI, or another state, produces no code.
    let twin = app.register_public_client(REDIRECT_URI).await;
    for (field, value) in [("client_id", twin.as_str()), ("state", "<script>x</script>"), ("state", "")] {
        let tampered = replace_field(&form, field, value);
        let response = browser.post_form("/oauth/authorize", &tampered).await;
        assert!(header(&response, "location").is_none(), "{field}={value:?} must not produce a code");
        assert_html_error(response, StatusCode::BAD_REQUEST).await;
    }
    let mut without_mac = form.clone();
    without_mac.retain(|(name, _)| name != "consent_mac");
    without_mac.push(("decision".into(), "allow".into()));
    assert_html_error(browser.post_form("/oauth/authorize", &without_mac).await, StatusCode::BAD_REQUEST).await;
    // The untouched form still works, and its state goes back URL-encoded.
    let response = browser.post_form("/oauth/authorize", &replace_field(&form, "decision", "allow")).await;
    assert_eq!(response.status(), StatusCode::FOUND);
    assert!(location(&response).starts_with(REDIRECT_URI));
}

/// The form with `field` set to `value` and the decision `allow`.
fn replace_field(form: &[(String, String)], field: &str, value: &str) -> Vec<(String, String)> {
    let mut tampered: Vec<(String, String)> = form.iter().filter(|(name, _)| name != field).cloned().collect();
    tampered.push((field.into(), value.into()));
    if field != "decision" {
        tampered.push(("decision".into(), "allow".into()));
    }
    tampered
}

/// RFC 9700 §4.11.2, MCP authorization "Open Redirection": anyone can register a client whose redirect URI is
/// their own site. An error found before the person has seen the consent page must not send the browser
/// there on its own (our hostname would launder phishing links); the person sees our page, naming the host,
/// with a link to follow if they choose. Operator-registered clients keep the RFC 6749 redirect.
#[tokio::test]
async fn a_self_registered_client_cannot_use_the_authorization_endpoint_as_an_open_redirector() {
    let app = spawn_app().await;
    let evil = "https://evil.example/landing";
    let client_id = app.register_public_client(evil).await;
    for adjust in [
        ("response_type", "bogus"),
        ("code_challenge_method", "plain"),
        ("scope", "admin:everything"),
        ("resource", "https://elsewhere.example/mcp"),
    ] {
        let params = app.authorize_params(&client_id, evil, &pkce_pair()).set(adjust.0, adjust.1);
        // Before sign-in (a link sent to anyone) and after.
        let response = app.get(&params.path()).await;
        assert!(header(&response, "location").is_none(), "{adjust:?}: no automatic redirect");
        let html = assert_html_error(response, StatusCode::BAD_REQUEST).await;
        assert!(page_text(&html).contains("evil.example"), "the destination host is named: {html}");
        let link = format!("{evil}?error=");
        assert!(
            links(&html).iter().any(|l| l.starts_with(&link)),
            "a link the person may follow, carrying the error: {html}"
        );
    }
    let mut browser = signup_and_login(&app, "alice", PASSWORD).await;
    let params = app.authorize_params(&client_id, evil, &pkce_pair()).set("response_type", "bogus");
    let response = browser.get(&params.path()).await;
    assert!(header(&response, "location").is_none());
    assert_html_error(response, StatusCode::BAD_REQUEST).await;

    let operator = app.operator_client(REDIRECT_URI);
    let params = app.authorize_params(&operator, REDIRECT_URI, &pkce_pair()).set("response_type", "bogus");
    let response = app.get(&params.path()).await;
    assert_redirect_error(&response, REDIRECT_URI, &app.issuer, "unsupported_response_type");
}

/// RFC 8252 §7.1: a native app's private-use scheme is a reverse domain name it controls. Schemes without a dot
/// belong to the system or other programs (`ms-msdt:` ran diagnostics, `search-ms:` opens searches), which
/// would act on the URI or receive the code: refused at registration and, for rows registered before the
/// rule, at authorize.
#[tokio::test]
async fn private_use_redirect_schemes_must_be_reverse_domain_names() {
    let app = spawn_app().await;
    for redirect_uri in ["ms-msdt:/id", "search-ms:query=x", "sms:+15555550100", "zoommtg://zoom.us/join", "myapp://cb"]
    {
        let metadata =
            json!({"client_name": "x", "redirect_uris": [redirect_uri], "token_endpoint_auth_method": "none"});
        assert_oauth_error(app.register(&metadata).await, StatusCode::BAD_REQUEST, "invalid_redirect_uri").await;
    }
    let client_id = app.register_public_client("com.example.app:/oauth2redirect").await;
    let old_row = vec![json!(["ms-msdt:/id"]).to_string().into(), client_id.clone().into()];
    app.sql("UPDATE clients SET redirect_uris = $1 WHERE client_id = $2", old_row).await;
    let params = app.authorize_params(&client_id, "ms-msdt:/id", &pkce_pair());
    let response = app.get(&params.path()).await;
    assert!(header(&response, "location").is_none());
    assert_html_error(response, StatusCode::BAD_REQUEST).await;
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// A Client ID Metadata Document is the client's registration, and its publisher may change it at will. A
/// consent is remembered for an https redirect, so when a re-fetched document lists other redirect URIs
/// the consents given to that client are withdrawn (in the same transaction as the change), as a change
/// by RFC 7592 `PUT` does: a remembered consent never sends a code to an address the person did not see.
#[tokio::test]
async fn a_changed_metadata_document_withdraws_the_consent_given_to_it() {
    let server = crate::support::documents::DocumentServer::start().await;
    let client_id = server.url("/clients/web.json");
    let (first, second) = ("https://app.example/callback", "https://collector.example/callback");
    let mut doc = crate::support::documents::document(&client_id, first);
    server.docs.serve_json("/clients/web.json", &doc, "no-store");
    let app = server.gateway().await;
    let mut browser = signup_and_login(&app, "alice", PASSWORD).await;
    let params = app.authorize_params(&client_id, first, &pkce_pair());
    browser.authorize(&params).await;
    let again = browser.get(&app.authorize_params(&client_id, first, &pkce_pair()).path()).await;
    assert_eq!(again.status(), StatusCode::FOUND, "the consent is remembered for the https redirect");

    doc["redirect_uris"] = json!([first, second]);
    server.docs.serve_json("/clients/web.json", &doc, "no-store");
    for redirect_uri in [second, first] {
        let response = browser.get(&app.authorize_params(&client_id, redirect_uri, &pkce_pair()).path()).await;
        assert!(header(&response, "location").is_none(), "{redirect_uri}: no code without asking again");
        assert!(is_consent_page(&response.text().await.unwrap()), "{redirect_uri}: the person is asked again");
    }
}
