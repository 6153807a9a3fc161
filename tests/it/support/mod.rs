//! What the integration tests share, split by concern; everything is re-exported here.
pub mod app;
pub mod browser;
pub mod documents;
pub mod html;
pub mod jwt;
pub mod keys;
pub mod mcp;
pub mod oauth;
pub mod responses;
pub mod upstreams;

pub use app::*;
pub use browser::*;
pub use html::*;
pub use jwt::*;
pub use mcp::{assert_mcp_accepts, initialize_request};
pub use oauth::*;
pub use responses::*;

pub const REDIRECT_URI: &str = "http://127.0.0.1:7777/callback";
pub const PASSWORD: &str = "correct-horse-battery";
pub const ALL_SCOPES: &str = "mcp:read mcp:write";
pub const STATE: &str = "state-Zx9";
pub const SESSION_COOKIE: &str = "mcpgw_session";
pub const CSRF_COOKIE: &str = "mcpgw_csrf";
pub const JWT_SECRET: &str = "tests-only-shared-secret-0123456789abcdef";
