//! Tokens taken apart and put together again (for attacks), and the bearer challenge.
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

pub fn b64(data: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(data)
}

pub fn b64_decode(text: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD.decode(text).unwrap_or_else(|e| panic!("{text} is not base64url ({e})"))
}

pub fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

pub fn jwt_header(token: &str) -> jsonwebtoken::Header {
    jsonwebtoken::decode_header(token).expect("a JWT header")
}

pub fn jwt_claims(token: &str) -> Value {
    jsonwebtoken::dangerous::insecure_decode::<Value>(token).expect("JWT claims").claims
}

pub fn resign_hs256(token: &str, secret: &[u8], edit: impl FnOnce(&mut jsonwebtoken::Header, &mut Value)) -> String {
    let mut jose = jwt_header(token);
    let mut claims = jwt_claims(token);
    jose.alg = jsonwebtoken::Algorithm::HS256;
    edit(&mut jose, &mut claims);
    jsonwebtoken::encode(&jose, &claims, &jsonwebtoken::EncodingKey::from_secret(secret))
        .expect("sign the forged token")
}

pub fn unsigned_token(token: &str) -> String {
    let jose = json!({"alg": "none", "typ": "at+jwt"});
    format!("{}.{}.", b64(jose.to_string()), b64(jwt_claims(token).to_string()))
}

pub async fn fetch_resource_metadata(app: &TestApp, challenge: &HashMap<String, String>) -> Value {
    app.client
        .get(&challenge["resource_metadata"])
        .send()
        .await
        .expect("resource metadata")
        .json()
        .await
        .expect("resource metadata JSON")
}

pub fn bearer_challenge(response: &Response) -> HashMap<String, String> {
    let raw = header(response, "www-authenticate").expect("WWW-Authenticate header");
    let params = raw.strip_prefix("Bearer").unwrap_or_else(|| panic!("not a Bearer challenge: {raw}"));
    let mut found = HashMap::new();
    let mut rest = params.trim_start();
    while let Some(eq) = rest.find('=') {
        let key = rest[..eq].trim().trim_start_matches(',').trim().to_string();
        let after = &rest[eq + 1..];
        let (value, remaining) = match after.strip_prefix('"') {
            Some(quoted) => {
                let end = quoted.find('"').unwrap_or(quoted.len());
                (&quoted[..end], &quoted[(end + 1).min(quoted.len())..])
            }
            None => {
                let end = after.find(',').unwrap_or(after.len());
                (after[..end].trim(), &after[end..])
            }
        };
        found.insert(key, value.to_string());
        rest = remaining.trim_start().trim_start_matches(',').trim_start();
    }
    found
}
