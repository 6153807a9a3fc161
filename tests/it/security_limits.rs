//! Abuse limits and the audit log (README security model: "Abuse limits fall on what an attacker
//! repeats"; RFC 9700 §4.9 on brute-forcing credentials). Addresses are simulated through a trusted proxy's
//! `X-Forwarded-For`, so one test process can be several clients.

use crate::support::*;
use reqwest::StatusCode;
use serde_json::json;

/// Limits small enough to hit in a test: 3 failures per minute per key.
const TIGHT: &[(&str, &str)] =
    &[("RATE_LIMITS", "login=3/min,token=3/min"), ("TRUSTED_PROXIES", "127.0.0.1/32"), ("SIGNUP", "on")];

/// One login attempt from `ip`, with a fresh anonymous CSRF pair.
async fn login_from(app: &TestApp, ip: &str, username: &str, password: &str) -> reqwest::Response {
    let mut browser = Browser::new(app);
    let page = browser.page("/login").await;
    let csrf = extract_hidden(&page, "csrf_token");
    let cookie = format!("{CSRF_COOKIE}={}", browser.cookie(CSRF_COOKIE).expect("anonymous CSRF cookie"));
    app.client
        .post(app.url("/login"))
        .header("x-forwarded-for", ip)
        .header("cookie", cookie)
        .form(&[("username", username), ("password", password), ("csrf_token", &csrf), ("return_to", "/")])
        .send()
        .await
        .expect("login reaches the gateway")
}

/// A refresh-token request from `ip` with these fields besides `grant_type`.
async fn refresh_from(app: &TestApp, ip: &str, mut form: Vec<(&str, String)>) -> reqwest::Response {
    form.push(("grant_type", "refresh_token".to_owned()));
    app.client
        .post(app.url("/oauth/token"))
        .header("x-forwarded-for", ip)
        .form(&form)
        .send()
        .await
        .expect("token request reaches the gateway")
}

fn retry_after(response: &reqwest::Response) -> u64 {
    header(response, "retry-after").and_then(|v| v.parse().ok()).expect("Retry-After in seconds")
}

#[tokio::test]
async fn failed_logins_block_the_address_and_others_still_get_in() {
    let app = spawn_app_with(TIGHT).await;
    signup_and_login(&app, "alice", PASSWORD).await;
    signup_and_login(&app, "bob", PASSWORD).await;

    // A guesser at one address: the failures up to the burst are answered normally...
    for _ in 0..4 {
        let response = login_from(&app, "203.0.113.7", "alice", "wrong-password-1").await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
    // ...then even the right password is refused before it is checked, with a readable page.
    let refused = login_from(&app, "203.0.113.7", "alice", PASSWORD).await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!((1..=60).contains(&retry_after(&refused)));
    let cookies: Vec<&str> = refused.headers().get_all("set-cookie").iter().filter_map(|v| v.to_str().ok()).collect();
    assert!(cookies.iter().all(|c| !c.starts_with(SESSION_COOKIE)), "no session after a 429: {cookies:?}");
    let page = refused.text().await.expect("page");
    assert!(page.contains("Too many failed sign-ins"), "{page}");
    // The guessing address is blocked for other accounts too.
    let same_address = login_from(&app, "203.0.113.7", "bob", PASSWORD).await;
    assert_eq!(same_address.status(), StatusCode::TOO_MANY_REQUESTS);

    // One address cannot lock the account: alice signs in from elsewhere, and so does bob.
    let alice = login_from(&app, "198.51.100.20", "alice", PASSWORD).await;
    assert_eq!(alice.status(), StatusCode::SEE_OTHER, "the account is not held by one guessing address");
    let bob = login_from(&app, "198.51.100.21", "bob", PASSWORD).await;
    assert_eq!(bob.status(), StatusCode::SEE_OTHER, "legitimate traffic is served after the burst");

    // The block is recorded once, not once per refused request.
    let throttled = app.cli(&["audit", "--event", "login_throttled"]);
    assert_eq!(throttled.lines().skip(1).count(), 1, "{throttled}");
    assert!(throttled.contains("203.0.113.7"), "{throttled}");
}

#[tokio::test]
async fn guessing_spread_over_many_addresses_blocks_the_account() {
    let app = spawn_app_with(TIGHT).await;
    signup_and_login(&app, "carol", PASSWORD).await;
    // The account allows ten times the address rate: 30 failures, each from an address of its own.
    for i in 0..31 {
        let response = login_from(&app, &format!("203.0.113.{}", 100 + i), "carol", "guess").await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "attempt {i}");
    }
    let refused = login_from(&app, "198.51.100.50", "carol", PASSWORD).await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    signup_and_login(&app, "dave", PASSWORD).await;
    assert_eq!(login_from(&app, "198.51.100.51", "dave", PASSWORD).await.status(), StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn unknown_accounts_are_limited_like_real_ones_so_refusals_reveal_nothing() {
    let app = spawn_app_with(TIGHT).await;
    signup_and_login(&app, "erin", PASSWORD).await;
    for name in ["nobody-here", "erin"] {
        for i in 0..31 {
            let response = login_from(&app, &format!("203.0.113.{}", 100 + i), name, "guess").await;
            assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{name} {i}");
        }
        let refused = login_from(&app, "198.51.100.60", name, "guess").await;
        assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS, "{name}");
    }
}

#[tokio::test]
async fn successful_logins_are_never_counted() {
    let app = spawn_app_with(TIGHT).await;
    signup_and_login(&app, "carol", PASSWORD).await;
    for _ in 0..8 {
        assert_eq!(login_from(&app, "203.0.113.9", "carol", PASSWORD).await.status(), StatusCode::SEE_OTHER);
    }
}

#[tokio::test]
async fn failed_client_authentication_blocks_the_address_but_not_the_client() {
    let app = spawn_app_with(TIGHT).await;
    let (client_id, secret) = app.register_confidential_client("client_secret_post").await;
    let attempt = |ip: &'static str, secret: String| {
        let form =
            [("refresh_token", "not-a-token".to_owned()), ("client_id", client_id.clone()), ("client_secret", secret)];
        refresh_from(&app, ip, form.to_vec())
    };
    for _ in 0..4 {
        let response = attempt("203.0.113.40", "wrong".into()).await;
        assert_oauth_error(response, StatusCode::UNAUTHORIZED, "invalid_client").await;
    }
    let refused = attempt("203.0.113.40", secret.clone()).await;
    assert!((1..=60).contains(&retry_after(&refused)));
    assert_oauth_error(refused, StatusCode::TOO_MANY_REQUESTS, "temporarily_unavailable").await;
    // Client ids are public and secrets unguessable: the client itself is served from its own address.
    let elsewhere = attempt("198.51.100.40", secret.clone()).await;
    assert_oauth_error(elsewhere, StatusCode::BAD_REQUEST, "invalid_grant").await;
}

#[tokio::test]
async fn invalid_grants_slow_that_client_at_that_address_only() {
    let app = spawn_app_with(TIGHT).await;
    let dead_refresh = |client_id: String, ip: &'static str| {
        refresh_from(&app, ip, vec![("refresh_token", "expired-long-ago".to_owned()), ("client_id", client_id)])
    };
    let busy = app.register_public_client(REDIRECT_URI).await;
    for _ in 0..4 {
        assert_oauth_error(dead_refresh(busy.clone(), "203.0.113.70").await, StatusCode::BAD_REQUEST, "invalid_grant")
            .await;
    }
    let refused = dead_refresh(busy.clone(), "203.0.113.70").await;
    assert_oauth_error(refused, StatusCode::TOO_MANY_REQUESTS, "temporarily_unavailable").await;
    // Another client behind the same address (a hosting platform's other users) is not slowed.
    let neighbour = app.register_public_client("http://127.0.0.1:7777/neighbour").await;
    let response = dead_refresh(neighbour, "203.0.113.70").await;
    assert_oauth_error(response, StatusCode::BAD_REQUEST, "invalid_grant").await;
}

#[tokio::test]
async fn nobody_can_lock_out_a_public_client_by_failing_with_its_id() {
    let app = spawn_app_with(TIGHT).await;
    let (auth, tokens) = public_client_tokens(&app).await;
    for i in 0..6 {
        let form = vec![
            ("refresh_token", "forged".to_owned()),
            ("client_id", auth.client_id().to_owned()),
            ("client_secret", "pretending-to-be-confidential".to_owned()),
        ];
        let response = refresh_from(&app, &format!("203.0.113.{}", 60 + i), form).await;
        assert_ne!(response.status(), StatusCode::TOO_MANY_REQUESTS, "each address failed once only");
    }
    let response = app.refresh(&auth, &str_field(&tokens, "refresh_token")).await;
    json_ok(response).await;
}

#[tokio::test]
async fn the_audit_log_records_security_events_without_secrets() {
    let app = spawn_app_with(&[("TRUSTED_PROXIES", "127.0.0.1/32"), ("REFRESH_GRACE_SECS", "0")]).await;
    let (auth, tokens) = public_client_tokens(&app).await;
    let refresh_token = str_field(&tokens, "refresh_token");
    json_ok(app.refresh(&auth, &refresh_token).await).await;
    // Reuse of the rotated token: detected, recorded, the grant revoked.
    assert_oauth_error(app.refresh(&auth, &refresh_token).await, StatusCode::BAD_REQUEST, "invalid_grant").await;
    assert_eq!(login_from(&app, "203.0.113.80", "alice", "not-her-password").await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(login_from(&app, "203.0.113.81", "alice", PASSWORD).await.status(), StatusCode::SEE_OTHER);
    let typed_into_username = "hunter2-typed-in-the-wrong-box";
    login_from(&app, "203.0.113.82", typed_into_username, "x").await;
    app.cli(&["keys", "rotate"]);

    let log = app.cli(&["audit", "--limit", "50"]);
    for event in [
        "client_registered",
        "consent_granted",
        "refresh_token_reused",
        "login_failed",
        "login_succeeded",
        "key_rotated",
    ] {
        assert!(log.contains(event), "{event} missing from:\n{log}");
    }
    assert!(log.contains("203.0.113.80") && log.contains("wrong password"), "{log}");
    assert!(log.contains("unknown account"), "{log}");
    for secret in [refresh_token.as_str(), PASSWORD, "not-her-password", typed_into_username] {
        assert!(!log.contains(secret), "the audit log holds a secret: {secret}");
    }
    let access_token = str_field(&tokens, "access_token");
    let signature = access_token.rsplit('.').next().expect("a JWS signature");
    assert!(!log.contains(&access_token) && !log.contains(signature), "the audit log holds the access token");

    let only_failures = app.cli(&["audit", "--event", "login_failed"]);
    let rows: Vec<&str> = only_failures.lines().skip(1).collect();
    assert_eq!(rows.len(), 2, "{only_failures}");
    assert!(rows.iter().all(|r| r.contains("login_failed")));
    let by_client = app.cli(&["audit", "--client", auth.client_id()]);
    assert!(by_client.lines().skip(1).all(|r| r.contains(auth.client_id())), "{by_client}");
    assert!(by_client.contains("refresh_token_reused"));

    // A registration over the API is recorded with the address it came from.
    let response = app
        .client
        .post(app.url("/oauth/register"))
        .header("x-forwarded-for", "203.0.113.90")
        .json(&json!({"client_name": unique_name("audited"), "redirect_uris": [REDIRECT_URI], "token_endpoint_auth_method": "none"}))
        .send()
        .await
        .expect("registration");
    let client_id = str_field(&json_from(response).await, "client_id");
    let registered = app.cli(&["audit", "--event", "client_registered", "--client", &client_id]);
    assert!(registered.contains("203.0.113.90") && registered.contains("dynamic"), "{registered}");
}

async fn json_from(response: reqwest::Response) -> serde_json::Value {
    let status = response.status();
    let body = response.text().await.expect("body");
    assert!(status.is_success(), "{status}: {body}");
    serde_json::from_str(&body).expect("JSON")
}

/// A POST of `form` to `path` from `ip`, authenticated as `auth`.
async fn post_from(app: &TestApp, ip: &str, path: &str, auth: &ClientAuth, form: &[(&str, &str)]) -> reqwest::Response {
    let mut fields: Vec<(String, String)> = form.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let request = app.client.post(app.url(path)).header("x-forwarded-for", ip);
    let request = match auth {
        ClientAuth::Public(id) => {
            fields.push(("client_id".into(), id.clone()));
            request
        }
        ClientAuth::Basic(id, secret) => request.basic_auth(id, Some(secret)),
        ClientAuth::Post(id, secret) => {
            fields.push(("client_id".into(), id.clone()));
            fields.push(("client_secret".into(), secret.clone()));
            request
        }
    };
    request.form(&fields).send().await.expect("request reaches the gateway")
}

/// Revocation and introspection authenticate clients like the token endpoint, so they take its limit on
/// failed client authentication: without it they were an unlimited secret-guessing oracle.
#[tokio::test]
async fn revocation_and_introspection_take_the_token_endpoints_failure_limit() {
    let app = spawn_app_with(TIGHT).await;
    let (client_id, secret) = app.register_confidential_client("client_secret_basic").await;
    for (path, ip) in [("/oauth/revoke", "203.0.113.30"), ("/oauth/introspect", "203.0.113.31")] {
        let wrong = ClientAuth::Basic(client_id.clone(), "not-the-secret".into());
        for _ in 0..4 {
            let response = post_from(&app, ip, path, &wrong, &[("token", "probe")]).await;
            assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{path}");
        }
        let right = ClientAuth::Basic(client_id.clone(), secret.clone());
        let refused = post_from(&app, ip, path, &right, &[("token", "probe")]).await;
        assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS, "{path}: blocked before the secret is checked");
        assert!((1..=60).contains(&retry_after(&refused)));
        let elsewhere = post_from(&app, "198.51.100.30", path, &right, &[("token", "probe")]).await;
        assert_eq!(elsewhere.status(), StatusCode::OK, "{path}: the client itself is not locked out");
    }
}

/// Client secrets are 256-bit random values: stored as SHA-256 digests, compared in constant time, with no
/// argon2id work for anyone (an unknown client_id with a secret used to cost a dummy 19 MiB hash). A secret
/// stored as argon2 before still verifies once and is then replaced by its digest.
#[tokio::test]
async fn client_secrets_are_stored_as_digests_and_old_argon2_hashes_are_upgraded() {
    let app = spawn_app().await;
    let (client_id, secret) = app.register_confidential_client("client_secret_post").await;
    let stored = |id: String| {
        let app = &app;
        async move {
            let rows = app.sql("SELECT secret_hash FROM clients WHERE client_id = $1", vec![id.into()]).await;
            rows[0].try_get_by_index::<String>(0).expect("secret_hash")
        }
    };
    assert_eq!(stored(client_id.clone()).await, hex_sha256(&secret));

    let old_hash = mcp_gateway::crypto::Passwords::new(mcp_gateway::crypto::PasswordHashCost::Low).hash(&secret).await;
    app.sql(
        "UPDATE clients SET secret_hash = $1 WHERE client_id = $2",
        vec![old_hash.into(), client_id.clone().into()],
    )
    .await;
    let auth = ClientAuth::Post(client_id.clone(), secret.clone());
    let wrong = ClientAuth::Post(client_id.clone(), "wrong".into());
    assert_oauth_error(
        app.post_as("/oauth/introspect", &wrong, &[("token", "x")]).await,
        StatusCode::UNAUTHORIZED,
        "invalid_client",
    )
    .await;
    assert!(stored(client_id.clone()).await.starts_with("$argon2"), "a wrong secret changes nothing");
    assert_eq!(app.post_as("/oauth/introspect", &auth, &[("token", "x")]).await.status(), StatusCode::OK);
    assert_eq!(stored(client_id.clone()).await, hex_sha256(&secret), "replaced by the digest once it verified");
    assert_eq!(app.post_as("/oauth/introspect", &auth, &[("token", "x")]).await.status(), StatusCode::OK);
}

fn hex_sha256(secret: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(secret.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// Attempts that queue together for a hashing slot cannot all slip past a limit checked before they queued:
/// the limit is asked again once a slot is held. A burst of wrong secrets for a client whose secret is still
/// an (expensive) argon2 hash gets a handful of answers, then 429s.
#[tokio::test]
async fn a_burst_of_guesses_is_checked_again_once_a_hashing_slot_is_free() {
    let app = spawn_app_with(TIGHT).await;
    let (client_id, secret) = app.register_confidential_client("client_secret_post").await;
    let old_hash =
        mcp_gateway::crypto::Passwords::new(mcp_gateway::crypto::PasswordHashCost::Default).hash(&secret).await;
    app.sql(
        "UPDATE clients SET secret_hash = $1 WHERE client_id = $2",
        vec![old_hash.into(), client_id.clone().into()],
    )
    .await;
    let wrong = ClientAuth::Post(client_id, "a wrong guess".into());
    let burst = (0..24).map(|_| post_from(&app, "203.0.113.40", "/oauth/introspect", &wrong, &[("token", "x")]));
    let statuses: Vec<StatusCode> = futures::future::join_all(burst).await.iter().map(|r| r.status()).collect();
    let answered = statuses.iter().filter(|s| **s == StatusCode::UNAUTHORIZED).count();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    assert!(answered <= 4 + cores, "at most the burst plus one per hashing slot was verified: {statuses:?}");
    assert!(statuses.iter().all(|s| *s == StatusCode::UNAUTHORIZED || *s == StatusCode::TOO_MANY_REQUESTS));
}

/// One sign-up attempt from the address `ip`.
async fn signup_from(app: &TestApp, ip: &str, username: &str) -> reqwest::Response {
    let mut browser = Browser::new(app);
    let page = browser.page("/signup").await;
    let csrf = extract_hidden(&page, "csrf_token");
    let cookie = format!("{CSRF_COOKIE}={}", browser.cookie(CSRF_COOKIE).expect("anonymous CSRF cookie"));
    app.client
        .post(app.url("/signup"))
        .header("x-forwarded-for", ip)
        .header("cookie", cookie)
        .form(&[
            ("username", username),
            ("password", PASSWORD),
            ("password_confirm", PASSWORD),
            ("csrf_token", &csrf),
            ("return_to", "/"),
        ])
        .send()
        .await
        .expect("sign-up reaches the gateway")
}

/// Sign-up creates accounts and tells whether a name is taken (people need that), so both are limited per
/// address (`RATE_LIMITS=signup=…`, 5 an hour by default): one address cannot create accounts without end,
/// spend argon2id without end, or list which names exist.
#[tokio::test]
async fn sign_up_is_limited_per_address_and_so_is_learning_which_names_exist() {
    let limits = [("RATE_LIMITS", "signup=3/h"), ("TRUSTED_PROXIES", "127.0.0.1/32"), ("SIGNUP", "on")];
    let app = spawn_app_with(&limits).await;
    assert_eq!(signup_from(&app, "203.0.113.50", "first").await.status(), StatusCode::SEE_OTHER);
    let taken = signup_from(&app, "203.0.113.50", "first").await;
    assert_eq!(taken.status(), StatusCode::BAD_REQUEST);
    assert!(taken.text().await.unwrap().contains("That username is taken"));
    assert_eq!(signup_from(&app, "203.0.113.50", "second").await.status(), StatusCode::SEE_OTHER);
    for name in ["third", "first"] {
        let refused = signup_from(&app, "203.0.113.50", name).await;
        assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS, "{name}");
        assert!(retry_after(&refused) > 60);
        let page = refused.text().await.unwrap();
        assert!(!page.contains("taken") && page.contains("Too many sign-ups"), "{page}");
    }
    assert_eq!(app.sql_count("SELECT CAST(COUNT(*) AS BIGINT) FROM users", vec![]).await, 2);
    assert_eq!(signup_from(&app, "198.51.100.50", "third").await.status(), StatusCode::SEE_OTHER, "another address");
    let default_limit = mcp_gateway::limits::RateLimits::default().signup;
    assert_eq!((default_limit.count, default_limit.per.as_secs()), (5, 3600));
}

/// One account cannot hold sessions without end: the next `initialize` past `MCP_MAX_SESSIONS_PER_USER`
/// gets a clear JSON-RPC error, and ending a session makes room.
#[tokio::test]
async fn legacy_mcp_sessions_are_capped_per_person() {
    let app = spawn_app_with(&[("MCP_MAX_SESSIONS_PER_USER", "2")]).await;
    let (_, tokens) = public_client_tokens(&app).await;
    let token = str_field(&tokens, "access_token");
    let first = mcp::McpClient::connect(&app, &token).await;
    let _second = mcp::McpClient::connect(&app, &token).await;
    let refused = app
        .client
        .post(app.url("/mcp"))
        .bearer_auth(&token)
        .header("accept", "application/json, text/event-stream")
        .json(&mcp::initialize(mcp::LEGACY, 0))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(header(&refused, "mcp-session-id").is_none());
    let body: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], -32000, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("2 open MCP sessions"), "{body}");
    assert!(first.delete_session().await.is_success());
    mcp::McpClient::connect(&app, &token).await;
}

/// A code nobody redeemed leaves its grant behind; once the code expired, and with no refresh token, the
/// grant can never be used and is purged with it (one person could otherwise grow the table without end).
#[tokio::test]
async fn grants_of_codes_that_were_never_redeemed_are_purged() {
    // Codes live 4 s: long enough to be redeemed on a loaded CI machine (1 s once was not).
    let app = spawn_app_with(&[("AUTH_CODE_TTL", "4")]).await;
    let client_id = app.register_public_client(REDIRECT_URI).await;
    let mut browser = signup_and_login(&app, "alice", PASSWORD).await;
    let tokens = issue_tokens(&app, &mut browser, &ClientAuth::Public(client_id.clone()), ALL_SCOPES).await;
    for _ in 0..3 {
        authorize_and_get_code(&app, &mut browser, &client_id, REDIRECT_URI, &pkce_pair()).await;
    }
    let count = "SELECT CAST(COUNT(*) AS BIGINT) FROM grants";
    assert_eq!(app.sql_count(count, vec![]).await, 4);
    tokio::time::sleep(std::time::Duration::from_millis(5100)).await;
    app.cli(&["purge"]);
    assert_eq!(app.sql_count(count, vec![]).await, 1, "only the redeemed grant stays");
    assert_mcp_accepts(&app, &str_field(&tokens, "access_token")).await;
}

/// One account cannot hold notification streams (connections, tasks) without end: past
/// `MCP_MAX_STREAMS_PER_USER` the next `subscriptions/listen` gets a clear error; a closed one makes room.
#[tokio::test]
async fn notification_streams_are_capped_per_person() {
    let app = spawn_app_with(&[("MCP_MAX_STREAMS_PER_USER", "1")]).await;
    let (_, tokens) = public_client_tokens(&app).await;
    let client = mcp::McpClient::stateless(&app, &str_field(&tokens, "access_token"));
    let first = client.listen(&[]).await;
    let listen = json!({
        "jsonrpc": "2.0", "id": 7, "method": "subscriptions/listen",
        "params": {"notifications": {}, "_meta": {
            "io.modelcontextprotocol/protocolVersion": mcp::STATELESS,
            "io.modelcontextprotocol/clientCapabilities": {},
        }},
    });
    let refused = mcp::answer(client.post(&listen).send().await.unwrap(), 7).await;
    let message = refused["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("1 open notification streams"), "{refused}");
    drop(first);
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    client.listen(&[]).await;
}
