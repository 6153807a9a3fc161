//! sea-orm entities, one module per table (see the migration for the schema).
#![allow(clippy::struct_excessive_bools)]

macro_rules! no_relations {
    () => {
        #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
        pub enum Relation {}
        impl ActiveModelBehavior for ActiveModel {}
    };
}

pub mod user {
    use sea_orm::entity::prelude::*;

    use crate::clock::UnixTime;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "users")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub username: String,
        pub password_hash: String,
        pub is_admin: bool,
        pub disabled: bool,
        pub created_at: UnixTime,
    }
    no_relations!();
}

pub mod login_session {
    use sea_orm::entity::prelude::*;

    use crate::clock::UnixTime;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "login_sessions")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id_hash: String,
        pub user_id: String,
        pub created_at: UnixTime,
        pub expires_at: UnixTime,
    }
    no_relations!();
}

pub mod client {
    use sea_orm::entity::prelude::*;

    use crate::clock::UnixTime;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "clients")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub client_id: String,
        pub secret_hash: Option<String>,
        pub name: String,
        /// JSON array of the registered redirect URIs, exactly as registered.
        pub redirect_uris: String,
        /// Space-separated.
        pub grant_types: String,
        /// Space-separated.
        pub response_types: String,
        pub token_endpoint_auth_method: String,
        pub scope: String,
        pub application_type: String,
        /// The full registered metadata (RFC 7591 §3.2.1 echoes it), without secrets.
        pub metadata: String,
        /// `dynamic` (RFC 7591), `operator` (CLI).
        pub registration_source: String,
        pub owner_user_id: Option<String>,
        pub registration_access_token_hash: Option<String>,
        pub metadata_url: Option<String>,
        pub disabled: bool,
        pub created_at: UnixTime,
        /// A dynamically registered client that has not yet obtained a token goes away at this time.
        pub expires_at: Option<UnixTime>,
        /// SHA-256 of the normalized metadata of a dynamic registration (see `oauth::register`).
        pub metadata_hash: Option<String>,
        /// The IP address a dynamic registration came from.
        pub registered_from: Option<String>,
        /// For a Client ID Metadata Document: when the cached document must be fetched again.
        pub metadata_refresh_at: Option<UnixTime>,
    }
    no_relations!();
}

pub mod grant {
    use sea_orm::entity::prelude::*;

    use crate::clock::UnixTime;

    /// One authorization a person gave a client; codes, access tokens (`grant_id` claim) and refresh
    /// tokens (`family_id`) all point to it.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "grants")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub grant_id: String,
        pub user_id: String,
        pub client_id: String,
        pub resource: String,
        pub scope: String,
        pub created_at: UnixTime,
        pub revoked_at: Option<UnixTime>,
    }
    no_relations!();
}

pub mod authorization_code {
    use sea_orm::entity::prelude::*;

    use crate::clock::UnixTime;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "authorization_codes")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub code_hash: String,
        pub client_id: String,
        pub user_id: String,
        pub redirect_uri: String,
        pub redirect_uri_explicit: bool,
        pub scope: String,
        pub resource: String,
        pub code_challenge: String,
        /// The grant this code belongs to; a replayed code revokes it.
        pub family_id: String,
        pub expires_at: UnixTime,
        pub used_at: Option<UnixTime>,
    }
    no_relations!();
}

pub mod consent {
    use sea_orm::entity::prelude::*;

    use crate::clock::UnixTime;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "consents")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub user_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub client_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub resource: String,
        pub scope: String,
        pub granted_at: UnixTime,
        pub revoked_at: Option<UnixTime>,
    }
    no_relations!();
}

pub mod refresh_token {
    use sea_orm::entity::prelude::*;

    use crate::clock::UnixTime;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "refresh_tokens")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub token_hash: String,
        pub family_id: String,
        pub client_id: String,
        pub user_id: String,
        /// The scope the resource owner granted; a refresh may narrow the access token's scope within it.
        pub scope: String,
        pub resource: String,
        pub issued_at: UnixTime,
        pub expires_at: UnixTime,
        pub used_at: Option<UnixTime>,
        pub revoked_at: Option<UnixTime>,
        /// Set at rotation: the hash of the token that replaced this one…
        pub successor_hash: Option<String>,
        /// …and that token, sealed under a key derived from this one (see `crypto::seal_for`).
        pub successor_sealed: Option<String>,
    }
    no_relations!();
}

pub mod signing_key {
    use sea_orm::entity::prelude::*;

    use crate::clock::UnixTime;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "signing_keys")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub kid: String,
        pub alg: String,
        pub private_pem: String,
        pub public_jwk: String,
        pub created_at: UnixTime,
        pub retired_at: Option<UnixTime>,
    }
    no_relations!();
}

pub mod mcp_session {
    use sea_orm::entity::prelude::*;

    use crate::clock::UnixTime;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "mcp_sessions")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub session_id: String,
        /// The `sub` of the token that created the session.
        pub subject: Option<String>,
        pub client_id: Option<String>,
        /// rmcp's serialized session state (the client's `initialize` parameters).
        pub state: Option<String>,
        pub created_at: UnixTime,
        pub last_seen: UnixTime,
    }
    no_relations!();
}

pub mod note {
    use sea_orm::entity::prelude::*;

    use crate::clock::UnixTime;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "notes")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub user_id: String,
        pub title: String,
        pub body: String,
        pub created_at: UnixTime,
        pub updated_at: UnixTime,
    }
    no_relations!();
}

pub mod audit_event {
    use sea_orm::entity::prelude::*;

    use crate::clock::UnixTime;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "audit_events")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub at: UnixTime,
        pub event: String,
        pub user_id: Option<String>,
        pub client_id: Option<String>,
        pub ip: Option<String>,
        pub detail: Option<String>,
    }
    no_relations!();
}

pub mod upstream {
    use sea_orm::entity::prelude::*;

    use crate::clock::UnixTime;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "upstreams")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub name: String,
        /// `stdio` or `http`.
        pub kind: String,
        pub command: Option<String>,
        /// JSON array of the program's arguments.
        pub args: String,
        /// JSON object of the program's environment.
        pub env: String,
        pub cwd: Option<String>,
        pub url: Option<String>,
        /// JSON object of the static headers sent to an HTTP upstream.
        pub headers: String,
        pub prefix: String,
        pub scope: Option<String>,
        pub timeout_secs: i64,
        pub enabled: bool,
        pub created_at: UnixTime,
        pub updated_at: UnixTime,
        /// `none`, or `oauth`: each person signs in to the upstream with their own account.
        pub auth: String,
        /// JSON object of the operator's OAuth client settings for the upstream (sealed when not empty).
        pub oauth: String,
        /// JSON array of the environment variables each person gives the program themselves.
        pub env_per_user: String,
    }
    no_relations!();
}

pub mod upstream_client {
    use sea_orm::entity::prelude::*;

    use crate::clock::UnixTime;

    /// The gateway's registration as an OAuth client at an upstream's authorization server.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "upstream_clients")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub upstream: String,
        /// The upstream URL it was made for (a changed URL registers again).
        pub url: String,
        /// JSON of the authorization server's metadata, as discovered.
        pub metadata: String,
        /// The upstream's canonical URI, sent as `resource` (RFC 8707).
        pub resource: String,
        pub client_id: String,
        pub client_secret_sealed: Option<String>,
        pub created_at: UnixTime,
    }
    no_relations!();
}

pub mod upstream_account {
    use sea_orm::entity::prelude::*;

    use crate::clock::UnixTime;

    /// A person's account at an upstream: their tokens there (OAuth), or the environment values they gave
    /// its program, sealed.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "upstream_accounts")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub user_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub upstream: String,
        pub credentials_sealed: String,
        /// When the access token expires, when the upstream said.
        pub expires_at: Option<UnixTime>,
        /// Never repeats for a person and an upstream (a new connection starts from the time, each change adds
        /// one): a refresh is saved only over the version it started from, and a client made with an older
        /// version is never used again.
        pub version: i64,
        /// While an instance refreshes: until when the others leave it to it.
        pub refreshing_until: Option<UnixTime>,
        /// The refreshing instance's random claim: only it may save or end that refresh.
        pub refresh_claim: Option<String>,
        /// Why the account no longer works (its refresh was refused), in words; the person connects again.
        pub problem: Option<String>,
        pub created_at: UnixTime,
        pub updated_at: UnixTime,
    }
    no_relations!();
}

pub mod upstream_flow {
    use sea_orm::entity::prelude::*;

    use crate::clock::UnixTime;

    /// An authorization at an upstream under way: who started it and its PKCE state, sealed.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "upstream_flows")]
    pub struct Model {
        /// SHA-256 hex of the `state` sent to the upstream.
        #[sea_orm(primary_key, auto_increment = false)]
        pub state_hash: String,
        pub user_id: String,
        pub upstream: String,
        pub flow_sealed: String,
        pub expires_at: UnixTime,
    }
    no_relations!();
}

pub mod upstream_offer {
    use sea_orm::entity::prelude::*;

    use crate::clock::UnixTime;

    /// The last list of what an upstream reached with people's own accounts offers (JSON).
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "upstream_offers")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub upstream: String,
        pub offer: String,
        pub updated_at: UnixTime,
    }
    no_relations!();
}

pub mod upstream_tool {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "upstream_tools")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub upstream: String,
        /// The upstream's own name for the tool.
        #[sea_orm(primary_key, auto_increment = false)]
        pub tool: String,
        /// `read` or `write`.
        pub access: String,
    }
    no_relations!();
}

pub mod upstream_status {
    use sea_orm::entity::prelude::*;

    use crate::clock::UnixTime;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "upstream_status")]
    pub struct Model {
        /// The instance that reports (each runs its own connections).
        #[sea_orm(primary_key, auto_increment = false)]
        pub instance: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub upstream: String,
        /// `starting`, `connected`, `failed` or `disabled`.
        pub state: String,
        pub error: Option<String>,
        /// JSON array of the tool names clients see.
        pub tools: String,
        pub updated_at: UnixTime,
    }
    no_relations!();
}

pub mod used_assertion {
    use sea_orm::entity::prelude::*;

    use crate::clock::UnixTime;

    /// A `private_key_jwt` assertion's `jti`, kept until the assertion expires so it is accepted once.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "used_assertions")]
    pub struct Model {
        /// SHA-256 hex of the client id and the `jti`.
        #[sea_orm(primary_key, auto_increment = false)]
        pub jti_hash: String,
        pub expires_at: UnixTime,
    }
    no_relations!();
}

pub mod identity_provider {
    use sea_orm::entity::prelude::*;

    use crate::clock::UnixTime;

    /// An identity provider the operator trusts.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "identity_providers")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub name: String,
        /// Its `iss`, exactly as its tokens carry it.
        pub issuer: String,
        /// Our client id there (OpenID Connect sign-in); none for a provider trusted only for ID-JAG.
        pub client_id: Option<String>,
        /// Our client secret there, sealed with the secrets key.
        pub client_secret_sealed: Option<String>,
        /// Where its signing keys are; when absent, from its OpenID Connect discovery document.
        pub jwks_uri: Option<String>,
        /// Space-separated email domains whose people get an account at first sign-in.
        pub allowed_domains: String,
        /// Anyone it vouches for gets an account at first sign-in.
        pub allow_signup: bool,
        /// Its Identity Assertion JWT Authorization Grants (ID-JAG) are accepted at the token endpoint.
        pub trust_id_jag: bool,
        pub disabled: bool,
        pub created_at: UnixTime,
        /// The scopes asked of it when a person signs in through it (space-separated).
        pub scopes: String,
        /// The ID token claim that lists the person's groups, if it sends one.
        pub groups_claim: Option<String>,
        /// `oidc`, or `github` (OAuth, with the person and their organizations from GitHub's API).
        pub kind: String,
        /// GitHub's REST API (api.github.com, or a GitHub Enterprise Server's `/api/v3`).
        pub api_url: Option<String>,
    }
    no_relations!();

    /// The context a provider's client secret is sealed under.
    pub fn secret_context(name: &str) -> String {
        format!("identity-provider:{name}:client-secret")
    }

    /// The kinds of provider: OpenID Connect, or GitHub's OAuth and API.
    pub const OIDC: &str = "oidc";
    pub const GITHUB: &str = "github";

    impl Model {
        pub fn is_github(&self) -> bool {
            self.kind == GITHUB
        }

        /// Who gets an account when first seen, in words: `anyone`, `none`, or the allowed email domains.
        pub fn new_accounts(&self) -> String {
            match (self.allow_signup, self.allowed_domains.is_empty()) {
                (true, _) => "anyone".into(),
                (false, true) => "none".into(),
                (false, false) => self.allowed_domains.clone(),
            }
        }
    }
}

pub mod user_group {
    use sea_orm::entity::prelude::*;

    /// A group a person belongs to: from an identity provider's claim (`source` `idp:NAME`, replaced at each
    /// sign-in through it) or given here (`local`).
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "user_groups")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub user_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub name: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub source: String,
    }
    no_relations!();
}

pub mod policy_rule {
    use sea_orm::entity::prelude::*;

    /// A group may use an upstream: every tool, or those matching `allow_tools`, never those matching
    /// `deny_tools` (JSON arrays of patterns, `*` any run of characters).
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "policy_rules")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub group_name: String,
        /// An upstream's name, or `*` for every upstream.
        #[sea_orm(primary_key, auto_increment = false)]
        pub upstream: String,
        pub allow_tools: String,
        pub deny_tools: String,
    }
    no_relations!();
}

pub mod identity {
    use sea_orm::entity::prelude::*;

    use crate::clock::UnixTime;

    /// A person as an identity provider knows them (`iss` + `sub`), linked to their account here.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "identities")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub issuer: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub subject: String,
        pub user_id: String,
        /// The email the provider asserted when the identity was linked (for people; never a lookup key).
        pub email: Option<String>,
        pub created_at: UnixTime,
    }
    no_relations!();
}

pub mod task {
    use sea_orm::entity::prelude::*;

    use crate::clock::UnixTime;

    /// A task: a tool call run in the background for the client that asked, polled with `tasks/get`.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "tasks")]
    pub struct Model {
        /// Random (UUID v4): whoever does not own it cannot guess it, and gets "unknown task" anyway.
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        /// Whose it is: the token's subject and client. Nobody else sees it.
        pub owner_sub: String,
        pub owner_client: String,
        pub tool: String,
        /// `working`, `input_required`, `completed`, `failed` or `cancelled`.
        pub status: String,
        /// The call, the input it waits for and what it answered, sealed with the secrets key.
        pub sealed: String,
        /// Counts the times it went back to work: a change is made on the round it was read at, once.
        pub round: i64,
        /// The instance running it while `working`, which beats its heart every few seconds.
        pub instance: Option<String>,
        pub heartbeat_at: UnixTime,
        pub cancel_requested: bool,
        pub created_at: UnixTime,
        pub updated_at: UnixTime,
        /// Created plus its time to live: then it is deleted, finished or not.
        pub expires_at: UnixTime,
    }
    no_relations!();
}
