//! mcp-gateway: an MCP server (Streamable HTTP) that is its own OAuth 2.1 authorization server.
//!
//! [`app::Application::build`] assembles everything from a [`config::Config`]; `main` and the tests use it.
pub mod app;
pub mod cli;
pub mod config;
pub mod crypto;
pub mod error;
pub mod limits;
pub mod mcp;
pub mod metrics;
pub mod oauth;
pub mod ops;
pub mod pages;
pub mod state;
pub mod store;
