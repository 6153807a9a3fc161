//! Form bodies of the token endpoint, as they are decoded into a request, and the client credentials taken
//! from them (with or without an `Authorization` header).
#![no_main]
use libfuzzer_sys::fuzz_target;
use mcp_gateway::oauth::client_auth::PresentedClient;
use mcp_gateway::oauth::token::TokenRequest;

fuzz_target!(|data: (&[u8], Option<&str>)| {
    let (body, authorization) = data;
    if let Ok(request) = serde_urlencoded::from_bytes::<TokenRequest>(body) {
        let _ = PresentedClient::from_request(
            authorization,
            request.client_id.as_deref(),
            request.client_secret.as_deref(),
        );
    }
});
