//! Redirect URIs: what may be registered (RFC 6749 §3.1.2, RFC 8252 §7, OAuth 2.1 §2.3) and how a
//! requested one is matched against a registered one (exact string match; loopback may vary the port).
use url::Url;

/// Schemes that can never be a redirect target, in any case.
const FORBIDDEN_SCHEMES: &[&str] =
    &["javascript", "data", "vbscript", "file", "blob", "about", "filesystem", "mailto", "tel", "ftp", "ws", "wss"];
const LOOPBACK_HOSTS: &[&str] = &["127.0.0.1", "[::1]", "localhost"];

/// A redirect URI that is acceptable for registration. Holds the exact string the client registered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedirectUri(String);

impl RedirectUri {
    pub fn parse(raw: &str) -> Result<RedirectUri, String> {
        if raw.is_empty() || raw.len() > 2000 {
            return Err("redirect URI must be 1 to 2000 characters".into());
        }
        if raw.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err("redirect URI must not contain whitespace or control characters".into());
        }
        if raw.contains('#') {
            return Err("redirect URI must not contain a fragment".into());
        }
        let url = Url::parse(raw).map_err(|_| format!("'{raw}' is not an absolute URI"))?;
        let scheme = url.scheme();
        if FORBIDDEN_SCHEMES.contains(&scheme) {
            return Err(format!("the '{scheme}' scheme is not allowed"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err("redirect URI must not contain user info".into());
        }
        match scheme {
            "https" if url.host().is_none() => Err("https redirect URI needs a host".into()),
            "https" => Ok(RedirectUri(raw.to_owned())),
            "http" => match split_loopback(raw) {
                Some(_) => Ok(RedirectUri(raw.to_owned())),
                None => {
                    Err("http redirect URIs are only allowed for loopback hosts (127.0.0.1, [::1], localhost)".into())
                }
            },
            // RFC 8252 §7.1 private-use schemes for native apps, e.g. com.example.app:/callback: a reverse
            // domain name the app's maker controls. A scheme without a dot is refused: such names belong to
            // the operating system and to other programs (ms-msdt:, search-ms:, sms:, zoommtg:), which would
            // receive the code or act on the URI.
            _ if raw.starts_with(&format!("{scheme}:")) && is_reverse_domain(scheme) => Ok(RedirectUri(raw.to_owned())),
            _ if raw.starts_with(&format!("{scheme}:")) => Err(format!(
                "the private-use scheme '{scheme}' is not a reverse domain name (RFC 8252 §7.1), e.g. com.example.app"
            )),
            _ => Err(format!("'{raw}' is not a valid redirect URI")),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `requested` (as sent to the authorization or token endpoint) is this registered URI.
    ///
    /// Exact string comparison, byte for byte; for loopback http URIs the port alone may differ
    /// (RFC 8252 §7.3), because native apps listen on an ephemeral port.
    pub fn matches(&self, requested: &str) -> bool {
        if self.0 == requested {
            return true;
        }
        match (split_loopback(&self.0), split_loopback(requested)) {
            (Some((host, rest)), Some((requested_host, requested_rest))) => {
                host == requested_host && rest == requested_rest
            }
            _ => false,
        }
    }

    /// Where the browser will be sent, shown on the consent page: the host (and port) for http(s); for a
    /// private-use scheme the scheme itself, since the program that handles it receives the code whatever
    /// "host" the URI names.
    pub fn display_host(&self) -> String {
        let url = Url::parse(&self.0).ok();
        match url
            .as_ref()
            .filter(|u| matches!(u.scheme(), "http" | "https"))
            .and_then(|u| u.host_str().map(|h| (h, u.port())))
        {
            Some((host, Some(port))) => format!("{host}:{port}"),
            Some((host, None)) => host.to_owned(),
            None => {
                format!("the application that opens {}: links", url.map(|u| u.scheme().to_owned()).unwrap_or_default())
            }
        }
    }

    pub fn is_loopback(&self) -> bool {
        split_loopback(&self.0).is_some()
    }
}

/// `com.example.app`: at least two non-empty labels separated by dots (the URL parser already limited the
/// characters to letters, digits, `+`, `-` and `.`).
fn is_reverse_domain(scheme: &str) -> bool {
    scheme.contains('.') && scheme.split('.').all(|label| !label.is_empty())
}

/// Splits `http://<loopback host>[:port]<rest>` into (host, rest), comparing the raw text (no case folding).
fn split_loopback(raw: &str) -> Option<(&str, &str)> {
    let after = raw.strip_prefix("http://")?;
    let authority_end = after.find(['/', '?']).unwrap_or(after.len());
    let (authority, rest) = after.split_at(authority_end);
    let host = LOOPBACK_HOSTS.iter().find(|h| authority.starts_with(**h))?;
    let port = &authority[host.len()..];
    let port_ok = port.is_empty()
        || port
            .strip_prefix(':')
            .is_some_and(|p| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()));
    port_ok.then_some((*host, rest))
}

#[cfg(test)]
mod tests {
    use super::RedirectUri;

    #[test]
    fn accepts_https_loopback_and_private_use_schemes() {
        for ok in [
            "https://app.example/cb",
            "https://app.example/cb?x=1",
            "http://127.0.0.1:8080/callback",
            "http://localhost/oauth/callback",
            "http://[::1]:9/cb",
            "com.example.app:/oauth2redirect",
            "io.github.app://oauth/callback",
        ] {
            assert!(RedirectUri::parse(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn rejects_dangerous_and_malformed_uris() {
        for bad in [
            "javascript:alert(1)",
            "JavaScript:alert(1)",
            " javascript:alert(1)",
            "\tjavascript:alert(1)",
            "data:text/html,hi",
            "DATA:text/html,hi",
            "vbscript:msgbox",
            "https://app.example/cb#frag",
            "https://user:pw@app.example/cb",
            "http://app.example/cb",
            "http://127.0.0.1.evil.example/cb",
            "http://localhost.evil.example/cb",
            "/relative/cb",
            "",
            "https://app.example/c b",
            // RFC 8252 §7.1: a private-use scheme is a reverse domain name, never one of the system's.
            "ms-msdt:/id PCWDiagnostic",
            "ms-msdt:/callback",
            "search-ms:query=x",
            "sms:+15555550100",
            "zoommtg://zoom.us/join",
            "cursor://anysphere.cursor-retrieval/oauth/callback",
            "com.:/cb",
            ".example:/cb",
        ] {
            assert!(RedirectUri::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn matching_is_exact_except_loopback_port() {
        let https = RedirectUri::parse("https://app.example/cb").unwrap();
        assert!(https.matches("https://app.example/cb"));
        for miss in [
            "https://app.example/cb/",
            "https://app.example/cb?x",
            "https://APP.example/cb",
            "HTTPS://app.example/cb",
            "https://app.example/c",
            "https://app.example/cbx",
            "https://app.example:443/cb",
        ] {
            assert!(!https.matches(miss), "{miss}");
        }
        let loopback = RedirectUri::parse("http://127.0.0.1:1234/callback").unwrap();
        assert!(loopback.matches("http://127.0.0.1:5555/callback"));
        assert!(loopback.matches("http://127.0.0.1/callback"));
        assert!(!loopback.matches("http://localhost:5555/callback"));
        assert!(!loopback.matches("http://127.0.0.1:5555/callback/x"));
        assert!(!loopback.matches("HTTP://127.0.0.1:5555/callback"));
        assert!(!loopback.matches("http://127.0.0.1:55a/callback"));
        assert!(!loopback.matches("http://127.0.0.1.evil.example/callback"));
    }

    #[test]
    fn private_use_schemes_show_the_scheme_not_a_host() {
        assert_eq!(
            RedirectUri::parse("com.example.app://accounts.example/cb").unwrap().display_host(),
            "the application that opens com.example.app: links"
        );
        assert_eq!(RedirectUri::parse("https://app.example:8443/cb").unwrap().display_host(), "app.example:8443");
    }
}
