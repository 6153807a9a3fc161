//! Signing in through a real OpenID Connect provider: `oidc-provider` from npm (pinned, installed by
//! `tests/gateway/install.sh`), with its development sign-in pages and a `groups` claim.
use std::process::{Child, Command, Stdio};

use reqwest::StatusCode;
use serde_json::json;

use crate::support::mcp::{McpClient, until_tool};
use crate::support::upstreams::{free_port, until_listening, upstreams};
use crate::support::*;

const CLIENT_ID: &str = "mcp-gateway-test";
const CLIENT_SECRET: &str = "provider-client-secret-0123456789";

/// The provider, its people file, and its process (stopped on drop).
struct Idp {
    issuer: String,
    people: tempfile::NamedTempFile,
    child: Child,
}

impl Drop for Idp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Idp {
    async fn start(front: &TestApp, people: serde_json::Value) -> Idp {
        let kit = upstreams();
        let port = free_port();
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), people.to_string()).unwrap();
        // An ES module finds its packages beside itself: run a copy in the installed directory.
        let source = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/gateway/oidc_provider.mjs");
        let script = kit.dir.join(format!("oidc_provider-{port}.mjs"));
        std::fs::copy(source, &script).unwrap();
        let child = Command::new("node")
            .arg(&script)
            .args([&port.to_string(), CLIENT_ID, CLIENT_SECRET, &format!("{}/login/idp/corp/callback", front.base)])
            .arg(file.path())
            .current_dir(&kit.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start oidc-provider");
        until_listening(port).await;
        Idp { issuer: format!("http://127.0.0.1:{port}"), people: file, child }
    }

    /// `idp add corp` for this provider, with our client there and example.com's people allowed in, plus
    /// `extra`.
    fn add_to(&self, front: &TestApp, extra: &[&str]) {
        let mut args = vec!["idp", "add", "corp", "--issuer", &self.issuer, "--client-id", CLIENT_ID];
        args.extend(["--client-secret", CLIENT_SECRET, "--allowed-domains", "example.com"]);
        args.extend_from_slice(extra);
        front.cli(&args);
    }

    fn set_people(&self, people: serde_json::Value) {
        std::fs::write(self.people.path(), people.to_string()).unwrap();
    }
}

/// Follows redirects until the provider sends the browser back to the gateway, signing in at the provider as
/// `login` and accepting its consent on the way. Returns the way back (not yet visited).
async fn to_callback(browser: &mut Browser, start: &str, login: &str) -> String {
    let mut response = browser.get(start).await;
    for _ in 0..20 {
        if response.status().is_redirection() {
            let next = next_url(&response);
            if next.contains("/login/idp/corp/callback") {
                return next;
            }
            response = browser.get(&next).await;
            continue;
        }
        assert_eq!(response.status(), StatusCode::OK, "the provider's page: {:?}", response.text().await);
        let url = response.url().to_string();
        let html = response.text().await.unwrap();
        let form: Vec<(&str, &str)> = if html.contains("name=\"login\"") {
            vec![("prompt", "login"), ("login", login), ("password", "anything")]
        } else {
            vec![("prompt", "consent")]
        };
        response = browser.post_form(url.split('?').next().unwrap(), &form).await;
    }
    panic!("the provider never sent the browser back");
}

/// [`to_callback`], and the gateway's answer to the way back.
async fn through_provider(browser: &mut Browser, start: &str, login: &str) -> reqwest::Response {
    let callback = to_callback(browser, start, login).await;
    browser.get(&callback).await
}

async fn groups_of(front: &TestApp, username: &str) -> Vec<String> {
    let sql = "SELECT g.name FROM user_groups g JOIN users u ON u.id = g.user_id WHERE u.username = $1 ORDER BY g.name";
    let rows = front.sql(sql, vec![username.into()]).await;
    rows.iter().map(|r| r.try_get::<String>("", "name").unwrap()).collect()
}

/// Where a redirect goes, resolved against the page that sent it (the provider's, or ours).
fn next_url(response: &reqwest::Response) -> String {
    let location = response.headers().get("location").and_then(|v| v.to_str().ok()).expect("a Location header");
    response.url().join(location).expect("a resolvable Location").to_string()
}

fn people() -> serde_json::Value {
    json!({
        "anna": {"email": "anna@example.com", "groups": ["engineering", "admins"]},
        "mallory": {"email": "mallory@elsewhere.org", "groups": []},
        "unverified": {"email": "unverified@example.com", "email_verified": false},
    })
}

#[tokio::test]
async fn people_sign_in_through_a_real_openid_provider_and_keep_their_account_and_groups() {
    let front = spawn_app_with(&[("UPSTREAM_RELOAD_SECS", "1"), ("GUARD_CACHE_SECS", "1")]).await;
    let idp = Idp::start(&front, people()).await;
    idp.add_to(&front, &["--scopes", "openid email profile groups", "--groups-claim", "groups"]);
    let listed = front.cli(&["idp", "list"]);
    assert!(listed.contains("corp") && listed.contains("oidc"), "{listed}");

    // The login page offers the provider; the first sign-in makes the account, with the claim's groups.
    let mut browser = Browser::new(&front);
    let page = browser.page("/login?return_to=/connections").await;
    assert!(page.contains("Sign in with corp") && page.contains("/login/idp/corp?return_to=/connections"), "{page}");
    let back = through_provider(&mut browser, "/login/idp/corp?return_to=/connections", "anna").await;
    assert_eq!(location(&back), "/connections", "{:?}", back.text().await);
    assert!(browser.page("/connections").await.contains("anna"), "signed in as anna");
    assert_eq!(groups_of(&front, "anna").await, ["admins", "engineering"]);
    assert_eq!(front.sql_count("SELECT COUNT(*) FROM identities", vec![]).await, 1);
    let secret: String = front.sql("SELECT client_secret_sealed FROM identity_providers", vec![]).await[0]
        .try_get("", "client_secret_sealed")
        .unwrap();
    assert!(mcp_gateway::crypto::SecretsKey::is_sealed(&secret) && !secret.contains(CLIENT_SECRET));

    // The claim's groups gate an upstream: only engineering may use it.
    front.cli(&["upstream", "add", "every", "--command", "node", "--arg", &upstreams().everything()]);
    front.cli(&["policy", "allow", "engineering", "every"]);
    let auth = ClientAuth::Public(front.register_public_client(REDIRECT_URI).await);
    let tokens = issue_tokens(&front, &mut browser, &auth, ALL_SCOPES).await;
    let mut anna_mcp = McpClient::connect(&front, tokens["access_token"].as_str().unwrap()).await;
    until_tool(&mut anna_mcp, "every__echo").await;

    // A second sign-in finds the same account by the provider's iss + sub; the groups follow the claim, and
    // leaving engineering there closes the upstream to her here within the cache bound.
    idp.set_people(json!({"anna": {"email": "anna@example.com", "groups": ["sales"]}}));
    let mut again = Browser::new(&front);
    let back = through_provider(&mut again, "/login/idp/corp", "anna").await;
    assert_eq!(location(&back), "/");
    assert_eq!(front.sql_count("SELECT COUNT(*) FROM users", vec![]).await, 1);
    assert_eq!(groups_of(&front, "anna").await, ["sales"]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let refused =
            anna_mcp.request("tools/call", json!({"name": "every__echo", "arguments": {"message": "x"}})).await;
        if refused["error"]["message"].as_str().is_some_and(|m| m.contains("for the groups engineering")) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "still allowed after leaving the group: {refused}");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }

    // A domain not allowed, or an email the provider does not vouch for, gets no account.
    idp.set_people(people());
    let mut outsider = Browser::new(&front);
    let refused = through_provider(&mut outsider, "/login/idp/corp", "mallory").await;
    assert!(assert_html_error(refused, StatusCode::FORBIDDEN).await.contains("No account here"));
    let mut unverified = Browser::new(&front);
    let refused = through_provider(&mut unverified, "/login/idp/corp", "unverified").await;
    assert_html_error(refused, StatusCode::FORBIDDEN).await;
    assert_eq!(front.sql_count("SELECT COUNT(*) FROM users", vec![]).await, 1);
}

#[tokio::test]
async fn the_way_back_from_the_provider_works_only_in_the_browser_that_set_out_and_only_once() {
    let front = spawn_app_with(&[("PASSWORD_LOGIN", "off")]).await;
    let idp = Idp::start(&front, people()).await;
    idp.add_to(&front, &[]);

    // PASSWORD_LOGIN=off: the login page has only the provider's button, and a password is refused.
    let mut browser = Browser::new(&front);
    let page = browser.page("/login").await;
    assert!(page.contains("Sign in with corp") && !page.contains("type=\"password\""), "{page}");
    let csrf = browser.cookie(CSRF_COOKIE).expect("the anonymous form token");
    let password = browser
        .post_form("/login", &[("username", "anna"), ("password", PASSWORD), ("csrf_token", csrf.as_str())])
        .await;
    assert_html_error(password, StatusCode::FORBIDDEN).await;

    // The callback URL in another browser (no flow cookie) or with another state is refused.
    let callback = to_callback(&mut browser, "/login/idp/corp", "anna").await;
    let mut stranger = Browser::new(&front);
    assert_html_error(stranger.get(&callback).await, StatusCode::BAD_REQUEST).await;
    let state = url::Url::parse(&callback).unwrap().query_pairs().find(|(k, _)| k == "state").unwrap().1.into_owned();
    let tampered = callback.replace(&state, "another-state");
    let mut copy = Browser::new(&front);
    copy.set_cookie("mcpgw_idp", &browser.cookie("mcpgw_idp").unwrap());
    assert_html_error(copy.get(&tampered).await, StatusCode::BAD_REQUEST).await;
    // A wrong `iss` (mix-up) is refused.
    let mut mixed = Browser::new(&front);
    mixed.set_cookie("mcpgw_idp", &browser.cookie("mcpgw_idp").unwrap());
    let wrong_iss = if callback.contains("iss=") {
        callback.replace("iss=http%3A%2F%2F127.0.0.1", "iss=http%3A%2F%2Fevil.example")
    } else {
        format!("{callback}&iss=http%3A%2F%2Fevil.example")
    };
    assert_html_error(mixed.get(&wrong_iss).await, StatusCode::BAD_REQUEST).await;
    // The browser that set out signs in, once: the cookie serves one return.
    let back = browser.get(&callback).await;
    assert_eq!(location(&back), "/");
    assert_html_error(browser.get(&callback).await, StatusCode::BAD_REQUEST).await;
    assert_eq!(front.sql_count("SELECT COUNT(*) FROM users", vec![]).await, 1);
}

/// What the stand-in provider's next ID token gets wrong.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Flaw {
    None,
    Nonce,
    Issuer,
    Audience,
    Signature,
    Expired,
    SeveralAudiencesNotOurs,
}

/// A provider whose ID tokens the test writes (and breaks), to show every check refuses: a discovery
/// document, a key set, an authorization endpoint that sends the browser straight back, a token endpoint.
struct StandIn {
    issuer: String,
    state: std::sync::Arc<std::sync::Mutex<StandInState>>,
}

struct StandInState {
    flaw: Flaw,
    nonce: String,
    signer: crate::support::keys::Signer,
    stranger: crate::support::keys::Signer,
    issuer: String,
}

#[poem::handler]
fn stand_in_discovery(poem::web::Data(issuer): poem::web::Data<&String>) -> poem::web::Json<serde_json::Value> {
    poem::web::Json(json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/authorize"),
        "token_endpoint": format!("{issuer}/token"),
        "jwks_uri": format!("{issuer}/jwks"),
    }))
}

type Shared = std::sync::Arc<std::sync::Mutex<StandInState>>;

#[poem::handler]
fn stand_in_jwks(poem::web::Data(state): poem::web::Data<&Shared>) -> poem::web::Json<serde_json::Value> {
    poem::web::Json(json!({"keys": [state.lock().unwrap().signer.jwk.clone()]}))
}

#[poem::handler]
fn stand_in_authorize(
    poem::web::Data(state): poem::web::Data<&Shared>,
    poem::web::Query(query): poem::web::Query<std::collections::HashMap<String, String>>,
) -> poem::web::Redirect {
    state.lock().unwrap().nonce = query["nonce"].clone();
    let back = format!("{}?code=the-code&state={}", query["redirect_uri"], query["state"]);
    poem::web::Redirect::see_other(back)
}

#[poem::handler]
fn stand_in_token(poem::web::Data(state): poem::web::Data<&Shared>) -> poem::web::Json<serde_json::Value> {
    let state = state.lock().unwrap();
    let now = chrono::Utc::now().timestamp();
    let mut claims = json!({
        "iss": state.issuer, "sub": "stand-in-1", "aud": CLIENT_ID, "nonce": state.nonce, "iat": now,
        "exp": now + 300, "email": "sam@example.com", "email_verified": true,
    });
    match state.flaw {
        Flaw::None | Flaw::Signature => {}
        Flaw::Nonce => claims["nonce"] = json!("another-nonce"),
        Flaw::Issuer => claims["iss"] = json!("https://evil.example"),
        Flaw::Audience => claims["aud"] = json!("someone-else"),
        Flaw::Expired => claims["exp"] = json!(now - 600),
        Flaw::SeveralAudiencesNotOurs => {
            claims["aud"] = json!([CLIENT_ID, "someone-else"]);
            claims["azp"] = json!("someone-else");
        }
    }
    let id_token = if state.flaw == Flaw::Signature {
        // A stranger's signature under the provider's key id.
        let mut header = jsonwebtoken::Header::new(state.stranger.alg);
        header.kid = Some(state.signer.kid.clone());
        jsonwebtoken::encode(&header, &claims, &state.stranger.key).unwrap()
    } else {
        crate::support::keys::sign(&state.signer, &claims)
    };
    poem::web::Json(json!({"access_token": "unused", "token_type": "Bearer", "id_token": id_token}))
}

impl StandIn {
    async fn start() -> StandIn {
        use poem::listener::{Acceptor, Listener};
        use poem::{EndpointExt, get, post};
        let acceptor = poem::listener::TcpListener::bind("127.0.0.1:0").into_acceptor().await.unwrap();
        let port = acceptor.local_addr()[0].as_socket_addr().unwrap().port();
        let issuer = format!("http://127.0.0.1:{port}");
        let state = std::sync::Arc::new(std::sync::Mutex::new(StandInState {
            flaw: Flaw::None,
            nonce: String::new(),
            signer: crate::support::keys::es256("stand-in"),
            stranger: crate::support::keys::es256("stranger"),
            issuer: issuer.clone(),
        }));
        let app = poem::Route::new()
            .at("/.well-known/openid-configuration", get(stand_in_discovery))
            .at("/jwks", get(stand_in_jwks))
            .at("/authorize", get(stand_in_authorize))
            .at("/token", post(stand_in_token))
            .data(issuer.clone())
            .data(state.clone());
        tokio::spawn(poem::Server::new_with_acceptor(acceptor).run(app));
        StandIn { issuer, state }
    }
}

#[tokio::test]
async fn an_id_token_with_the_wrong_nonce_issuer_audience_signature_or_lifetime_is_refused() {
    let front = spawn_app().await;
    let provider = StandIn::start().await;
    front.cli(&[
        "idp",
        "add",
        "stand",
        "--issuer",
        &provider.issuer,
        "--client-id",
        CLIENT_ID,
        "--client-secret",
        CLIENT_SECRET,
        "--allow-signup",
    ]);
    for flaw in
        [Flaw::Nonce, Flaw::Issuer, Flaw::Audience, Flaw::Signature, Flaw::Expired, Flaw::SeveralAudiencesNotOurs]
    {
        provider.state.lock().unwrap().flaw = flaw;
        let mut browser = Browser::new(&front);
        let to_provider = browser.get("/login/idp/stand").await;
        let back = browser.get(&next_url(&to_provider)).await;
        let callback = next_url(&back);
        let refused = browser.get(&callback).await;
        let page = assert_html_error(refused, StatusCode::BAD_REQUEST).await;
        assert!(page.contains("not valid"), "{flaw:?}: {page}");
        assert!(browser.cookie(SESSION_COOKIE).is_none(), "{flaw:?} signed someone in");
    }
    assert_eq!(front.sql_count("SELECT COUNT(*) FROM users", vec![]).await, 0);
    // The same provider, nothing wrong: signed in.
    provider.state.lock().unwrap().flaw = Flaw::None;
    let mut browser = Browser::new(&front);
    let to_provider = browser.get("/login/idp/stand").await;
    let back = browser.get(&next_url(&to_provider)).await;
    let done = browser.get(&next_url(&back)).await;
    assert_eq!(location(&done), "/");
    assert!(browser.cookie(SESSION_COOKIE).is_some());
}

#[tokio::test]
async fn the_login_page_of_an_authorization_request_offers_providers_added_while_the_server_runs() {
    let front = spawn_app_with(&[("KEY_RELOAD_SECS", "1")]).await;
    let auth = ClientAuth::Public(front.register_public_client(REDIRECT_URI).await);
    front.cli(&["idp", "add", "corp", "--issuer", "https://idp.example.com", "--client-id", CLIENT_ID]);
    let pkce = pkce_pair();
    let params = front.authorize_params(auth.client_id(), REDIRECT_URI, &pkce);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let html = Browser::new(&front).get(&params.path()).await.text().await.unwrap();
        assert!(is_login_page(&html), "{html}");
        if html.contains("Sign in with corp") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the authorization request's login page never offers corp");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}
