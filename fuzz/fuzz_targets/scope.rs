//! Scope strings from authorization requests, token requests and registrations.
#![no_main]
use libfuzzer_sys::fuzz_target;
use mcp_gateway::domain::scope::Scope;

fuzz_target!(|data: (&str, &str)| {
    let (a, b) = data;
    if let (Ok(a), Ok(b)) = (Scope::parse(a), Scope::parse(b)) {
        assert!(a.is_subset_of(&a));
        assert!(a.is_subset_of(&Scope::all()), "only known scopes parse");
        let again = Scope::parse(&a.to_string()).expect("a parsed scope prints as a valid scope");
        assert!(again.is_subset_of(&a) && a.is_subset_of(&again));
        let _ = a.is_subset_of(&b);
    }
});
