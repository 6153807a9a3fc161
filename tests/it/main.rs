//! The integration tests, one binary: each module drives the real application over HTTP (on port 0, with
//! a fresh SQLite file, or a fresh Postgres database when `TEST_POSTGRES_URL` is set); `support` holds the
//! helpers, split by concern.
mod support;

mod authorize;
mod cli;
mod client_credentials;
mod discovery;
mod gateway;
mod gateway_servers;
mod github_sign_in;
mod grant_revocation;
mod id_jag;
mod mcp_server;
mod metadata_documents;
mod multi_instance;
mod openapi;
mod operations;
mod pages;
mod policy;
mod private_key_jwt;
mod registration;
mod revoke_introspect;
mod secrets;
mod security_bearer;
mod security_limits;
mod security_redirects;
mod security_sessions;
mod security_tokens;
mod sign_in;
mod tasks;
mod token;
mod transport;
mod upstream_accounts;
