//! Scopes (RFC 6749 §3.3): the two this server always knows, and the ones upstreams of the gateway add.
use std::collections::BTreeSet;
use std::fmt;
use std::sync::{Arc, RwLock};

pub const MCP_READ: &str = "mcp:read";
pub const MCP_WRITE: &str = "mcp:write";

/// The scopes this server always issues, with the sentence the consent page shows for each.
pub const BUILT_IN: &[(&str, &str)] = &[
    (MCP_READ, "List and call read-only tools, and read resources and prompts"),
    (MCP_WRITE, "Call tools that create, change or delete your data"),
];

/// A set of scope tokens, kept in a stable order so it prints the same way every time. Parsing checks the
/// syntax only; whether this server offers a scope is the [`ScopeCatalog`]'s to say.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Scope(BTreeSet<String>);

impl Scope {
    /// Parses a space-separated scope string (RFC 6749 §3.3 `scope-token`s); a malformed token is an error
    /// naming it.
    pub fn parse(value: &str) -> Result<Scope, String> {
        let mut set = BTreeSet::new();
        for token in value.split(' ').filter(|t| !t.is_empty()) {
            if !token.bytes().all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b)) {
                return Err(format!("'{}' is not a scope", token.escape_default()));
            }
            set.insert(token.to_owned());
        }
        Ok(Scope(set))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn contains(&self, scope: &str) -> bool {
        self.0.contains(scope)
    }

    /// The scopes in both.
    pub fn intersection(&self, other: &Scope) -> Scope {
        Scope(self.0.intersection(&other.0).cloned().collect())
    }

    pub fn is_subset_of(&self, other: &Scope) -> bool {
        self.0.is_subset(&other.0)
    }

    /// The scope's names, in order.
    pub fn names(&self) -> Vec<String> {
        self.0.iter().cloned().collect()
    }

    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
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

/// Every scope this server offers right now, with what each lets a client do: the built-in ones and one
/// per distinct `--scope` of the gateway's upstreams (which change while the server runs). Shared by
/// registration, authorization, the metadata documents and the MCP guard.
#[derive(Clone, Debug, Default)]
pub struct ScopeCatalog {
    extra: Arc<RwLock<Vec<(String, String)>>>,
}

impl ScopeCatalog {
    /// Replaces the scopes the upstreams add: `(scope, description)` pairs.
    pub fn set_extra(&self, mut extra: Vec<(String, String)>) {
        extra.retain(|(name, _)| !BUILT_IN.iter().any(|(b, _)| b == name));
        extra.sort();
        extra.dedup_by(|a, b| a.0 == b.0);
        *self.extra.write().expect("scope catalog lock") = extra;
    }

    /// Every scope offered, in order.
    pub fn all(&self) -> Scope {
        let mut set: BTreeSet<String> = BUILT_IN.iter().map(|(name, _)| (*name).to_owned()).collect();
        set.extend(self.extra.read().expect("scope catalog lock").iter().map(|(name, _)| name.clone()));
        Scope(set)
    }

    /// Parses `value` and checks that this server offers every scope in it.
    pub fn parse_known(&self, value: &str) -> Result<Scope, String> {
        let scope = Scope::parse(value)?;
        let all = self.all();
        if let Some(unknown) = scope.iter().find(|s| !all.contains(s)) {
            return Err(format!("unknown scope '{}'", unknown.escape_default()));
        }
        Ok(scope)
    }

    /// The scopes of `scope` with their descriptions, for the consent page; a scope no longer offered is
    /// shown with a note saying so.
    pub fn described(&self, scope: &Scope) -> Vec<(String, String)> {
        let extra = self.extra.read().expect("scope catalog lock");
        scope
            .iter()
            .map(|name| {
                let description = BUILT_IN
                    .iter()
                    .find(|(b, _)| *b == name)
                    .map(|(_, d)| (*d).to_owned())
                    .or_else(|| extra.iter().find(|(e, _)| e == name).map(|(_, d)| d.clone()))
                    .unwrap_or_else(|| "A scope this server no longer offers".to_owned());
                (name.to_owned(), description)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::{Scope, ScopeCatalog};

    #[test]
    fn parses_scope_tokens_in_any_order() {
        assert_eq!(Scope::parse("mcp:write  mcp:read").unwrap().to_string(), "mcp:read mcp:write");
        assert!(Scope::parse("").unwrap().is_empty());
        assert!(Scope::parse("a\"b").is_err());
        assert!(Scope::parse("a\\b").is_err());
    }

    #[test]
    fn only_offered_scopes_are_known() {
        let catalog = ScopeCatalog::default();
        assert!(catalog.parse_known("mcp:read admin").is_err());
        assert!(catalog.parse_known("MCP:READ").is_err());
        catalog.set_extra(vec![("files".into(), "Use the upstream files".into())]);
        assert_eq!(catalog.parse_known("files mcp:read").unwrap().to_string(), "files mcp:read");
        assert_eq!(catalog.all().to_string(), "files mcp:read mcp:write");
        let described = catalog.described(&Scope::parse("files gone").unwrap());
        assert_eq!(described[0].1, "Use the upstream files");
        assert!(described[1].1.contains("no longer"));
        catalog.set_extra(vec![]);
        assert!(catalog.parse_known("files").is_err());
    }

    #[test]
    fn narrowing_is_a_subset_widening_is_not() {
        let catalog = ScopeCatalog::default();
        let granted = Scope::parse("mcp:read").unwrap();
        assert!(granted.is_subset_of(&catalog.all()));
        assert!(!catalog.all().is_subset_of(&granted));
    }
}
