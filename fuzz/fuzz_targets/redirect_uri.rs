//! Registration-time parsing and authorization-time matching of redirect URIs. Whatever is accepted must be
//! free of the forms the rules forbid, and must match itself.
#![no_main]
use libfuzzer_sys::fuzz_target;
use mcp_gateway::domain::redirect_uri::RedirectUri;

fuzz_target!(|data: (&str, &str)| {
    let (registered, requested) = data;
    if let Ok(uri) = RedirectUri::parse(registered) {
        let raw = uri.as_str();
        assert!(!raw.contains('#'), "a fragment was accepted: {raw:?}");
        assert!(!raw.chars().any(char::is_control), "a control character was accepted: {raw:?}");
        let scheme = raw.split(':').next().unwrap_or_default().to_ascii_lowercase();
        assert!(!["javascript", "data", "vbscript", "file"].contains(&scheme.as_str()), "{raw:?}");
        assert!(uri.matches(raw), "a registered URI must match itself: {raw:?}");
        let _ = uri.matches(requested);
    }
});
