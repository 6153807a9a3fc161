//! Signing in through GitHub (`idp add --github`): OAuth, not OpenID Connect, so the person, their verified
//! email and their organizations and teams come from GitHub's API. Against a local stand-in for GitHub's
//! authorize, token and API endpoints that checks what GitHub checks (the app's secret in the form, the PKCE
//! verifier, the token on every API call) and answers as GitHub does (a refused code is a 200 with `error`).
//! Also: linking a second provider from the home page, and unlinking it.
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use base64::Engine;
use poem::web::{Data, Form, Json, Path, Query};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::*;

const CLIENT_ID: &str = "Iv1.github-test-app";
const CLIENT_SECRET: &str = "github-app-secret-0123456789abcdef";
const TOKEN: &str = "gho_stand_in_token_0123456789";

/// What the stand-in says of the person who signs in, and what it saw.
struct GitHubState {
    id: u64,
    login: String,
    email: String,
    verified: bool,
    orgs: Vec<&'static str>,
    /// The authorization requests it got, and the tokens given back to it.
    authorize_queries: Vec<HashMap<String, String>>,
    challenge: String,
    forgotten: Vec<String>,
    /// The next code it hands out is one its token endpoint refuses.
    refuse_code: bool,
}

type Shared = Arc<Mutex<GitHubState>>;

#[poem::handler]
fn authorize(Data(state): Data<&Shared>, Query(query): Query<HashMap<String, String>>) -> poem::web::Redirect {
    let mut state = state.lock().unwrap();
    state.challenge = query.get("code_challenge").cloned().unwrap_or_default();
    let code = if state.refuse_code { "stale-code" } else { "good-code" };
    let back = format!("{}?code={code}&state={}", query["redirect_uri"], query["state"]);
    state.authorize_queries.push(query);
    poem::web::Redirect::see_other(back)
}

#[poem::handler]
fn access_token(Data(state): Data<&Shared>, Form(form): Form<HashMap<String, String>>) -> Json<Value> {
    let state = state.lock().unwrap();
    let verifier = form.get("code_verifier").cloned().unwrap_or_default();
    let challenge =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(<sha2::Sha256 as sha2::Digest>::digest(verifier));
    let good = form.get("code").map(String::as_str) == Some("good-code")
        && form.get("client_id").map(String::as_str) == Some(CLIENT_ID)
        && form.get("client_secret").map(String::as_str) == Some(CLIENT_SECRET)
        && challenge == state.challenge;
    // GitHub answers a refused code with 200 and an `error`.
    Json(if good {
        json!({"access_token": TOKEN, "token_type": "bearer", "scope": "read:org,read:user,user:email"})
    } else {
        json!({"error": "bad_verification_code", "error_description": "The code passed is incorrect or expired."})
    })
}

fn authorized(request: &poem::Request) -> bool {
    request.headers().get("authorization").and_then(|v| v.to_str().ok()) == Some(&format!("Bearer {TOKEN}"))
}

#[poem::handler]
fn api(request: &poem::Request, Data(state): Data<&Shared>, Path(what): Path<String>) -> poem::Response {
    use poem::IntoResponse;
    if !authorized(request) {
        return poem::http::StatusCode::UNAUTHORIZED.into_response();
    }
    let state = state.lock().unwrap();
    let body = match what.as_str() {
        "user" => json!({"id": state.id, "login": state.login, "email": null}),
        "user/emails" => json!([
            {"email": "old@elsewhere.org", "primary": false, "verified": true},
            {"email": state.email, "primary": true, "verified": state.verified},
        ]),
        "user/orgs" => json!(state.orgs.iter().map(|o| json!({"login": o})).collect::<Vec<_>>()),
        "user/teams" => json!(
            state.orgs.iter().map(|o| json!({"slug": "platform", "organization": {"login": o}})).collect::<Vec<_>>()
        ),
        _ => return poem::http::StatusCode::NOT_FOUND.into_response(),
    };
    Json(body).into_response()
}

#[poem::handler]
fn forget(
    request: &poem::Request,
    Data(state): Data<&Shared>,
    Path(client_id): Path<String>,
    Json(body): Json<Value>,
) -> poem::http::StatusCode {
    let basic =
        format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{CLIENT_ID}:{CLIENT_SECRET}")));
    if client_id != CLIENT_ID || request.headers().get("authorization").and_then(|v| v.to_str().ok()) != Some(&basic) {
        return poem::http::StatusCode::UNAUTHORIZED;
    }
    state.lock().unwrap().forgotten.push(body["access_token"].as_str().unwrap_or_default().to_owned());
    poem::http::StatusCode::NO_CONTENT
}

struct GitHub {
    url: String,
    state: Shared,
}

impl GitHub {
    async fn start() -> GitHub {
        use poem::listener::{Acceptor, Listener};
        use poem::{EndpointExt, get, post};
        let acceptor = poem::listener::TcpListener::bind("127.0.0.1:0").into_acceptor().await.unwrap();
        let port = acceptor.local_addr()[0].as_socket_addr().unwrap().port();
        let state = Arc::new(Mutex::new(GitHubState {
            id: 4242,
            login: "octocat".into(),
            email: "octo@example.com".into(),
            verified: true,
            orgs: vec!["acme"],
            authorize_queries: Vec::new(),
            challenge: String::new(),
            forgotten: Vec::new(),
            refuse_code: false,
        }));
        let app = poem::Route::new()
            .at("/login/oauth/authorize", get(authorize))
            .at("/login/oauth/access_token", post(access_token))
            .at("/api/v3/applications/:client_id/token", poem::delete(forget))
            .at("/api/v3/*what", get(api))
            .data(state.clone());
        tokio::spawn(poem::Server::new_with_acceptor(acceptor).run(app));
        GitHub { url: format!("http://127.0.0.1:{port}"), state }
    }

    fn add_to(&self, front: &TestApp, extra: &[&str]) {
        let mut args =
            vec!["idp", "add", "gh", "--github", "--issuer", &self.url, "--client-id", CLIENT_ID, "--client-secret"];
        args.push(CLIENT_SECRET);
        args.extend_from_slice(extra);
        front.cli(&args);
    }
}

/// Goes to GitHub (which sends the browser straight back) and returns the gateway's answer to the way back.
async fn through_github(browser: &mut Browser, start: poem::http::Method, csrf: Option<&str>) -> reqwest::Response {
    let to_github = if start == poem::http::Method::POST {
        browser.post_form("/login/idp/gh", &[("csrf_token", csrf.unwrap())]).await
    } else {
        browser.get("/login/idp/gh").await
    };
    assert_eq!(to_github.status(), StatusCode::SEE_OTHER, "{:?}", to_github.text().await);
    let back = browser.get(&next(&to_github)).await;
    browser.get(&next(&back)).await
}

fn next(response: &reqwest::Response) -> String {
    let location = response.headers().get("location").and_then(|v| v.to_str().ok()).expect("a Location header");
    response.url().join(location).unwrap().to_string()
}

async fn groups_of(front: &TestApp, username: &str) -> Vec<String> {
    let sql = "SELECT g.name FROM user_groups g JOIN users u ON u.id = g.user_id WHERE u.username = $1 ORDER BY g.name";
    let rows = front.sql(sql, vec![username.into()]).await;
    rows.iter().map(|r| r.try_get::<String>("", "name").unwrap()).collect()
}

#[tokio::test]
async fn people_sign_in_through_github_with_its_verified_email_and_their_organizations_as_groups() {
    let front = spawn_app().await;
    let github = GitHub::start().await;
    github.add_to(&front, &["--allowed-domains", "example.com"]);
    let listed = front.cli(&["idp", "list"]);
    assert!(listed.lines().any(|l| l.starts_with("gh ") && l.contains("github")), "{listed}");

    // First sign-in: the account is made from GitHub's API (numeric id, login, verified primary email), with
    // the organizations and teams as groups, and the token is given back at once.
    let mut browser = Browser::new(&front);
    assert!(browser.page("/login").await.contains("Sign in with gh"));
    let done = through_github(&mut browser, poem::http::Method::GET, None).await;
    assert_eq!(location(&done), "/", "{:?}", done.text().await);
    assert!(browser.page("/").await.contains("Signed in as <strong>octocat</strong>"));
    assert_eq!(groups_of(&front, "octocat").await, ["gh:acme", "gh:acme/platform"]);
    let link = front.sql("SELECT issuer, subject, email FROM identities", vec![]).await;
    assert_eq!(link[0].try_get::<String>("", "subject").unwrap(), "4242");
    assert_eq!(link[0].try_get::<String>("", "issuer").unwrap(), github.url);
    {
        let state = github.state.lock().unwrap();
        assert_eq!(state.forgotten, [TOKEN], "the token goes back to GitHub once the person is known");
        let query = &state.authorize_queries[0];
        assert_eq!(query["scope"], "read:user user:email read:org");
        assert_eq!(query["code_challenge_method"], "S256");
        assert!(!query.contains_key("nonce"), "GitHub is not OpenID Connect: {query:?}");
    }

    // A renamed account is the same person (found by id, not login); groups follow GitHub.
    {
        let mut state = github.state.lock().unwrap();
        state.login = "octocat-renamed".into();
        state.orgs = vec![];
    }
    let mut again = Browser::new(&front);
    assert_eq!(location(&through_github(&mut again, poem::http::Method::GET, None).await), "/");
    assert!(again.page("/").await.contains("Signed in as <strong>octocat</strong>"));
    assert_eq!(front.sql_count("SELECT COUNT(*) FROM users", vec![]).await, 1);
    assert!(groups_of(&front, "octocat").await.is_empty());

    // Another person whose primary email GitHub has not verified gets no account, even in an allowed domain.
    {
        let mut state = github.state.lock().unwrap();
        state.id = 777;
        state.login = "unverified".into();
        state.verified = false;
    }
    let mut stranger = Browser::new(&front);
    let refused = through_github(&mut stranger, poem::http::Method::GET, None).await;
    assert!(assert_html_error(refused, StatusCode::FORBIDDEN).await.contains("No account here"));

    // A code GitHub refuses (with its 200 and `error`) signs nobody in.
    github.state.lock().unwrap().refuse_code = true;
    let mut refused_code = Browser::new(&front);
    let failed = through_github(&mut refused_code, poem::http::Method::GET, None).await;
    assert_html_error(failed, StatusCode::BAD_GATEWAY).await;
    assert!(refused_code.cookie(SESSION_COOKIE).is_none());
    assert_eq!(front.sql_count("SELECT COUNT(*) FROM users", vec![]).await, 1);
}

#[tokio::test]
async fn a_signed_in_person_links_github_to_their_account_and_may_unlink_it_but_not_their_last_way_in() {
    let front = spawn_app().await;
    let github = GitHub::start().await;
    // No sign-up through GitHub: only linking makes its people known here.
    github.add_to(&front, &[]);
    let mut mia = signup_and_login(&front, "mia", PASSWORD).await;
    let home = mia.page("/").await;
    assert!(home.contains("Link gh"), "{home}");
    let csrf = extract_hidden(&home, "csrf_token");

    // Without the form token, nothing starts.
    let forged = mia.post_form("/login/idp/gh", &[("csrf_token", "forged")]).await;
    assert_html_error(forged, StatusCode::BAD_REQUEST).await;

    let done = through_github(&mut mia, poem::http::Method::POST, Some(&csrf)).await;
    assert_eq!(location(&done), "/?done=linked", "{:?}", done.text().await);
    let home = mia.page("/").await;
    assert!(home.contains("octo@example.com") && home.contains("Unlink"), "{home}");
    assert_eq!(groups_of(&front, "mia").await, ["gh:acme", "gh:acme/platform"]);
    let linked = front.sql("SELECT event FROM audit_events WHERE event = 'identity_linked'", vec![]).await;
    assert_eq!(linked.len(), 1);

    // Now GitHub signs her in, into the same account.
    let mut elsewhere = Browser::new(&front);
    assert_eq!(location(&through_github(&mut elsewhere, poem::http::Method::GET, None).await), "/");
    assert!(elsewhere.page("/").await.contains("Signed in as <strong>mia</strong>"));

    // The same GitHub account cannot be linked to a second account.
    let mut noah = signup_and_login(&front, "noah", PASSWORD).await;
    let csrf = extract_hidden(&noah.page("/").await, "csrf_token");
    let refused = through_github(&mut noah, poem::http::Method::POST, Some(&csrf)).await;
    assert!(assert_html_error(refused, StatusCode::FORBIDDEN).await.contains("already linked to another account"));

    // The way back of a link started by mia, in a browser where someone else signed in since, links nothing.
    let csrf = extract_hidden(&mia.page("/").await, "csrf_token");
    let to_github = mia.post_form("/login/idp/gh", &[("csrf_token", csrf.as_str())]).await;
    let back = mia.get(&next(&to_github)).await;
    let callback = next(&back);
    let noah_session = noah.cookie(SESSION_COOKIE).unwrap();
    let mut switched = Browser::new(&front);
    switched.set_cookie("mcpgw_idp", &mia.cookie("mcpgw_idp").unwrap());
    switched.set_cookie(SESSION_COOKIE, &noah_session);
    assert_html_error(switched.get(&callback).await, StatusCode::BAD_REQUEST).await;
    assert_eq!(front.sql_count("SELECT COUNT(*) FROM identities", vec![]).await, 1);

    // Mia keeps her password, so she may unlink GitHub; a person GitHub made (no password) may not unlink it.
    let csrf = extract_hidden(&mia.page("/").await, "csrf_token");
    let unlinked = mia.post_form("/login/idp/gh/unlink", &[("csrf_token", csrf.as_str())]).await;
    assert_eq!(location(&unlinked), "/?done=unlinked");
    assert_eq!(front.sql_count("SELECT COUNT(*) FROM identities", vec![]).await, 0);
    assert!(groups_of(&front, "mia").await.is_empty(), "the groups GitHub gave go with it");

    front.cli(&["idp", "remove", "gh"]);
    github.add_to(&front, &["--allow-signup"]);
    let mut octo = Browser::new(&front);
    assert_eq!(location(&through_github(&mut octo, poem::http::Method::GET, None).await), "/");
    let csrf = extract_hidden(&octo.page("/").await, "csrf_token");
    let kept = octo.post_form("/login/idp/gh/unlink", &[("csrf_token", csrf.as_str())]).await;
    assert!(assert_html_error(kept, StatusCode::BAD_REQUEST).await.contains("only way to sign in"));
    assert_eq!(front.sql_count("SELECT COUNT(*) FROM identities", vec![]).await, 1);
}
