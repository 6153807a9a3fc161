//! Reading answers: JSON bodies, OAuth and HTML errors, redirects, headers and cookies.
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

pub async fn json_ok(response: Response) -> Value {
    let status = response.status();
    let body = response.text().await.expect("response body");
    assert_eq!(status, StatusCode::OK, "unexpected answer: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

pub async fn assert_oauth_error(response: Response, status: StatusCode, error: &str) -> Value {
    let seen = response.status();
    let body = response.text().await.expect("response body");
    assert_eq!(seen, status, "expected {status} {error}, got: {body}");
    let body: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("error is not JSON ({e}): {body}"));
    assert_eq!(body["error"], error, "body: {body}");
    body
}

pub async fn assert_html_error(response: Response, status: StatusCode) -> String {
    assert_eq!(response.status(), status);
    assert!(header(&response, "location").is_none(), "an error page must not redirect");
    let content_type = header(&response, "content-type").unwrap_or_default();
    assert!(content_type.starts_with("text/html"), "content type: {content_type}");
    response.text().await.expect("error page body")
}

pub fn assert_redirect_error(response: &Response, redirect_uri: &str, issuer: &str, error: &str) {
    assert_eq!(response.status(), StatusCode::FOUND, "expected a redirect carrying {error}");
    let location = location(response);
    assert!(location.starts_with(redirect_uri), "redirected to {location}");
    let query = redirect_query(response);
    assert_eq!(query.get("error").map(String::as_str), Some(error), "{query:?}");
    assert_eq!(query.get("state").map(String::as_str), Some(STATE), "{query:?}");
    assert_eq!(query.get("iss").map(String::as_str), Some(issuer), "{query:?}");
    assert!(!query.contains_key("code"), "{query:?}");
}

pub fn header(response: &Response, name: &str) -> Option<String> {
    response.headers().get(name).and_then(|value| value.to_str().ok()).map(str::to_string)
}

pub fn location(response: &Response) -> String {
    header(response, "location").expect("Location header")
}

pub fn redirect_query(response: &Response) -> HashMap<String, String> {
    let target = Url::parse(&location(response)).expect("absolute Location");
    target.query_pairs().into_owned().collect()
}

/// Where a redirect sends the browser, as an absolute URL.
pub fn resolved(app: &TestApp, response: &Response) -> String {
    absolute(&app.base, &location(response))
}

pub fn absolute(base: &str, target: &str) -> String {
    Url::parse(base).and_then(|base| base.join(target)).expect("resolvable URL").to_string()
}

/// A client name no other registration in this process uses, so a repeated registration is never
/// answered with an earlier client.
pub fn unique_name(prefix: &str) -> String {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1);
    format!("{prefix} {}", NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
}

pub fn str_field(value: &Value, key: &str) -> String {
    value[key].as_str().unwrap_or_else(|| panic!("no string {key} in {value}")).to_string()
}

pub fn scope_set(scope: &str) -> Vec<&str> {
    let mut scopes: Vec<&str> = scope.split_whitespace().collect();
    scopes.sort_unstable();
    scopes
}

pub fn set_cookie(response: &Response, name: &str) -> Option<String> {
    response
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .find(|raw| cookie_pair(raw).is_some_and(|(cookie, _)| cookie == name))
        .map(str::to_string)
}

pub(crate) fn cookie_pair(raw: &str) -> Option<(String, String)> {
    let (name, value) = raw.split(';').next()?.split_once('=')?;
    Some((name.trim().to_string(), value.trim().to_string()))
}

pub fn cookie_attribute(raw: &str, attribute: &str) -> Option<String> {
    raw.split(';').skip(1).find_map(|part| {
        let (key, value) = part.split_once('=').unwrap_or((part, ""));
        key.trim().eq_ignore_ascii_case(attribute).then(|| value.trim().to_string())
    })
}
