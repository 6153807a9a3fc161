//! The domain: typed values parsed once at the edge (a client and its redirect URIs, scopes, resources, PKCE
//! challenges), the rules that need no I/O, and the services every face shares (browser sessions, access
//! tokens and their keys, client registration), on top of the store.
pub mod accounts;
pub mod client;
pub mod client_keys;
pub mod identity_providers;
pub mod keys;
pub mod pkce;
pub mod policy;
pub mod redirect_uri;
pub mod registration;
pub mod resource;
pub mod scope;
pub mod sessions;
pub mod tokens;
pub mod upstream;
pub mod upstream_accounts;
pub mod upstreams;
pub mod views;
