//! Schema migrations for mcp-gateway. One file per migration; a migration is never edited after it lands.
pub use sea_orm_migration::prelude::*;

mod m20261127_000001_initial;
mod m20261127_000002_mcp;
mod m20261127_000003_refresh_successor;
mod m20261127_000004_one_active_key;
mod m20261127_000005_client_lifecycle;
mod m20261127_000006_audit_log;
mod m20261203_000007_session_subject_index;
mod m20261203_000008_upstreams;
mod m20261204_000009_client_assertions;
mod m20261204_000010_identity_providers;
mod m20261204_000011_upstream_accounts;
mod m20261204_000012_sign_in;
mod m20261204_000013_github_sign_in;
mod m20261204_000014_tasks;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261127_000001_initial::Migration),
            Box::new(m20261127_000002_mcp::Migration),
            Box::new(m20261127_000003_refresh_successor::Migration),
            Box::new(m20261127_000004_one_active_key::Migration),
            Box::new(m20261127_000005_client_lifecycle::Migration),
            Box::new(m20261127_000006_audit_log::Migration),
            Box::new(m20261203_000007_session_subject_index::Migration),
            Box::new(m20261203_000008_upstreams::Migration),
            Box::new(m20261204_000009_client_assertions::Migration),
            Box::new(m20261204_000010_identity_providers::Migration),
            Box::new(m20261204_000011_upstream_accounts::Migration),
            Box::new(m20261204_000012_sign_in::Migration),
            Box::new(m20261204_000013_github_sign_in::Migration),
            Box::new(m20261204_000014_tasks::Migration),
        ]
    }
}
