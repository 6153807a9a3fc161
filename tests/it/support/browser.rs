//! A browser: a cookie jar, forms submitted as a person would, sign-up and sign-in.
#![allow(unused_imports)]
use std::collections::HashMap;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use mcp_gateway::app::{Application, Overrides};
use mcp_gateway::config::Config;
use reqwest::header::{COOKIE, SET_COOKIE};
use reqwest::{Client, RequestBuilder, Response, StatusCode};
use sea_orm::ConnectionTrait;
use serde::Serialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tempfile::TempDir;
use url::Url;

use super::*;

pub struct Browser {
    base: String,
    client: Client,
    cookies: Vec<(String, String)>,
}

impl Browser {
    pub fn new(app: &TestApp) -> Self {
        Browser { base: app.base.clone(), client: app.client.clone(), cookies: Vec::new() }
    }

    pub fn cookie(&self, name: &str) -> Option<String> {
        self.cookies.iter().find(|(existing, _)| existing == name).map(|(_, value)| value.clone())
    }

    pub fn set_cookie(&mut self, name: &str, value: &str) {
        self.cookies.retain(|(existing, _)| existing != name);
        self.cookies.push((name.to_string(), value.to_string()));
    }

    pub async fn get(&mut self, target: &str) -> Response {
        let request = self.client.get(absolute(&self.base, target));
        self.send(request).await
    }

    pub async fn post_form<T: Serialize + ?Sized>(&mut self, target: &str, form: &T) -> Response {
        let request = self.client.post(absolute(&self.base, target)).form(form);
        self.send(request).await
    }

    async fn send(&mut self, mut request: RequestBuilder) -> Response {
        if !self.cookies.is_empty() {
            let cookies =
                self.cookies.iter().map(|(name, value)| format!("{name}={value}")).collect::<Vec<_>>().join("; ");
            request = request.header(COOKIE, cookies);
        }
        let response = request.send().await.expect("request reaches the gateway");
        self.store_cookies(&response);
        response
    }

    fn store_cookies(&mut self, response: &Response) {
        for raw in response.headers().get_all(SET_COOKIE) {
            let Ok(raw) = raw.to_str() else { continue };
            let Some((name, value)) = cookie_pair(raw) else {
                continue;
            };
            let expired = value.is_empty()
                || cookie_attribute(raw, "max-age").is_some_and(|age| age == "0" || age.starts_with('-'));
            self.cookies.retain(|(existing, _)| *existing != name);
            if !expired {
                self.cookies.push((name, value));
            }
        }
    }

    pub async fn page(&mut self, target: &str) -> String {
        let response = self.get(target).await;
        let status = response.status();
        let html = response.text().await.expect("page body");
        assert_eq!(status, StatusCode::OK, "GET {target}: {html}");
        html
    }

    pub async fn signup(&mut self, username: &str, password: &str) -> Response {
        let html = self.page("/signup").await;
        let csrf = extract_hidden(&html, "csrf_token");
        self.post_form(
            "/signup",
            &[
                ("username", username),
                ("password", password),
                ("password_confirm", password),
                ("csrf_token", csrf.as_str()),
                ("return_to", "/"),
            ],
        )
        .await
    }

    pub async fn login(&mut self, username: &str, password: &str) -> Response {
        let html = self.page("/login").await;
        self.submit_login(&html, username, password).await
    }

    pub async fn submit_login(&mut self, login_page: &str, username: &str, password: &str) -> Response {
        let csrf = extract_hidden(login_page, "csrf_token");
        let return_to = hidden_value(login_page, "return_to").unwrap_or_else(|| "/".to_string());
        self.post_form(
            "/login",
            &[
                ("username", username),
                ("password", password),
                ("csrf_token", csrf.as_str()),
                ("return_to", return_to.as_str()),
            ],
        )
        .await
    }

    pub async fn consent_page(&mut self, params: &AuthorizeParams) -> String {
        let html = self.page(&params.path()).await;
        assert!(is_consent_page(&html), "expected the consent page, got: {html}");
        html
    }

    pub async fn decide(&mut self, consent_page: &str, decision: &str) -> Response {
        let mut form = form_hidden_inputs(consent_page, "/oauth/authorize");
        form.push(("decision".to_string(), decision.to_string()));
        self.post_form("/oauth/authorize", &form).await
    }

    pub async fn authorize(&mut self, params: &AuthorizeParams) -> String {
        let response = self.get(&params.path()).await;
        let response = if response.status() == StatusCode::OK {
            let html = response.text().await.expect("consent page body");
            assert!(is_consent_page(&html), "expected the consent page, got: {html}");
            self.decide(&html, "allow").await
        } else {
            response
        };
        assert_eq!(response.status(), StatusCode::FOUND, "authorization should redirect back");
        let query = redirect_query(&response);
        assert_eq!(query.get("state").map(String::as_str), params.get("state"));
        query.get("code").cloned().unwrap_or_else(|| panic!("no code in redirect: {query:?}"))
    }
}

pub async fn signup_and_login(app: &TestApp, username: &str, password: &str) -> Browser {
    let mut browser = Browser::new(app);
    let response = browser.signup(username, password).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER, "signup should succeed");
    assert!(browser.cookie(SESSION_COOKIE).is_some(), "signup should start a session");
    browser
}
