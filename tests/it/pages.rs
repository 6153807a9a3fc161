//! The pages people use to manage apps and connections, and the admin view, over real HTTP.

use crate::support::*;
use reqwest::StatusCode;

async fn csrf_of(browser: &mut Browser, page: &str) -> String {
    extract_hidden(&browser.page(page).await, "csrf_token")
}

/// Registers an app through the form; returns the response (a 303 for public, the secret page otherwise).
async fn register_app(browser: &mut Browser, name: &str, redirect_uris: &str, kind: &str) -> reqwest::Response {
    let csrf = csrf_of(browser, "/apps").await;
    browser
        .post_form(
            "/apps",
            &[("csrf_token", csrf.as_str()), ("name", name), ("redirect_uris", redirect_uris), ("kind", kind)],
        )
        .await
}

#[tokio::test]
async fn account_pages_send_the_browser_to_login_first() {
    let app = spawn_app().await;
    let mut browser = Browser::new(&app);
    for page in ["/apps", "/connections", "/admin"] {
        let response = browser.get(page).await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "{page}");
        assert_eq!(location(&response), format!("/login?return_to=%2F{}", &page[1..]));
    }
}

#[tokio::test]
async fn a_public_app_registered_on_the_page_runs_the_flow() {
    let app = spawn_app().await;
    let mut browser = signup_and_login(&app, "alice", PASSWORD).await;
    let response = register_app(&mut browser, "My <b>CLI</b>", REDIRECT_URI, "public").await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let app_path = location(&response);
    let client_id = app_path.trim_start_matches("/apps/").to_string();
    let html = browser.page("/apps").await;
    assert!(!html.contains("<b>CLI") && page_text(&html).contains("My <b>CLI</b>"), "escaped name: {html}");
    assert!(html.contains(&client_id) && html.contains(REDIRECT_URI), "{html}");

    let auth = ClientAuth::Public(client_id.clone());
    let tokens = issue_tokens(&app, &mut browser, &auth, ALL_SCOPES).await;
    assert_mcp_accepts(&app, &str_field(&tokens, "access_token")).await;
}

#[tokio::test]
async fn a_confidential_app_shows_its_secret_once_and_can_rotate_it() {
    let app = spawn_app().await;
    let mut browser = signup_and_login(&app, "alice", PASSWORD).await;
    let response = register_app(&mut browser, "Server app", REDIRECT_URI, "confidential").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(header(&response, "cache-control").as_deref(), Some("no-store"));
    let html = response.text().await.unwrap();
    let client_id = element_text(&html, "client-id");
    let secret = element_text(&html, "client-secret");
    assert_eq!(secret.len(), 43, "{html}");
    let detail = browser.page(&format!("/apps/{client_id}")).await;
    assert!(!detail.contains(&secret), "the secret is never shown again");

    let auth = ClientAuth::Basic(client_id.clone(), secret.clone());
    let tokens = issue_tokens(&app, &mut browser, &auth, ALL_SCOPES).await;
    json_ok(app.refresh(&auth, &str_field(&tokens, "refresh_token")).await).await;

    let csrf = extract_hidden(&detail, "csrf_token");
    let rotated = browser.post_form(&format!("/apps/{client_id}/secret"), &[("csrf_token", csrf.as_str())]).await;
    assert_eq!(rotated.status(), StatusCode::OK);
    let new_secret = element_text(&rotated.text().await.unwrap(), "client-secret");
    assert_ne!(new_secret, secret);
    let old = app.post_as("/oauth/token", &auth, &[("grant_type", "refresh_token"), ("refresh_token", "x")]).await;
    assert_oauth_error(old, StatusCode::UNAUTHORIZED, "invalid_client").await;
    let new_auth = ClientAuth::Basic(client_id, new_secret);
    let fresh = issue_tokens(&app, &mut browser, &new_auth, ALL_SCOPES).await;
    assert!(fresh["access_token"].is_string());
}

#[tokio::test]
async fn editing_validates_and_saves() {
    let app = spawn_app().await;
    let mut browser = signup_and_login(&app, "alice", PASSWORD).await;
    let app_path = location(&register_app(&mut browser, "Editable", REDIRECT_URI, "public").await);
    let csrf = csrf_of(&mut browser, &app_path).await;
    let bad = browser
        .post_form(
            &app_path,
            &[("csrf_token", csrf.as_str()), ("name", "Edited"), ("redirect_uris", "javascript:alert(1)")],
        )
        .await;
    let html = assert_html_error(bad, StatusCode::BAD_REQUEST).await;
    assert!(html.contains("javascript:alert(1)"), "the form keeps what was typed: {html}");
    assert!(browser.page(&app_path).await.contains(REDIRECT_URI), "a refused edit changes nothing");

    let new_uris = "https://app.example/callback\nhttp://localhost:8080/cb";
    let saved = browser
        .post_form(&app_path, &[("csrf_token", csrf.as_str()), ("name", "Edited"), ("redirect_uris", new_uris)])
        .await;
    assert_eq!(saved.status(), StatusCode::SEE_OTHER);
    let html = browser.page(&location(&saved)).await;
    assert!(html.contains("Your changes are saved.") && html.contains("Edited"), "{html}");
    assert!(html.contains("https://app.example/callback") && html.contains("http://localhost:8080/cb"), "{html}");
}

#[tokio::test]
async fn apps_belong_to_their_owner_and_forms_need_the_csrf_token() {
    let app = spawn_app().await;
    let mut alice = signup_and_login(&app, "alice", PASSWORD).await;
    let app_path = location(&register_app(&mut alice, "Alice's app", REDIRECT_URI, "public").await);
    let mut mallory = signup_and_login(&app, "mallory", PASSWORD).await;
    let csrf = csrf_of(&mut mallory, "/apps").await;
    assert_html_error(mallory.get(&app_path).await, StatusCode::NOT_FOUND).await;
    for path in [app_path.clone(), format!("{app_path}/delete"), format!("{app_path}/secret")] {
        let response = mallory
            .post_form(
                &path,
                &[("csrf_token", csrf.as_str()), ("name", "Stolen"), ("redirect_uris", "https://evil.example/cb")],
            )
            .await;
        assert_html_error(response, StatusCode::NOT_FOUND).await;
    }
    assert!(!mallory.page("/apps").await.contains("Alice"), "mallory lists only her own apps");

    // Alice's own forms, without or with a wrong CSRF token, change nothing.
    for token in ["", "wrong-token"] {
        let response = alice.post_form(&format!("{app_path}/delete"), &[("csrf_token", token)]).await;
        assert_html_error(response, StatusCode::BAD_REQUEST).await;
        let response =
            alice.post_form("/apps", &[("csrf_token", token), ("name", "x"), ("redirect_uris", REDIRECT_URI)]).await;
        assert_html_error(response, StatusCode::BAD_REQUEST).await;
    }
    // Mallory's token is for mallory's session only.
    let response = alice.post_form(&format!("{app_path}/delete"), &[("csrf_token", csrf.as_str())]).await;
    assert_html_error(response, StatusCode::BAD_REQUEST).await;
    assert!(page_text(&alice.page(&app_path).await).contains("Alice's app"), "alice's app is still there");
}

#[tokio::test]
async fn deleting_an_app_revokes_its_tokens() {
    let app = spawn_app().await;
    let mut browser = signup_and_login(&app, "alice", PASSWORD).await;
    let app_path = location(&register_app(&mut browser, "Short-lived", REDIRECT_URI, "public").await);
    let auth = ClientAuth::Public(app_path.trim_start_matches("/apps/").to_string());
    let tokens = issue_tokens(&app, &mut browser, &auth, ALL_SCOPES).await;
    let csrf = csrf_of(&mut browser, &app_path).await;
    let deleted = browser.post_form(&format!("{app_path}/delete"), &[("csrf_token", csrf.as_str())]).await;
    assert_eq!(location(&deleted), "/apps");
    assert_eq!(app.call_mcp(&str_field(&tokens, "access_token")).await.status(), StatusCode::UNAUTHORIZED);
    assert_html_error(browser.get(&app_path).await, StatusCode::NOT_FOUND).await;
}

#[tokio::test]
async fn revoking_a_connection_ends_its_tokens_and_asks_again() {
    let app = spawn_app().await;
    let (auth, tokens) = tokens_with_scope(&app, "mcp:read").await;
    let mut browser = Browser::new(&app);
    browser.login("alice", PASSWORD).await;
    let html = browser.page("/connections").await;
    assert!(html.contains(auth.client_id()) && html.contains("mcp:read") && html.contains(" UTC"), "{html}");
    assert!(!html.contains("mcp:write"), "{html}");

    let csrf = extract_hidden(&html, "csrf_token");
    let missing = browser.post_form("/connections/revoke", &[("client_id", auth.client_id())]).await;
    assert_html_error(missing, StatusCode::BAD_REQUEST).await;
    assert_mcp_accepts(&app, &str_field(&tokens, "access_token")).await;

    let revoked = browser
        .post_form("/connections/revoke", &[("csrf_token", csrf.as_str()), ("client_id", auth.client_id())])
        .await;
    assert_eq!(revoked.status(), StatusCode::SEE_OTHER);
    let html = browser.page(&location(&revoked)).await;
    assert!(html.contains("Access revoked") && !html.contains(auth.client_id()), "{html}");
    assert_eq!(app.call_mcp(&str_field(&tokens, "access_token")).await.status(), StatusCode::UNAUTHORIZED);
    assert_oauth_error(
        app.refresh(&auth, &str_field(&tokens, "refresh_token")).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    )
    .await;
}

/// Consent is remembered for an https redirect; revoking the connection forgets it.
#[tokio::test]
async fn a_revoked_connection_must_be_consented_again() {
    const HTTPS_REDIRECT: &str = "https://app.example/oauth/callback";
    let app = spawn_app().await;
    let client_id = app.register_public_client(HTTPS_REDIRECT).await;
    let mut browser = signup_and_login(&app, "alice", PASSWORD).await;
    let params = app.authorize_params(&client_id, HTTPS_REDIRECT, &pkce_pair());
    let consent = browser.consent_page(&params).await;
    assert_eq!(browser.decide(&consent, "allow").await.status(), StatusCode::FOUND);
    let remembered = browser.get(&params.path()).await;
    assert_eq!(remembered.status(), StatusCode::FOUND, "the remembered consent skips the page");

    let csrf = csrf_of(&mut browser, "/connections").await;
    let revoked =
        browser.post_form("/connections/revoke", &[("csrf_token", csrf.as_str()), ("client_id", &client_id)]).await;
    assert_eq!(revoked.status(), StatusCode::SEE_OTHER);
    browser.consent_page(&params).await;
}

#[tokio::test]
async fn the_admin_view_disables_clients_and_users() {
    let app = spawn_app().await;
    let (auth, tokens) = public_client_tokens(&app).await;
    app.cli(&["user", "add", "root", "--admin", "--password", PASSWORD]);
    let mut alice = Browser::new(&app);
    alice.login("alice", PASSWORD).await;
    assert_html_error(alice.get("/admin").await, StatusCode::NOT_FOUND).await;
    assert!(!alice.page("/").await.contains("/admin\""), "no admin link for a non-admin");

    let mut admin = Browser::new(&app);
    admin.login("root", PASSWORD).await;
    let html = admin.page("/admin").await;
    assert!(html.contains(auth.client_id()) && html.contains("alice") && html.contains("root"), "{html}");
    let csrf = extract_hidden(&html, "csrf_token");

    let disable = [("csrf_token", csrf.as_str()), ("client_id", auth.client_id()), ("action", "disable")];
    let response = admin.post_form("/admin/clients", &disable).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let access_token = str_field(&tokens, "access_token");
    assert_eq!(app.call_mcp(&access_token).await.status(), StatusCode::UNAUTHORIZED);
    let params = app.authorize_params(auth.client_id(), REDIRECT_URI, &pkce_pair());
    assert_html_error(alice.get(&params.path()).await, StatusCode::BAD_REQUEST).await;
    let enable = [("csrf_token", csrf.as_str()), ("client_id", auth.client_id()), ("action", "enable")];
    admin.post_form("/admin/clients", &enable).await;
    assert_eq!(
        app.call_mcp(&access_token).await.status(),
        StatusCode::UNAUTHORIZED,
        "enabling brings no old token back"
    );
    let refresh = app.refresh(&auth, &str_field(&tokens, "refresh_token")).await;
    assert_oauth_error(refresh, StatusCode::BAD_REQUEST, "invalid_grant").await;
    let fresh = issue_tokens(&app, &mut alice, &auth, ALL_SCOPES).await;
    let access_token = str_field(&fresh, "access_token");
    assert_mcp_accepts(&app, &access_token).await;

    let disable = [("csrf_token", csrf.as_str()), ("username", "alice"), ("action", "disable")];
    assert_eq!(admin.post_form("/admin/users", &disable).await.status(), StatusCode::SEE_OTHER);
    assert_eq!(app.call_mcp(&access_token).await.status(), StatusCode::UNAUTHORIZED);
    assert!(admin.page("/admin").await.contains("disabled"));
    let myself = [("csrf_token", csrf.as_str()), ("username", "root"), ("action", "disable")];
    assert_html_error(admin.post_form("/admin/users", &myself).await, StatusCode::BAD_REQUEST).await;
    let forged = [("csrf_token", "forged"), ("username", "alice"), ("action", "enable")];
    assert_html_error(admin.post_form("/admin/users", &forged).await, StatusCode::BAD_REQUEST).await;
    assert!(page_text(&admin.page("/admin").await).contains("disabled"), "a forged form changes nothing");
    let enable = [("csrf_token", csrf.as_str()), ("username", "alice"), ("action", "enable")];
    admin.post_form("/admin/users", &enable).await;
    assert_eq!(
        app.call_mcp(&access_token).await.status(),
        StatusCode::UNAUTHORIZED,
        "enabling brings no old token back"
    );
}

#[tokio::test]
async fn every_page_forbids_framing_and_sends_a_csp() {
    let app = spawn_app().await;
    app.cli(&["user", "add", "root", "--admin", "--password", PASSWORD]);
    let mut browser = Browser::new(&app);
    browser.login("root", PASSWORD).await;
    let app_path = location(&register_app(&mut browser, "Framed", REDIRECT_URI, "public").await);
    for page in ["/", "/apps", app_path.as_str(), "/connections", "/admin", "/nope"] {
        let response = browser.get(page).await;
        assert_eq!(header(&response, "x-frame-options").as_deref(), Some("DENY"), "{page}");
        let csp = header(&response, "content-security-policy").unwrap_or_default();
        assert!(csp.contains("frame-ancestors 'none'") && csp.contains("default-src 'none'"), "{page}: {csp}");
        let body: String = response.text().await.unwrap();
        assert!(!body.contains("<script"), "{page} works without JavaScript");
    }
}
