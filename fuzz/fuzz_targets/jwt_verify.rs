//! Bearer tokens at `/mcp` and introspection: verification against a real key ring (ES256 keys made in an
//! in-memory database). Nothing here may panic, and nothing unsigned by the ring may verify.
#![no_main]
use std::sync::LazyLock;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use mcp_gateway::domain::tokens::AccessTokens;
use mcp_gateway::domain::keys::KeyRing;
use mcp_gateway::store::Store;

static RUNTIME: LazyLock<tokio::runtime::Runtime> =
    LazyLock::new(|| tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime"));

static TOKENS: LazyLock<AccessTokens> = LazyLock::new(|| {
    RUNTIME.block_on(async {
        let store = Store::connect("sqlite::memory:", 1, Duration::from_secs(5)).await.expect("in-memory database");
        store.migrate().await.expect("migrations");
        let keys = KeyRing::load(store, None, Duration::from_secs(3600)).await.expect("signing keys");
        AccessTokens::new(keys, "https://issuer.example".into(), "https://issuer.example/mcp".into())
    })
});

fuzz_target!(|token: &str| {
    let verified = RUNTIME.block_on(TOKENS.verify(token));
    assert!(verified.is_err(), "a token nobody signed verified: {token:?}");
});
