use crate::support::*;
use reqwest::{Response, StatusCode};
use serde_json::json;

async fn client_and_logged_in_browser(app: &TestApp) -> (String, Browser) {
    let client_id = app.register_public_client(REDIRECT_URI).await;
    let browser = signup_and_login(app, "alice", PASSWORD).await;
    (client_id, browser)
}

/// RFC 6749 §4.1.2.1: once the client and redirect URI are trusted, errors go back to the client. Trusted
/// means registered by the operator; for self-registered clients see `security_redirects.rs`.
async fn assert_redirected_with_error(
    app: &TestApp,
    adjust: impl FnOnce(AuthorizeParams) -> AuthorizeParams,
    error: &str,
) {
    let client_id = app.operator_client(REDIRECT_URI);
    let mut browser = signup_and_login(app, "alice", PASSWORD).await;
    let params = adjust(app.authorize_params(&client_id, REDIRECT_URI, &pkce_pair()));
    let response = browser.get(&params.path()).await;
    assert_redirect_error(&response, REDIRECT_URI, &app.issuer, error);
}

fn replace_field(mut form: Vec<(String, String)>, name: &str, value: Option<&str>) -> Vec<(String, String)> {
    form.retain(|(existing, _)| existing != name);
    if let Some(value) = value {
        form.push((name.to_string(), value.to_string()));
    }
    form
}

async fn post_consent(browser: &mut Browser, form: Vec<(String, String)>, decision: &str) -> Response {
    let form = replace_field(form, "decision", Some(decision));
    browser.post_form("/oauth/authorize", &form).await
}

async fn signup_attempt(app: &TestApp, username: &str, password: &str, confirm: &str) -> Response {
    let mut browser = Browser::new(app);
    let html = browser.page("/signup").await;
    let csrf = extract_hidden(&html, "csrf_token");
    browser
        .post_form(
            "/signup",
            &[
                ("username", username),
                ("password", password),
                ("password_confirm", confirm),
                ("csrf_token", csrf.as_str()),
                ("return_to", "/"),
            ],
        )
        .await
}

#[tokio::test]
async fn unknown_client_gets_an_error_page_instead_of_a_redirect() {
    let app = spawn_app().await;
    let (_, mut browser) = client_and_logged_in_browser(&app).await;
    let params = app.authorize_params("no-such-client", REDIRECT_URI, &pkce_pair());
    assert_html_error(browser.get(&params.path()).await, StatusCode::BAD_REQUEST).await;
}

#[tokio::test]
async fn missing_client_id_gets_an_error_page_instead_of_a_redirect() {
    let app = spawn_app().await;
    let (client_id, mut browser) = client_and_logged_in_browser(&app).await;
    let params = app.authorize_params(&client_id, REDIRECT_URI, &pkce_pair()).without("client_id");
    assert_html_error(browser.get(&params.path()).await, StatusCode::BAD_REQUEST).await;
}

#[tokio::test]
async fn unregistered_redirect_uri_gets_an_error_page_instead_of_a_redirect() {
    let app = spawn_app().await;
    let (client_id, mut browser) = client_and_logged_in_browser(&app).await;
    for redirect_uri in [
        "https://evil.example/callback",
        "http://127.0.0.1:7777/callback/other",
        "http://127.0.0.1:7777/callback?extra=1",
        "http://127.0.0.1:7777/Callback",
        "http://127.0.0.1:9999/elsewhere",
        "http://localhost:7777/callback",
    ] {
        let params = app.authorize_params(&client_id, redirect_uri, &pkce_pair());
        let response = browser.get(&params.path()).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{redirect_uri}");
        assert_html_error(response, StatusCode::BAD_REQUEST).await;
    }
}

#[tokio::test]
async fn non_loopback_redirect_uri_must_match_including_the_port() {
    let app = spawn_app().await;
    let client_id = app.register_public_client("https://app.example.com/callback").await;
    let mut browser = signup_and_login(&app, "alice", PASSWORD).await;
    let params = app.authorize_params(&client_id, "https://app.example.com:8443/callback", &pkce_pair());
    assert_html_error(browser.get(&params.path()).await, StatusCode::BAD_REQUEST).await;
}

#[tokio::test]
async fn loopback_redirect_uri_may_differ_in_port_only() {
    let app = spawn_app().await;
    let (client_id, mut browser) = client_and_logged_in_browser(&app).await;
    let other_port = "http://127.0.0.1:9999/callback";
    let pkce = pkce_pair();
    let params = app.authorize_params(&client_id, other_port, &pkce);
    let html = browser.consent_page(&params).await;
    let response = browser.decide(&html, "allow").await;
    assert_eq!(response.status(), StatusCode::FOUND);
    assert!(location(&response).starts_with("http://127.0.0.1:9999/callback?"));
    let code = redirect_query(&response)["code"].clone();
    let tokens = exchange_code(&app, &client_id, &code, other_port, &pkce.verifier).await;
    assert!(tokens["access_token"].is_string());
}

#[tokio::test]
async fn missing_code_challenge_is_redirected_as_invalid_request() {
    let app = spawn_app().await;
    assert_redirected_with_error(&app, |p| p.without("code_challenge"), "invalid_request").await;
}

#[tokio::test]
async fn plain_pkce_is_rejected() {
    let app = spawn_app().await;
    assert_redirected_with_error(&app, |p| p.set("code_challenge_method", "plain"), "invalid_request").await;
}

#[tokio::test]
async fn unknown_pkce_method_is_rejected() {
    let app = spawn_app().await;
    assert_redirected_with_error(&app, |p| p.set("code_challenge_method", "S512"), "invalid_request").await;
}

#[tokio::test]
async fn missing_pkce_method_is_rejected() {
    let app = spawn_app().await;
    assert_redirected_with_error(&app, |p| p.without("code_challenge_method"), "invalid_request").await;
}

#[tokio::test]
async fn response_type_other_than_code_is_unsupported() {
    let app = spawn_app().await;
    assert_redirected_with_error(&app, |p| p.set("response_type", "token"), "unsupported_response_type").await;
}

#[tokio::test]
async fn unknown_scope_is_an_invalid_scope() {
    let app = spawn_app().await;
    assert_redirected_with_error(&app, |p| p.set("scope", "mcp:read admin:all"), "invalid_scope").await;
}

#[tokio::test]
async fn resource_other_than_this_mcp_server_is_an_invalid_target() {
    let app = spawn_app().await;
    assert_redirected_with_error(&app, |p| p.set("resource", "https://other.example.com/mcp"), "invalid_target").await;
}

#[tokio::test]
async fn repeated_parameter_is_an_invalid_request() {
    let app = spawn_app().await;
    assert_redirected_with_error(&app, |p| p.repeat("scope", "mcp:read"), "invalid_request").await;
}

#[tokio::test]
async fn omitted_resource_and_scope_default_to_this_server_and_the_registered_scope() {
    let app = spawn_app().await;
    let (client_id, mut browser) = client_and_logged_in_browser(&app).await;
    let pkce = pkce_pair();
    let params = app.authorize_params(&client_id, REDIRECT_URI, &pkce).without("resource").without("scope");
    let code = browser.authorize(&params).await;
    let tokens = exchange_code(&app, &client_id, &code, REDIRECT_URI, &pkce.verifier).await;
    assert_eq!(scope_set(&str_field(&tokens, "scope")), ["mcp:read", "mcp:write"]);
    let claims = jwt_claims(&str_field(&tokens, "access_token"));
    assert_eq!(claims["aud"], app.resource);
}

#[tokio::test]
async fn authorize_is_also_served_at_the_root_path() {
    let app = spawn_app().await;
    let (client_id, mut browser) = client_and_logged_in_browser(&app).await;
    let params = app.authorize_params(&client_id, REDIRECT_URI, &pkce_pair());
    let path = params.path().replacen("/oauth/authorize", "/authorize", 1);
    let html = browser.page(&path).await;
    assert!(is_consent_page(&html), "{html}");
}

#[tokio::test]
async fn anonymous_visitor_is_shown_the_login_form() {
    let app = spawn_app().await;
    let client_id = app.register_public_client(REDIRECT_URI).await;
    let mut browser = Browser::new(&app);
    let params = app.authorize_params(&client_id, REDIRECT_URI, &pkce_pair());
    let response = browser.get(&params.path()).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(set_cookie(&response, SESSION_COOKIE).is_none());
    let csrf_cookie = set_cookie(&response, CSRF_COOKIE).expect("the login form sets a CSRF cookie");
    assert!(cookie_attribute(&csrf_cookie, "httponly").is_some(), "{csrf_cookie}");
    assert_eq!(cookie_attribute(&csrf_cookie, "samesite").map(|v| v.to_ascii_lowercase()), Some("lax".to_string()));
    let html = response.text().await.expect("login page");
    assert!(is_login_page(&html), "{html}");
    let (form, _) = form_with_action(&html, "/login").expect("a form posting to /login");
    assert_eq!(attr(&form, "method").map(str::to_ascii_lowercase), Some("post".to_string()));
    assert!(has_input(&html, "username"));
    assert_eq!(Some(extract_hidden(&html, "csrf_token")), browser.cookie(CSRF_COOKIE));
    let return_to = extract_hidden(&html, "return_to");
    assert!(return_to.starts_with("/oauth/authorize?"), "{return_to}");
    assert!(return_to.contains(&client_id), "{return_to}");
    assert!(html.contains("href=\"/signup"), "login page links to signup: {html}");
}

#[tokio::test]
async fn login_page_offers_no_signup_when_signup_is_off() {
    let app = spawn_app_with(&[("SIGNUP", "off")]).await;
    let client_id = app.register_public_client(REDIRECT_URI).await;
    let mut browser = Browser::new(&app);
    let html = browser.page(&app.authorize_params(&client_id, REDIRECT_URI, &pkce_pair()).path()).await;
    assert!(is_login_page(&html), "{html}");
    assert!(!html.contains("/signup"), "{html}");
    assert_eq!(app.get("/signup").await.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn signup_is_closed_when_signup_is_off() {
    let app = spawn_app_with(&[("SIGNUP", "off")]).await;
    let mut browser = Browser::new(&app);
    assert_eq!(browser.get("/signup").await.status(), StatusCode::NOT_FOUND);
    let response = browser
        .post_form("/signup", &[("username", "mallory"), ("password", PASSWORD), ("password_confirm", PASSWORD)])
        .await;
    assert!(response.status().is_client_error(), "{}", response.status());
    assert!(browser.cookie(SESSION_COOKIE).is_none());
}

#[tokio::test]
async fn logging_in_returns_the_user_to_the_authorization_request() {
    let app = spawn_app().await;
    let client_id = app.register_public_client(REDIRECT_URI).await;
    signup_and_login(&app, "alice", PASSWORD).await;
    let mut browser = Browser::new(&app);
    let params = app.authorize_params(&client_id, REDIRECT_URI, &pkce_pair());
    let login_page = browser.page(&params.path()).await;
    let response = browser.submit_login(&login_page, "alice", PASSWORD).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert!(browser.cookie(SESSION_COOKIE).is_some());
    assert!(resolved(&app, &response).starts_with(&app.url("/oauth/authorize?")));
    let html = browser.page(&location(&response)).await;
    let response = browser.decide(&html, "allow").await;
    assert_eq!(redirect_query(&response).get("state").map(String::as_str), Some(STATE));
}

#[tokio::test]
async fn unknown_user_is_refused_like_a_wrong_password() {
    let app = spawn_app().await;
    let mut browser = Browser::new(&app);
    let response = browser.login("nobody", PASSWORD).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(browser.cookie(SESSION_COOKIE).is_none());
}

#[tokio::test]
async fn signup_creates_the_account_and_starts_a_session() {
    let app = spawn_app().await;
    let mut browser = Browser::new(&app);
    let page = browser.get("/signup").await;
    assert_eq!(page.status(), StatusCode::OK);
    let csrf_cookie = set_cookie(&page, CSRF_COOKIE).expect("the signup form sets a CSRF cookie");
    assert!(cookie_attribute(&csrf_cookie, "httponly").is_some(), "{csrf_cookie}");
    let html = page.text().await.expect("signup page");
    for field in ["username", "password", "password_confirm", "csrf_token", "return_to"] {
        assert!(has_input(&html, field), "signup form lacks {field}: {html}");
    }
    let response = browser.signup("alice", PASSWORD).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(resolved(&app, &response), app.url("/"));
    assert!(browser.cookie(SESSION_COOKIE).is_some());
    let response = Browser::new(&app).login("alice", PASSWORD).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER, "the new account can log in");
}

#[tokio::test]
async fn signup_rejects_invalid_usernames_and_weak_passwords() {
    let app = spawn_app().await;
    let long_name = "a".repeat(65);
    for (username, password, confirm) in [
        ("ab", PASSWORD, PASSWORD),
        ("has space", PASSWORD, PASSWORD),
        ("semi;colon", PASSWORD, PASSWORD),
        (long_name.as_str(), PASSWORD, PASSWORD),
        ("bob", "seven77", "seven77"),
        ("bob", PASSWORD, "a-different-password"),
    ] {
        let response = signup_attempt(&app, username, password, confirm).await;
        assert!(response.status().is_client_error(), "{username}/{password}: {}", response.status());
        assert!(set_cookie(&response, SESSION_COOKIE).is_none(), "{username}/{password}");
    }
    let response = Browser::new(&app).login("bob", PASSWORD).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "no account was created");
}

#[tokio::test]
async fn username_cannot_be_taken_twice() {
    let app = spawn_app().await;
    signup_and_login(&app, "alice", PASSWORD).await;
    let response = signup_attempt(&app, "alice", "another-password", "another-password").await;
    assert!(response.status().is_client_error(), "{}", response.status());
    assert!(set_cookie(&response, SESSION_COOKIE).is_none());
    let response = Browser::new(&app).login("alice", "another-password").await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn consent_page_names_the_client_its_scopes_and_where_it_redirects() {
    let app = spawn_app().await;
    let client = app
        .register_client(&json!({
            "client_name": "Evil <script>alert(1)</script> & Co",
            "redirect_uris": ["https://client.example.net/callback"],
            "token_endpoint_auth_method": "none",
        }))
        .await;
    let client_id = str_field(&client, "client_id");
    let mut browser = signup_and_login(&app, "alice", PASSWORD).await;
    let params = app.authorize_params(&client_id, "https://client.example.net/callback", &pkce_pair());
    let html = browser.consent_page(&params).await;
    assert!(!html.contains("<script>alert(1)</script>"), "client name must be escaped");
    assert!(page_text(&html).contains("Evil <script>alert(1)</script> & Co"), "{html}");
    assert!(html.contains(&client_id), "{html}");
    assert!(html.contains("mcp:read") && html.contains("mcp:write"), "{html}");
    assert!(html.contains("client.example.net"), "{html}");
    assert!(html.to_lowercase().contains("unverified"), "{html}");
}

#[tokio::test]
async fn consent_page_cannot_be_framed_or_cached() {
    let app = spawn_app().await;
    let (client_id, mut browser) = client_and_logged_in_browser(&app).await;
    let params = app.authorize_params(&client_id, REDIRECT_URI, &pkce_pair());
    let response = browser.get(&params.path()).await;
    assert_eq!(response.status(), StatusCode::OK);
    let frame_options = header(&response, "x-frame-options").unwrap_or_default();
    assert!(frame_options.eq_ignore_ascii_case("deny"), "{frame_options}");
    let csp = header(&response, "content-security-policy").unwrap_or_default();
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(!csp.contains("form-action"), "form-action would block the redirect: {csp}");
    let cache_control = header(&response, "cache-control").unwrap_or_default();
    assert!(cache_control.contains("no-store"), "{cache_control}");
}

#[tokio::test]
async fn consent_form_carries_every_authorization_parameter_back() {
    let app = spawn_app().await;
    let (client_id, mut browser) = client_and_logged_in_browser(&app).await;
    let params = app.authorize_params(&client_id, REDIRECT_URI, &pkce_pair());
    let html = browser.consent_page(&params).await;
    let (form, _) = form_with_action(&html, "/oauth/authorize").expect("consent form");
    assert_eq!(attr(&form, "method").map(str::to_ascii_lowercase), Some("post".to_string()));
    let hidden = form_hidden_inputs(&html, "/oauth/authorize");
    for (name, value) in &params.0 {
        assert_eq!(attr(&hidden, name), Some(value.as_str()), "hidden {name}");
    }
    assert!(attr(&hidden, "csrf_token").is_some_and(|token| !token.is_empty()));
    let decisions = control_values(&html, "decision");
    assert!(decisions.iter().any(|d| d == "allow"), "{decisions:?}");
    assert!(decisions.iter().any(|d| d == "deny"), "{decisions:?}");
}

#[tokio::test]
async fn allowing_consent_redirects_with_code_state_and_issuer() {
    let app = spawn_app().await;
    let (client_id, mut browser) = client_and_logged_in_browser(&app).await;
    let params = app.authorize_params(&client_id, REDIRECT_URI, &pkce_pair());
    let html = browser.consent_page(&params).await;
    let response = browser.decide(&html, "allow").await;
    assert_eq!(response.status(), StatusCode::FOUND);
    assert!(location(&response).starts_with(&format!("{REDIRECT_URI}?")));
    let query = redirect_query(&response);
    assert!(query.get("code").is_some_and(|code| !code.is_empty()), "{query:?}");
    assert_eq!(query.get("state").map(String::as_str), Some(STATE));
    assert_eq!(query.get("iss"), Some(&app.issuer));
    assert!(!query.contains_key("error"), "{query:?}");
}

#[tokio::test]
async fn denying_consent_redirects_with_access_denied() {
    let app = spawn_app().await;
    let (client_id, mut browser) = client_and_logged_in_browser(&app).await;
    let params = app.authorize_params(&client_id, REDIRECT_URI, &pkce_pair());
    let html = browser.consent_page(&params).await;
    let response = browser.decide(&html, "deny").await;
    assert_redirect_error(&response, REDIRECT_URI, &app.issuer, "access_denied");
}

#[tokio::test]
async fn consent_without_a_valid_csrf_token_is_refused() {
    let app = spawn_app().await;
    let (client_id, mut browser) = client_and_logged_in_browser(&app).await;
    let params = app.authorize_params(&client_id, REDIRECT_URI, &pkce_pair());
    let html = browser.consent_page(&params).await;
    let form = form_hidden_inputs(&html, "/oauth/authorize");
    for csrf in [Some("forged-token"), None] {
        let forged = replace_field(form.clone(), "csrf_token", csrf);
        let response = post_consent(&mut browser, forged, "allow").await;
        assert_html_error(response, StatusCode::BAD_REQUEST).await;
    }
}

#[tokio::test]
async fn consent_submission_with_an_unregistered_redirect_uri_is_refused() {
    let app = spawn_app().await;
    let (client_id, mut browser) = client_and_logged_in_browser(&app).await;
    let params = app.authorize_params(&client_id, REDIRECT_URI, &pkce_pair());
    let html = browser.consent_page(&params).await;
    let form = form_hidden_inputs(&html, "/oauth/authorize");
    let tampered = replace_field(form, "redirect_uri", Some("https://evil.example/callback"));
    let response = post_consent(&mut browser, tampered, "allow").await;
    assert_html_error(response, StatusCode::BAD_REQUEST).await;
}

#[tokio::test]
async fn consent_submission_is_validated_again() {
    let app = spawn_app().await;
    let (client_id, mut browser) = client_and_logged_in_browser(&app).await;
    let params = app.authorize_params(&client_id, REDIRECT_URI, &pkce_pair());
    let html = browser.consent_page(&params).await;
    let form = form_hidden_inputs(&html, "/oauth/authorize");
    let tampered = replace_field(form, "code_challenge_method", Some("plain"));
    let response = post_consent(&mut browser, tampered, "allow").await;
    assert_redirect_error(&response, REDIRECT_URI, &app.issuer, "invalid_request");
}

#[tokio::test]
async fn remembered_consent_skips_the_consent_page_for_an_https_redirect() {
    const HTTPS_REDIRECT: &str = "https://app.example/oauth/callback";
    let app = spawn_app().await;
    let client_id = app.register_public_client(HTTPS_REDIRECT).await;
    let mut browser = signup_and_login(&app, "alice", PASSWORD).await;
    authorize_and_get_code(&app, &mut browser, &client_id, HTTPS_REDIRECT, &pkce_pair()).await;
    let pkce = pkce_pair();
    let params = app.authorize_params(&client_id, HTTPS_REDIRECT, &pkce);
    let response = browser.get(&params.path()).await;
    assert_eq!(response.status(), StatusCode::FOUND, "consent was already given");
    let query = redirect_query(&response);
    assert_eq!(query.get("state").map(String::as_str), Some(STATE));
    assert_eq!(query.get("iss"), Some(&app.issuer));
    let tokens = exchange_code(&app, &client_id, &query["code"], HTTPS_REDIRECT, &pkce.verifier).await;
    assert!(tokens["access_token"].is_string());
}

/// RFC 8252 §8.6: any local program can listen on a loopback port and start a flow with a known client_id,
/// so a loopback redirect always asks the person again.
#[tokio::test]
async fn remembered_consent_still_asks_for_a_loopback_redirect() {
    let app = spawn_app().await;
    let (client_id, mut browser) = client_and_logged_in_browser(&app).await;
    authorize_and_get_code(&app, &mut browser, &client_id, REDIRECT_URI, &pkce_pair()).await;
    let other_port = REDIRECT_URI.replace(":7777", ":7778");
    let html = browser.consent_page(&app.authorize_params(&client_id, &other_port, &pkce_pair())).await;
    assert!(is_consent_page(&html));
}

#[tokio::test]
async fn consent_for_fewer_scopes_does_not_cover_more() {
    let app = spawn_app().await;
    let (client_id, mut browser) = client_and_logged_in_browser(&app).await;
    let narrow = app.authorize_params(&client_id, REDIRECT_URI, &pkce_pair()).set("scope", "mcp:read");
    browser.authorize(&narrow).await;
    let wide = app.authorize_params(&client_id, REDIRECT_URI, &pkce_pair());
    let html = browser.consent_page(&wide).await;
    assert!(is_consent_page(&html));
}

#[tokio::test]
async fn consent_of_one_user_does_not_cover_another() {
    let app = spawn_app().await;
    let (client_id, mut alice) = client_and_logged_in_browser(&app).await;
    authorize_and_get_code(&app, &mut alice, &client_id, REDIRECT_URI, &pkce_pair()).await;
    let mut bob = signup_and_login(&app, "bob", PASSWORD).await;
    let html = bob.consent_page(&app.authorize_params(&client_id, REDIRECT_URI, &pkce_pair())).await;
    assert!(is_consent_page(&html));
}

#[tokio::test]
async fn denied_consent_is_not_remembered() {
    let app = spawn_app().await;
    let (client_id, mut browser) = client_and_logged_in_browser(&app).await;
    let params = app.authorize_params(&client_id, REDIRECT_URI, &pkce_pair());
    let html = browser.consent_page(&params).await;
    browser.decide(&html, "deny").await;
    let html = browser.consent_page(&params).await;
    assert!(is_consent_page(&html));
}
