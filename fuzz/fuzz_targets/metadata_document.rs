//! Client ID Metadata Documents as fetched from a client's URL: the URL rules and the document rules.
#![no_main]
use libfuzzer_sys::fuzz_target;
use mcp_gateway::oauth::metadata_document::{check_url, validate};

fuzz_target!(|data: (&str, &[u8])| {
    let (client_id, body) = data;
    if check_url(client_id, false).is_ok()
        && let Ok(client) = validate(client_id, body, mcp_gateway::clock::UnixTime(0))
    {
        assert_eq!(client.client_id, client_id);
        assert!(client.secret_hash.is_none(), "a metadata-document client is always public");
    }
});
