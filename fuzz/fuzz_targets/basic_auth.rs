//! `Authorization: Basic …` headers at the token, revocation and introspection endpoints.
#![no_main]
use libfuzzer_sys::fuzz_target;
use mcp_gateway::oauth::client_auth::PresentedClient;

fuzz_target!(|data: (&str, Option<&str>, Option<&str>)| {
    let (header, client_id, secret) = data;
    if let Ok(presented) = PresentedClient::from_request(Some(header), client_id, secret) {
        assert!(!presented.client_id.is_empty(), "a client is always named");
    }
});
