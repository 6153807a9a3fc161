//! Browser sessions (README security model: cookies, CSRF, a new session id at sign-in; RFC 9700 §4.7 CSRF,
//! §4.11 open redirection; OWASP session fixation). Moved here from the authorization tests so the attacks on
//! sessions sit together.

use crate::support::*;
use reqwest::StatusCode;

#[tokio::test]
async fn wrong_password_is_refused_without_a_session() {
    let app = spawn_app().await;
    signup_and_login(&app, "alice", PASSWORD).await;
    let mut browser = Browser::new(&app);
    let response = browser.login("alice", "not-the-password").await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(set_cookie(&response, SESSION_COOKIE).is_none());
    let content_type = header(&response, "content-type").unwrap_or_default();
    assert!(content_type.starts_with("text/html"), "{content_type}");
    let html = response.text().await.expect("login page");
    assert!(is_login_page(&html), "the form is shown again: {html}");
    assert!(browser.cookie(SESSION_COOKIE).is_none());
}

#[tokio::test]
async fn login_redirects_only_to_local_paths() {
    let app = spawn_app().await;
    signup_and_login(&app, "alice", PASSWORD).await;
    for (return_to, expected) in [
        ("/connections", "/connections"),
        ("https://evil.example/", "/"),
        ("//evil.example/", "/"),
        ("/\\evil.example/", "/"),
        ("http://127.0.0.1:1/steal", "/"),
    ] {
        let mut browser = Browser::new(&app);
        let html = browser.page("/login").await;
        let csrf = extract_hidden(&html, "csrf_token");
        let response = browser
            .post_form(
                "/login",
                &[
                    ("username", "alice"),
                    ("password", PASSWORD),
                    ("csrf_token", csrf.as_str()),
                    ("return_to", return_to),
                ],
            )
            .await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "{return_to}");
        assert_eq!(resolved(&app, &response), app.url(expected), "{return_to}");
    }
}

#[tokio::test]
async fn login_without_the_csrf_cookie_is_refused() {
    let app = spawn_app().await;
    signup_and_login(&app, "alice", PASSWORD).await;
    let mut victim = Browser::new(&app);
    let html = victim.page("/login").await;
    let csrf = extract_hidden(&html, "csrf_token");
    let mut attacker = Browser::new(&app);
    let response = attacker
        .post_form(
            "/login",
            &[("username", "alice"), ("password", PASSWORD), ("csrf_token", csrf.as_str()), ("return_to", "/")],
        )
        .await;
    assert!(response.status().is_client_error(), "{}", response.status());
    assert!(attacker.cookie(SESSION_COOKIE).is_none());
}

#[tokio::test]
async fn login_with_a_mismatched_csrf_token_is_refused() {
    let app = spawn_app().await;
    signup_and_login(&app, "alice", PASSWORD).await;
    let mut browser = Browser::new(&app);
    browser.page("/login").await;
    let response = browser
        .post_form(
            "/login",
            &[("username", "alice"), ("password", PASSWORD), ("csrf_token", "forged-token"), ("return_to", "/")],
        )
        .await;
    assert!(response.status().is_client_error(), "{}", response.status());
    assert!(browser.cookie(SESSION_COOKIE).is_none());
}

#[tokio::test]
async fn session_cookie_is_http_only_lax_and_site_wide() {
    let app = spawn_app().await;
    let response = Browser::new(&app).signup("alice", PASSWORD).await;
    let cookie = set_cookie(&response, SESSION_COOKIE).expect("signup sets the session cookie");
    assert!(cookie_attribute(&cookie, "httponly").is_some(), "{cookie}");
    assert_eq!(
        cookie_attribute(&cookie, "samesite").map(|v| v.to_ascii_lowercase()),
        Some("lax".to_string()),
        "{cookie}"
    );
    assert_eq!(cookie_attribute(&cookie, "path").as_deref(), Some("/"), "{cookie}");
    assert!(cookie_attribute(&cookie, "secure").is_none(), "plain http issuer: {cookie}");
}

#[tokio::test]
async fn session_cookie_is_secure_and_host_only_when_the_issuer_is_https() {
    let app = spawn_app_with(&[("AUTH_ISSUER", "https://gateway.example.com")]).await;
    let response = Browser::new(&app).signup("alice", PASSWORD).await;
    let name = format!("__Host-{SESSION_COOKIE}");
    let cookie = set_cookie(&response, &name).expect("signup sets the __Host- session cookie");
    assert!(cookie_attribute(&cookie, "secure").is_some(), "{cookie}");
    assert!(cookie_attribute(&cookie, "httponly").is_some(), "{cookie}");
    assert_eq!(cookie_attribute(&cookie, "path").as_deref(), Some("/"), "{cookie}");
    assert!(cookie_attribute(&cookie, "domain").is_none(), "{cookie}");
}

#[tokio::test]
async fn session_id_is_fresh_at_every_login() {
    let app = spawn_app().await;
    let first = signup_and_login(&app, "alice", PASSWORD).await.cookie(SESSION_COOKIE).expect("session after signup");
    let planted = "attacker-chosen-session-id";
    let mut browser = Browser::new(&app);
    browser.set_cookie(SESSION_COOKIE, planted);
    let response = browser.login("alice", PASSWORD).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let second = browser.cookie(SESSION_COOKIE).expect("session after login");
    assert_ne!(second, planted);
    assert_ne!(second, first);
    let mut other = Browser::new(&app);
    other.login("alice", PASSWORD).await;
    let third = other.cookie(SESSION_COOKIE).expect("session after login");
    assert_ne!(third, second);
}

#[tokio::test]
async fn logout_ends_the_session_on_the_server() {
    let app = spawn_app().await;
    let client_id = app.register_public_client(REDIRECT_URI).await;
    let mut browser = signup_and_login(&app, "alice", PASSWORD).await;
    let stolen = browser.cookie(SESSION_COOKIE).expect("session");
    let home = browser.page("/").await;
    let form = form_hidden_inputs(&home, "/logout");
    let response = browser.post_form("/logout", &form).await;
    assert!(response.status().is_success() || response.status().is_redirection(), "{}", response.status());
    let mut replay = Browser::new(&app);
    replay.set_cookie(SESSION_COOKIE, &stolen);
    let params = app.authorize_params(&client_id, REDIRECT_URI, &pkce_pair());
    let html = replay.page(&params.path()).await;
    assert!(is_login_page(&html), "a logged-out session must not reach consent: {html}");
}

#[tokio::test]
async fn logout_without_the_csrf_token_keeps_the_session() {
    let app = spawn_app().await;
    let client_id = app.register_public_client(REDIRECT_URI).await;
    let mut browser = signup_and_login(&app, "alice", PASSWORD).await;
    let response = browser.post_form("/logout", &[("csrf_token", "forged")]).await;
    assert!(response.status().is_client_error(), "{}", response.status());
    let html = browser.consent_page(&app.authorize_params(&client_id, REDIRECT_URI, &pkce_pair())).await;
    assert!(is_consent_page(&html));
}
