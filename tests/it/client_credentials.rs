//! Machine clients (RFC 6749 §4.4, the MCP "OAuth Client Credentials" extension): registered by the
//! operator, on the apps page, or anonymously where the operator allows it; their tokens act for the client
//! itself, carry only what it registered, and die together when an admin revokes its machine access.
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::mcp::{McpClient, text_of};
use crate::support::*;

#[tokio::test]
async fn a_machine_token_acts_for_the_client_and_has_no_person_behind_it() {
    let app = spawn_app().await;
    let metadata = app.get_json("/.well-known/oauth-authorization-server").await;
    assert!(metadata["grant_types_supported"].as_array().unwrap().contains(&json!("client_credentials")), "{metadata}");
    let auth = machine_client(&app, &[]);

    let tokens = json_ok(machine_token(&app, &auth, &[("resource", &app.resource)]).await).await;
    assert!(tokens.get("refresh_token").is_none(), "no refresh token for client credentials: {tokens}");
    assert_eq!(scope_set(&str_field(&tokens, "scope")), scope_set(ALL_SCOPES), "every scope when it registered none");
    let access_token = str_field(&tokens, "access_token");
    let claims = jwt_claims(&access_token);
    assert_eq!(claims["sub"], auth.client_id(), "RFC 9068 §2.2: sub is the client");
    assert_eq!(claims["client_id"], auth.client_id());
    assert_eq!(claims["aud"], app.resource.as_str());

    let mut mcp = McpClient::stateless(&app, &access_token);
    let me = mcp.call_tool("whoami", json!({})).await;
    let me = &me["structuredContent"];
    assert_eq!(me["acts_for"], "client", "{me}");
    assert_eq!(me["subject"], auth.client_id());
    assert!(me.get("username").is_none(), "no person: {me}");
    let notes = mcp.call_tool("notes_list", json!({})).await;
    assert_eq!(notes["isError"], true, "{notes}");
    assert!(text_of(&notes).contains("client credentials"), "a clear refusal: {notes}");
    let resources = mcp.result("resources/list", json!({})).await;
    assert_eq!(resources["resources"], json!([]), "no notes to list");
    let read = mcp.request("resources/read", json!({"uri": "note://x"})).await;
    assert!(read["error"]["message"].as_str().unwrap().contains("client credentials"), "{read}");

    // The same machine grant carries the next token; the audit says a machine token was issued.
    let again = json_ok(machine_token(&app, &auth, &[]).await).await;
    assert_eq!(jwt_claims(&str_field(&again, "access_token"))["grant_id"], claims["grant_id"]);
    let audit = app.cli(&["audit", "--event", "machine_token_issued"]);
    assert_eq!(audit.matches(auth.client_id()).count(), 2, "{audit}");
}

#[tokio::test]
async fn a_machine_client_gets_only_what_it_registered() {
    let app = spawn_app().await;
    let auth = machine_client(&app, &["--scope", "mcp:read"]);
    let tokens = json_ok(machine_token(&app, &auth, &[]).await).await;
    assert_eq!(str_field(&tokens, "scope"), "mcp:read");
    let wider = machine_token(&app, &auth, &[("scope", "mcp:read mcp:write")]).await;
    assert_oauth_error(wider, StatusCode::BAD_REQUEST, "invalid_scope").await;
    let unknown = machine_token(&app, &auth, &[("scope", "admin")]).await;
    assert_oauth_error(unknown, StatusCode::BAD_REQUEST, "invalid_scope").await;
    let elsewhere = machine_token(&app, &auth, &[("resource", "https://other.example/mcp")]).await;
    assert_oauth_error(elsewhere, StatusCode::BAD_REQUEST, "invalid_target").await;
    let mut mcp = McpClient::stateless(&app, &str_field(&tokens, "access_token"));
    let write = mcp.raw("tools/call", json!({"name": "notes_create", "arguments": {"title": "t", "body": "b"}})).await;
    assert_eq!(write.status(), StatusCode::FORBIDDEN, "mcp:write was never given");

    let ClientAuth::Basic(id, secret) = &auth else { unreachable!() };
    let wrong = ClientAuth::Basic(id.clone(), format!("{secret}x"));
    assert_oauth_error(machine_token(&app, &wrong, &[]).await, StatusCode::UNAUTHORIZED, "invalid_client").await;
    let post = ClientAuth::Post(id.clone(), secret.clone());
    assert_oauth_error(machine_token(&app, &post, &[]).await, StatusCode::UNAUTHORIZED, "invalid_client").await;
    // A machine client cannot send people through the authorization endpoint, nor refresh.
    let refresh = app.post_as("/oauth/token", &auth, &[("grant_type", "refresh_token"), ("refresh_token", "x")]).await;
    assert_oauth_error(refresh, StatusCode::BAD_REQUEST, "unauthorized_client").await;

    // Clients registered for people do not get machine tokens.
    let public = ClientAuth::Public(app.register_public_client(REDIRECT_URI).await);
    assert_oauth_error(machine_token(&app, &public, &[]).await, StatusCode::BAD_REQUEST, "unauthorized_client").await;
    let (id, secret) = app.register_confidential_client("client_secret_basic").await;
    let server = ClientAuth::Basic(id, secret);
    assert_oauth_error(machine_token(&app, &server, &[]).await, StatusCode::BAD_REQUEST, "unauthorized_client").await;
}

fn machine_metadata() -> Value {
    json!({
        "client_name": unique_name("Agent"),
        "grant_types": ["client_credentials"],
        "token_endpoint_auth_method": "client_secret_post",
    })
}

#[tokio::test]
async fn anonymous_registration_of_machine_clients_is_the_operators_choice() {
    let closed = spawn_app().await;
    let refused = closed.register(&machine_metadata()).await;
    let body = assert_oauth_error(refused, StatusCode::BAD_REQUEST, "invalid_client_metadata").await;
    assert!(body["error_description"].as_str().unwrap().contains("operator"), "{body}");

    let open = spawn_app_with(&[("DCR_CLIENT_CREDENTIALS", "on")]).await;
    let registered = open.register_client(&machine_metadata()).await;
    assert_eq!(registered["grant_types"], json!(["client_credentials"]));
    assert_eq!(registered["redirect_uris"], json!([]));
    let auth = ClientAuth::Post(str_field(&registered, "client_id"), str_field(&registered, "client_secret"));
    let tokens = json_ok(machine_token(&open, &auth, &[("scope", "mcp:read")]).await).await;
    assert_eq!(open.call_mcp(&str_field(&tokens, "access_token")).await.status(), StatusCode::OK);

    let mut public = machine_metadata();
    public["token_endpoint_auth_method"] = json!("none");
    assert_oauth_error(open.register(&public).await, StatusCode::BAD_REQUEST, "invalid_client_metadata").await;
    let mut redirecting = machine_metadata();
    redirecting["redirect_uris"] = json!([REDIRECT_URI]);
    assert_oauth_error(open.register(&redirecting).await, StatusCode::BAD_REQUEST, "invalid_redirect_uri").await;
    let mut refreshing = machine_metadata();
    refreshing["grant_types"] = json!(["client_credentials", "refresh_token"]);
    assert_oauth_error(open.register(&refreshing).await, StatusCode::BAD_REQUEST, "invalid_client_metadata").await;
    let mut coded = machine_metadata();
    coded["response_types"] = json!(["code"]);
    assert_oauth_error(open.register(&coded).await, StatusCode::BAD_REQUEST, "invalid_client_metadata").await;
}

#[tokio::test]
async fn an_admin_revokes_machine_access_and_every_token_dies_at_once() {
    let app = spawn_app().await;
    let auth = machine_client(&app, &[]);
    let first = str_field(&json_ok(machine_token(&app, &auth, &[]).await).await, "access_token");
    let second = str_field(&json_ok(machine_token(&app, &auth, &[]).await).await, "access_token");
    assert_eq!(app.call_mcp(&first).await.status(), StatusCode::OK);

    app.cli(&["user", "add", "root", "--admin", "--password", PASSWORD]);
    let mut admin = Browser::new(&app);
    admin.login("root", PASSWORD).await;
    let html = admin.page("/admin").await;
    assert!(html.contains("Revoke machine access") && html.contains("machine"), "{html}");
    let csrf = extract_hidden(&html, "csrf_token");
    let forged = [("csrf_token", "forged"), ("client_id", auth.client_id()), ("action", "revoke_machine")];
    assert_html_error(admin.post_form("/admin/clients", &forged).await, StatusCode::BAD_REQUEST).await;
    assert_eq!(app.call_mcp(&first).await.status(), StatusCode::OK, "a forged form changes nothing");

    let revoke = [("csrf_token", csrf.as_str()), ("client_id", auth.client_id()), ("action", "revoke_machine")];
    assert_eq!(admin.post_form("/admin/clients", &revoke).await.status(), StatusCode::SEE_OTHER);
    for token in [&first, &second] {
        eventually_status(StatusCode::UNAUTHORIZED, || app.call_mcp(token)).await;
    }
    let again = machine_token(&app, &auth, &[]).await;
    assert_oauth_error(again, StatusCode::BAD_REQUEST, "unauthorized_client").await;
    assert!(!admin.page("/admin").await.contains("Revoke machine access"), "nothing left to revoke");
    let audit = app.cli(&["audit", "--event", "machine_access_revoked"]);
    assert!(audit.contains(auth.client_id()), "{audit}");
}

#[tokio::test]
async fn a_machine_app_registered_on_the_apps_page_stops_with_its_owner() {
    // The CLI is another process: the server sees the change at its next grant check.
    let app = spawn_app_with(&[("GUARD_CACHE_SECS", "1")]).await;
    let mut alice = signup_and_login(&app, "alice", PASSWORD).await;
    let csrf = extract_hidden(&alice.page("/apps").await, "csrf_token");
    let form = [("csrf_token", csrf.as_str()), ("name", "Alice's cron"), ("redirect_uris", ""), ("kind", "machine")];
    let created = alice.post_form("/apps", &form).await;
    assert_eq!(created.status(), StatusCode::OK);
    let html = created.text().await.unwrap();
    let auth = ClientAuth::Basic(element_text(&html, "client-id"), element_text(&html, "client-secret"));
    assert!(alice.page(&format!("/apps/{}", auth.client_id())).await.contains("machine"));
    let token = str_field(&json_ok(machine_token(&app, &auth, &[]).await).await, "access_token");
    assert_eq!(app.call_mcp(&token).await.status(), StatusCode::OK);

    app.cli(&["user", "disable", "alice"]);
    eventually_status(StatusCode::UNAUTHORIZED, || app.call_mcp(&token)).await;
    let refused = machine_token(&app, &auth, &[]).await;
    assert_oauth_error(refused, StatusCode::BAD_REQUEST, "unauthorized_client").await;
}

/// Revoked machine access stays revoked: neither the client's own registration management (RFC 7592) nor
/// an edit of its stored metadata gives the grant back.
#[tokio::test]
async fn revoked_machine_access_cannot_be_registered_back() {
    let app = spawn_app_with(&[("DCR_CLIENT_CREDENTIALS", "on")]).await;
    let registered = app.register_client(&machine_metadata()).await;
    let client_id = str_field(&registered, "client_id");
    let auth = ClientAuth::Post(client_id.clone(), str_field(&registered, "client_secret"));
    let (uri, management) =
        (str_field(&registered, "registration_client_uri"), str_field(&registered, "registration_access_token"));
    json_ok(machine_token(&app, &auth, &[]).await).await;

    app.cli(&["user", "add", "root", "--admin", "--password", PASSWORD]);
    let mut admin = Browser::new(&app);
    admin.login("root", PASSWORD).await;
    let csrf = extract_hidden(&admin.page("/admin").await, "csrf_token");
    let revoke = [("csrf_token", csrf.as_str()), ("client_id", client_id.as_str()), ("action", "revoke_machine")];
    assert_eq!(admin.post_form("/admin/clients", &revoke).await.status(), StatusCode::SEE_OTHER);

    let read = json_ok(app.client.get(&uri).bearer_auth(&management).send().await.unwrap()).await;
    assert_eq!(read["grant_types"], json!([]), "the stored registration says so too: {read}");
    let mut again = machine_metadata();
    again["client_id"] = json!(client_id);
    let put = app.client.put(&uri).bearer_auth(&management).json(&again).send().await.unwrap();
    let body = assert_oauth_error(put, StatusCode::BAD_REQUEST, "invalid_client_metadata").await;
    assert!(body["error_description"].as_str().unwrap().contains("register a new client"), "{body}");
    let refused = machine_token(&app, &auth, &[]).await;
    assert_oauth_error(refused, StatusCode::BAD_REQUEST, "unauthorized_client").await;
}
