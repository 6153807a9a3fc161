//! The OAuth 2.1 authorization server and the discovery documents.
pub mod api;
pub mod authorize;
pub mod client_auth;
pub mod introspect;
pub mod jwt;
pub mod keys;
pub mod metadata;
pub mod metadata_document;
pub mod pkce;
pub mod redirect_uri;
pub mod register;
pub mod resource;
pub mod revoke;
pub mod scope;
pub mod token;
