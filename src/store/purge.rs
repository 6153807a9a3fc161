use std::time::Duration;

use sea_orm::{ColumnTrait, Condition, DbErr, EntityTrait, QueryFilter};

use sea_orm::{QuerySelect, QueryTrait};

use super::{
    Store, audit_event, authorization_code, client, consent, grant, login_session, mcp_session, refresh_token,
    upstream_flow, used_assertion,
};
use crate::clock::{UnixTime, now};

/// How long a used or expired authorization code is kept, so a late replay is still recognised.
const CODE_GRACE: Duration = Duration::from_secs(600);
/// How long a cached metadata document nobody uses stays after it was due for refresh.
const UNUSED_DOCUMENT_GRACE: Duration = Duration::from_secs(86_400);

/// The lifetimes that decide when a row can go.
#[derive(Debug, Clone, Copy)]
pub struct PurgeAfter {
    pub mcp_session: Duration,
    pub access_token: Duration,
    pub refresh_token: Duration,
    pub audit_event: Duration,
}

/// How many rows of each kind a purge removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Purged {
    pub codes: u64,
    pub refresh_tokens: u64,
    pub login_sessions: u64,
    pub mcp_sessions: u64,
    pub consents: u64,
    pub grants: u64,
    pub unused_clients: u64,
    pub audit_events: u64,
    pub used_assertions: u64,
    pub upstream_flows: u64,
    pub tasks: u64,
}

impl Store {
    /// Deletes what can never be used again: codes past expiry (plus a grace period for replay
    /// detection), refresh tokens past expiry, ended browser sessions, idle MCP sessions, revoked consents,
    /// grants revoked longer ago than any access token lives, dynamically registered clients that never
    /// obtained a token, cached metadata documents nobody uses, audit events older than `AUDIT_LOG_TTL`, and
    /// sign-ins at upstreams nobody came back from.
    /// Each is one conditional DELETE, so every instance may run it at once.
    pub async fn purge_expired(&self, ttls: PurgeAfter) -> Result<Purged, DbErr> {
        let at = now();
        let (abandoned_grants, codes) = self.purge_codes(at).await?;
        // A used refresh token is kept one more lifetime after it expires: presenting it then is still
        // recognised as reuse (a thief may have been rotating the family all along).
        let refresh_tokens = refresh_token::Entity::delete_many()
            .filter(Condition::all().add(refresh_token::Column::ExpiresAt.lt(at - ttls.refresh_token)))
            .exec(&self.db)
            .await?
            .rows_affected;
        let login_sessions = login_session::Entity::delete_many()
            .filter(login_session::Column::ExpiresAt.lt(at))
            .exec(&self.db)
            .await?
            .rows_affected;
        let mcp_sessions = mcp_session::Entity::delete_many()
            .filter(mcp_session::Column::LastSeen.lt(at - ttls.mcp_session))
            .exec(&self.db)
            .await?
            .rows_affected;
        // A revoked grant must outlive its access tokens (the guard finds it revoked); after that, a
        // missing grant refuses them just the same.
        let grants = grant::Entity::delete_many()
            .filter(grant::Column::RevokedAt.lt(at - ttls.access_token - Duration::from_secs(60)))
            .exec(&self.db)
            .await?
            .rows_affected
            + abandoned_grants;
        let (unused_clients, consents) = self.purge_clients_and_consents(at).await?;
        let audit_events = audit_event::Entity::delete_many()
            .filter(audit_event::Column::At.lt(at - ttls.audit_event))
            .exec(&self.db)
            .await?
            .rows_affected;
        let used_assertions = used_assertion::Entity::delete_many()
            .filter(used_assertion::Column::ExpiresAt.lt(at))
            .exec(&self.db)
            .await?
            .rows_affected;
        // Sign-ins at upstreams nobody came back from.
        let upstream_flows = upstream_flow::Entity::delete_many()
            .filter(upstream_flow::Column::ExpiresAt.lt(at))
            .exec(&self.db)
            .await?
            .rows_affected;
        let tasks = self.purge_tasks(at).await?;
        Ok(Purged {
            tasks,
            upstream_flows,
            used_assertions,
            codes,
            refresh_tokens,
            login_sessions,
            mcp_sessions,
            consents,
            grants,
            unused_clients,
            audit_events,
        })
    }

    /// Grants whose code expired unredeemed and that hold no refresh token (nothing can ever use them),
    /// then the codes past their grace period. The grants go first: the codes are what tells them apart.
    async fn purge_codes(&self, at: UnixTime) -> Result<(u64, u64), DbErr> {
        let unredeemed = authorization_code::Entity::find()
            .select_only()
            .column(authorization_code::Column::FamilyId)
            .filter(authorization_code::Column::UsedAt.is_null())
            .filter(authorization_code::Column::ExpiresAt.lt(at))
            .into_query();
        let refreshed =
            refresh_token::Entity::find().select_only().column(refresh_token::Column::FamilyId).into_query();
        let abandoned_grants = grant::Entity::delete_many()
            .filter(grant::Column::GrantId.in_subquery(unredeemed))
            .filter(grant::Column::GrantId.not_in_subquery(refreshed))
            .exec(&self.db)
            .await?
            .rows_affected;
        let codes = authorization_code::Entity::delete_many()
            .filter(authorization_code::Column::ExpiresAt.lt(at - CODE_GRACE))
            .exec(&self.db)
            .await?
            .rows_affected;
        Ok((abandoned_grants, codes))
    }

    /// Dynamically registered clients that never obtained a token, cached metadata documents nobody uses,
    /// revoked consents and consents left without a client.
    async fn purge_clients_and_consents(&self, at: UnixTime) -> Result<(u64, u64), DbErr> {
        let revoked_consents = consent::Entity::delete_many()
            .filter(consent::Column::RevokedAt.is_not_null())
            .exec(&self.db)
            .await?
            .rows_affected;
        let unused_clients = client::Entity::delete_many()
            .filter(client::Column::ExpiresAt.lt(at))
            .filter(client::Column::MetadataUrl.is_null())
            .exec(&self.db)
            .await?
            .rows_affected;
        // Cached metadata documents a day past their refresh time that nobody has consented to and no live
        // grant uses: anyone can make the server fetch a document, so such rows must not pile up.
        let consented = consent::Entity::find().select_only().column(consent::Column::ClientId).into_query();
        let granted = grant::Entity::find()
            .select_only()
            .column(grant::Column::ClientId)
            .filter(grant::Column::RevokedAt.is_null())
            .into_query();
        let unused_documents = client::Entity::delete_many()
            .filter(client::Column::MetadataUrl.is_not_null())
            .filter(client::Column::Disabled.eq(false))
            .filter(client::Column::MetadataRefreshAt.lt(at - UNUSED_DOCUMENT_GRACE))
            .filter(client::Column::ClientId.not_in_subquery(consented))
            .filter(client::Column::ClientId.not_in_subquery(granted))
            .exec(&self.db)
            .await?
            .rows_affected;
        let client_ids = client::Entity::find().select_only().column(client::Column::ClientId).into_query();
        let orphaned = consent::Entity::delete_many()
            .filter(consent::Column::ClientId.not_in_subquery(client_ids))
            .exec(&self.db)
            .await?
            .rows_affected;
        Ok((unused_clients + unused_documents, revoked_consents + orphaned))
    }
}
