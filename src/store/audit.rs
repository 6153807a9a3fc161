use sea_orm::{ColumnTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use super::{Store, audit_event};
use crate::clock::{UnixTime, now};

/// What happened, for the audit log. The names are stable: operators filter on them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditKind {
    LoginSucceeded,
    LoginFailed,
    LoginThrottled,
    ConsentGranted,
    ConsentDenied,
    ConsentRevoked,
    ClientRegistered,
    ClientDeleted,
    ClientDisabled,
    ClientEnabled,
    UserDisabled,
    UserEnabled,
    RefreshTokenReused,
    CodeReplayed,
    KeyRotated,
    UpstreamCall,
    UpstreamChanged,
    MachineTokenIssued,
    MachineAccessRevoked,
    EnterpriseTokenIssued,
    IdentityProviderChanged,
    UpstreamConnected,
    UpstreamDisconnected,
    PolicyRefused,
    GroupChanged,
    IdentityLinked,
    IdentityUnlinked,
}

impl AuditKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AuditKind::LoginSucceeded => "login_succeeded",
            AuditKind::LoginFailed => "login_failed",
            AuditKind::LoginThrottled => "login_throttled",
            AuditKind::ConsentGranted => "consent_granted",
            AuditKind::ConsentDenied => "consent_denied",
            AuditKind::ConsentRevoked => "consent_revoked",
            AuditKind::ClientRegistered => "client_registered",
            AuditKind::ClientDeleted => "client_deleted",
            AuditKind::ClientDisabled => "client_disabled",
            AuditKind::ClientEnabled => "client_enabled",
            AuditKind::UserDisabled => "user_disabled",
            AuditKind::UserEnabled => "user_enabled",
            AuditKind::RefreshTokenReused => "refresh_token_reused",
            AuditKind::CodeReplayed => "code_replayed",
            AuditKind::KeyRotated => "key_rotated",
            AuditKind::UpstreamCall => "upstream_call",
            AuditKind::UpstreamChanged => "upstream_changed",
            AuditKind::MachineTokenIssued => "machine_token_issued",
            AuditKind::MachineAccessRevoked => "machine_access_revoked",
            AuditKind::EnterpriseTokenIssued => "enterprise_token_issued",
            AuditKind::IdentityProviderChanged => "identity_provider_changed",
            AuditKind::UpstreamConnected => "upstream_connected",
            AuditKind::UpstreamDisconnected => "upstream_disconnected",
            AuditKind::PolicyRefused => "policy_refused",
            AuditKind::GroupChanged => "group_changed",
            AuditKind::IdentityLinked => "identity_linked",
            AuditKind::IdentityUnlinked => "identity_unlinked",
        }
    }
}

/// One audit event. `detail` is a short, fixed-vocabulary note (how a client was registered, why a login
/// failed); it never holds a token, code, secret or password.
#[derive(Debug, Clone, Default)]
pub struct AuditEntry<'a> {
    pub user_id: Option<&'a str>,
    pub client_id: Option<&'a str>,
    pub ip: Option<std::net::IpAddr>,
    pub detail: Option<&'a str>,
}

/// An audit event kept until it is written with others ([`Store::audit_many`]).
#[derive(Debug, Clone)]
pub struct OwnedAuditEntry {
    pub at: UnixTime,
    pub kind: AuditKind,
    pub user_id: Option<String>,
    pub client_id: Option<String>,
    pub detail: Option<String>,
}

/// Which events `mcp-gateway audit` lists.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub event: Option<String>,
    pub user_id: Option<String>,
    pub client_id: Option<String>,
    pub since: Option<UnixTime>,
    pub limit: u64,
}

impl Store {
    /// Appends an event. A failure to write it is logged and does not fail the request it describes.
    pub async fn audit(&self, kind: AuditKind, entry: AuditEntry<'_>) {
        let row = audit_event::ActiveModel {
            id: sea_orm::ActiveValue::NotSet,
            at: sea_orm::ActiveValue::Set(now()),
            event: sea_orm::ActiveValue::Set(kind.as_str().to_owned()),
            user_id: sea_orm::ActiveValue::Set(entry.user_id.map(str::to_owned)),
            client_id: sea_orm::ActiveValue::Set(entry.client_id.map(str::to_owned)),
            ip: sea_orm::ActiveValue::Set(entry.ip.map(|ip| ip.to_canonical().to_string())),
            detail: sea_orm::ActiveValue::Set(entry.detail.map(str::to_owned)),
        };
        if let Err(e) = audit_event::Entity::insert(row).exec_without_returning(&self.db).await {
            tracing::warn!(error = %e, event = kind.as_str(), "writing the audit log failed");
        }
    }

    /// Appends many events in one transaction (the gateway's calls, written in batches). A failure is logged.
    pub async fn audit_many(&self, events: Vec<OwnedAuditEntry>) {
        if let Err(e) = self.insert_audit_batch(events).await {
            tracing::warn!(error = %e, "writing a batch of audit events failed");
        }
    }

    async fn insert_audit_batch(&self, events: Vec<OwnedAuditEntry>) -> Result<(), DbErr> {
        if events.is_empty() {
            return Ok(());
        }
        let mut rows = events.into_iter().map(|e| audit_event::ActiveModel {
            id: sea_orm::ActiveValue::NotSet,
            at: sea_orm::ActiveValue::Set(e.at),
            event: sea_orm::ActiveValue::Set(e.kind.as_str().to_owned()),
            user_id: sea_orm::ActiveValue::Set(e.user_id),
            client_id: sea_orm::ActiveValue::Set(e.client_id),
            ip: sea_orm::ActiveValue::Set(None),
            detail: sea_orm::ActiveValue::Set(e.detail),
        });
        let (_turn, txn) = self.begin_write().await?;
        for length in insert_lengths(rows.len()) {
            audit_event::Entity::insert_many(rows.by_ref().take(length)).exec_without_returning(&txn).await?;
        }
        txn.commit().await
    }

    /// The newest events first.
    pub async fn audit_events(&self, filter: &AuditFilter) -> Result<Vec<audit_event::Model>, DbErr> {
        let mut query = audit_event::Entity::find();
        if let Some(event) = &filter.event {
            query = query.filter(audit_event::Column::Event.eq(event.as_str()));
        }
        if let Some(user_id) = &filter.user_id {
            query = query.filter(audit_event::Column::UserId.eq(user_id.as_str()));
        }
        if let Some(client_id) = &filter.client_id {
            query = query.filter(audit_event::Column::ClientId.eq(client_id.as_str()));
        }
        if let Some(since) = filter.since {
            query = query.filter(audit_event::Column::At.gte(since));
        }
        query.order_by_desc(audit_event::Column::Id).limit(filter.limit).all(&self.db).await
    }
}

/// Most rows in one insert of audit events.
const MOST_ROWS_PER_INSERT: usize = 64;

/// How `n` rows go in: inserts of [`MOST_ROWS_PER_INSERT`] rows, then one of each power of two the rest is
/// made of. Every connection keeps each statement it prepared; an insert of exactly a batch's length would keep
/// one compiled statement per length ever seen (SQLite's, some 1 KiB per row: megabytes under load), where these
/// are at most 7 shapes.
fn insert_lengths(n: usize) -> impl Iterator<Item = usize> {
    let rest = n % MOST_ROWS_PER_INSERT;
    std::iter::repeat_n(MOST_ROWS_PER_INSERT, n / MOST_ROWS_PER_INSERT).chain(
        (0..MOST_ROWS_PER_INSERT.trailing_zeros()).rev().map(|bit| 1 << bit).filter(move |part| rest & part != 0),
    )
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_batch_goes_in_as_a_few_shapes_of_insert() {
        let mut shapes = std::collections::BTreeSet::new();
        for n in 0..=1_000 {
            let lengths: Vec<usize> = insert_lengths(n).collect();
            assert_eq!(lengths.iter().sum::<usize>(), n, "{n} rows: {lengths:?}");
            assert!(lengths.iter().all(|&l| (1..=MOST_ROWS_PER_INSERT).contains(&l)), "{n} rows: {lengths:?}");
            shapes.extend(lengths);
        }
        assert_eq!(shapes.into_iter().collect::<Vec<_>>(), [1, 2, 4, 8, 16, 32, 64]);
    }

    #[tokio::test]
    async fn every_event_of_a_batch_is_written_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("audit.db").display());
        let store = Store::connect(&url, 2, Duration::from_secs(5)).await.unwrap();
        store.migrate().await.unwrap();
        let event = |i: usize| OwnedAuditEntry {
            at: now(),
            kind: AuditKind::UpstreamCall,
            user_id: Some(format!("user-{i}")),
            client_id: None,
            detail: Some(format!("call {i}")),
        };
        store.audit_many((0..203).map(event).collect()).await;
        store.audit_many(vec![event(203)]).await;
        let filter = AuditFilter { limit: 1_000, ..Default::default() };
        let written: Vec<String> =
            store.audit_events(&filter).await.unwrap().into_iter().rev().filter_map(|e| e.detail).collect();
        assert_eq!(written, (0..204).map(|i| format!("call {i}")).collect::<Vec<_>>());
    }
}
