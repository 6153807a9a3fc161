//! Scopes (RFC 6749 §3.3) and the ones this server knows.
use std::collections::BTreeSet;
use std::fmt;

pub const MCP_READ: &str = "mcp:read";
pub const MCP_WRITE: &str = "mcp:write";

/// Every scope this server issues, with the sentence the consent page shows for it.
pub const SUPPORTED: &[(&str, &str)] = &[
    (MCP_READ, "List and call read-only tools, and read resources and prompts"),
    (MCP_WRITE, "Call tools that create, change or delete your data"),
];

/// A set of known scopes, kept in a stable order so it prints the same way every time.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Scope(BTreeSet<&'static str>);

impl Scope {
    /// Parses a space-separated scope string; an unknown or malformed scope is an error naming it.
    pub fn parse(value: &str) -> Result<Scope, String> {
        let mut set = BTreeSet::new();
        for token in value.split(' ').filter(|t| !t.is_empty()) {
            match SUPPORTED.iter().find(|(name, _)| *name == token) {
                Some((name, _)) => {
                    set.insert(*name);
                }
                None => return Err(format!("unknown scope '{}'", token.escape_default())),
            }
        }
        Ok(Scope(set))
    }

    pub fn all() -> Scope {
        Scope(SUPPORTED.iter().map(|(name, _)| *name).collect())
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn contains(&self, scope: &str) -> bool {
        self.0.contains(scope)
    }

    pub fn is_subset_of(&self, other: &Scope) -> bool {
        self.0.is_subset(&other.0)
    }

    /// The scopes with their descriptions, for the consent page.
    /// The scope's names, in order.
    pub fn names(&self) -> Vec<String> {
        self.0.iter().map(|s| (*s).to_owned()).collect()
    }

    pub fn described(&self) -> Vec<(&'static str, &'static str)> {
        SUPPORTED.iter().filter(|(name, _)| self.0.contains(name)).copied().collect()
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for s in &self.0 {
            if !first {
                f.write_str(" ")?;
            }
            f.write_str(s)?;
            first = false;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::Scope;

    #[test]
    fn parses_known_scopes_in_any_order() {
        assert_eq!(Scope::parse("mcp:write  mcp:read").unwrap().to_string(), "mcp:read mcp:write");
        assert!(Scope::parse("").unwrap().is_empty());
    }

    #[test]
    fn unknown_scopes_are_rejected() {
        assert!(Scope::parse("mcp:read admin").is_err());
        assert!(Scope::parse("MCP:READ").is_err());
    }

    #[test]
    fn narrowing_is_a_subset_widening_is_not() {
        let granted = Scope::parse("mcp:read").unwrap();
        assert!(Scope::parse("mcp:read").unwrap().is_subset_of(&Scope::all()));
        assert!(!Scope::all().is_subset_of(&granted));
    }
}
