//! mcp-gateway: an MCP server (Streamable HTTP) that is its own OAuth 2.1 authorization server.
//!
//! [`app::Application::build`] assembles everything from a [`config::Config`]; `main` and the tests use it.
//! The layers, top to bottom (nothing imports upward): `cli` → `app` → the faces (`pages`, `oauth`, `mcp`,
//! `ops`) → `domain` → `store` → the leaves (`crypto`, `clock`, `config`, `limits`, `metrics`).
pub mod app;
pub mod cli;
pub mod clock;
pub mod config;
pub mod crypto;
pub mod domain;
pub mod limits;
pub mod mcp;
pub mod metrics;
pub mod oauth;
pub mod ops;
pub mod pages;
pub mod store;
