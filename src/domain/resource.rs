//! Resource indicators (RFC 8707) and the canonical URI of this MCP server.
use url::Url;

/// A resource indicator: an absolute http(s) URI without a fragment (RFC 8707 §2).
///
/// Two indicators are the same resource when they are equal after the normalisation the MCP
/// specification allows: lower-case scheme and host (done by parsing) and no trailing slash on an empty path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resource {
    canonical: String,
    url: Url,
}

impl Resource {
    pub fn parse(value: &str) -> Result<Resource, String> {
        let url = Url::parse(value).map_err(|e| format!("'{value}' is not an absolute URI: {e}"))?;
        if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
            return Err(format!("'{value}' is not an http(s) URI"));
        }
        if url.fragment().is_some() || value.contains('#') {
            return Err(format!("'{value}' must not contain a fragment"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(format!("'{value}' must not contain user info"));
        }
        let mut canonical = url.to_string();
        if url.path() == "/" && url.query().is_none() {
            canonical.pop();
        }
        Ok(Resource { canonical, url })
    }

    pub fn as_str(&self) -> &str {
        &self.canonical
    }

    pub fn url(&self) -> &Url {
        &self.url
    }

    /// Whether a `resource` parameter sent by a client names this resource.
    pub fn is_named_by(&self, requested: &str) -> bool {
        Resource::parse(requested).is_ok_and(|r| r.canonical == self.canonical)
    }
}

#[cfg(test)]
mod tests {
    use super::Resource;

    #[test]
    fn case_of_scheme_and_host_and_trailing_slash_do_not_matter() {
        let r = Resource::parse("http://localhost:3000/mcp").unwrap();
        assert!(r.is_named_by("HTTP://LOCALHOST:3000/mcp"));
        assert!(!r.is_named_by("http://localhost:3000/mcp/"));
        assert!(!r.is_named_by("http://localhost:3000/MCP"));
        assert!(!r.is_named_by("http://localhost:3001/mcp"));
        let root = Resource::parse("http://localhost:3000/").unwrap();
        assert_eq!(root.as_str(), "http://localhost:3000");
        assert!(root.is_named_by("http://localhost:3000"));
    }

    #[test]
    fn fragments_and_other_schemes_are_not_resources() {
        assert!(Resource::parse("http://localhost/mcp#x").is_err());
        assert!(Resource::parse("urn:example:mcp").is_err());
        assert!(Resource::parse("/mcp").is_err());
    }
}
