//! The OAuth 2.1 authorization server and the discovery documents: one file per RFC concern, the
//! poem-openapi operations in `api`, and the one error vocabulary of this face in `error`.
pub mod api;
pub mod authorize;
pub mod client_auth;
pub mod error;
pub mod id_jag;
pub mod introspect;
pub mod metadata;
pub mod metadata_document;
pub mod register;
pub mod revoke;
pub mod token;
