use sea_orm::sea_query::{Expr, ExprTrait, IntoColumnRef, IntoCondition, Query};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseTransaction, DbErr, EntityTrait, QueryFilter, QuerySelect, QueryTrait,
};

use super::{Store, client, grant, refresh_token, used_assertion, user};
use crate::clock::now;

/// The `user_id` of a machine grant (RFC 6749 §4.4 client credentials): no person, the client acts for
/// itself. One live grant per client carries all its machine tokens, so revoking it ends them at once.
pub const MACHINE_GRANT_USER: &str = "";
/// The start of an enterprise grant's id (tokens from ID-JAG assertions; no consent row behind it).
pub const ENTERPRISE_GRANT_PREFIX: &str = "id-jag:";

/// Who the tokens of a live grant act for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GrantHolder {
    /// A person, by username.
    Person { username: String },
    /// The client itself (client credentials): nobody's data.
    Client,
}

impl GrantHolder {
    /// The person's username, if a person holds the grant.
    pub fn username(&self) -> Option<&str> {
        match self {
            GrantHolder::Person { username } => Some(username),
            GrantHolder::Client => None,
        }
    }
}

/// Postgres channel on which an instance that revoked grants or ended a session tells the others to stop
/// trusting what they remember.
pub const ENDINGS_CHANNEL: &str = "mcp_gateway_endings";

impl Store {
    pub async fn insert_grant(&self, model: grant::Model) -> Result<(), DbErr> {
        grant::Entity::insert(grant::ActiveModel::from(model)).exec_without_returning(&self.db).await?;
        Ok(())
    }

    /// Whether tokens of this grant may still be used: the grant is not revoked and its user not disabled.
    /// (Disabling or deleting a client revokes its grants, so the client needs no check here.)
    pub async fn grant_is_active(&self, grant_id: &str) -> Result<bool, DbErr> {
        Ok(self.active_grant_holder(grant_id).await?.is_some())
    }

    /// Who a grant whose tokens may still be used acts for (as [`Store::grant_is_active`]): the MCP guard
    /// checks the grant and learns who is calling at the same time. A person's grant takes one query; a
    /// machine grant is live while its client is enabled and the person who registered it (if any) too.
    pub async fn active_grant_holder(&self, grant_id: &str) -> Result<Option<GrantHolder>, DbErr> {
        if let Some(username) = self.active_grant_username(grant_id).await? {
            return Ok(Some(GrantHolder::Person { username }));
        }
        let machine = grant::Entity::find()
            .filter(grant::Column::GrantId.eq(grant_id))
            .filter(grant::Column::RevokedAt.is_null())
            .filter(grant::Column::UserId.eq(MACHINE_GRANT_USER))
            .one(&self.db)
            .await?;
        let Some(machine) = machine else { return Ok(None) };
        let holder = client::Entity::find_by_id(machine.client_id)
            .filter(client::Column::Disabled.eq(false))
            .one(&self.db)
            .await?;
        let Some(holder) = holder else { return Ok(None) };
        let owner_enabled = match holder.owner_user_id {
            None => true,
            Some(owner) => {
                user::Entity::find_by_id(owner).filter(user::Column::Disabled.eq(false)).one(&self.db).await?.is_some()
            }
        };
        Ok(owner_enabled.then_some(GrantHolder::Client))
    }

    /// The live machine grant of a client, made now if it has none: its id. Two racing first requests may
    /// both make one; both are the client's and [`Store::revoke_machine_access`] ends every one.
    pub async fn machine_grant(&self, client_id: &str, resource: &str, scope: &str) -> Result<String, DbErr> {
        let live = grant::Column::ClientId
            .eq(client_id)
            .and(grant::Column::UserId.eq(MACHINE_GRANT_USER))
            .and(grant::Column::Resource.eq(resource));
        let grant_id = uuid::Uuid::new_v4().to_string();
        self.live_or_new_grant(live, grant_id, MACHINE_GRANT_USER, client_id, resource, scope).await
    }

    /// The live enterprise grant (ID-JAG) of a person and client, made now if there is none: its id. Every
    /// token the client gets from that person's assertions hangs on it, so the table does not grow with each
    /// one, and revoking it (or the person's access to the client) ends them all.
    pub async fn enterprise_grant(
        &self,
        user_id: &str,
        client_id: &str,
        resource: &str,
        scope: &str,
    ) -> Result<String, DbErr> {
        let live = grant::Column::UserId
            .eq(user_id)
            .and(grant::Column::ClientId.eq(client_id))
            .and(grant::Column::Resource.eq(resource))
            .and(grant::Column::GrantId.starts_with(ENTERPRISE_GRANT_PREFIX));
        let grant_id = format!("{ENTERPRISE_GRANT_PREFIX}{}", uuid::Uuid::new_v4());
        self.live_or_new_grant(live, grant_id, user_id, client_id, resource, scope).await
    }

    /// The id of a live (unrevoked) grant matching `live`, or of a new one stored now with `grant_id`.
    async fn live_or_new_grant(
        &self,
        live: impl IntoCondition,
        grant_id: String,
        user_id: &str,
        client_id: &str,
        resource: &str,
        scope: &str,
    ) -> Result<String, DbErr> {
        let found = grant::Entity::find().filter(live).filter(grant::Column::RevokedAt.is_null()).one(&self.db).await?;
        if let Some(found) = found {
            return Ok(found.grant_id);
        }
        self.insert_grant(grant::Model {
            grant_id: grant_id.clone(),
            user_id: user_id.to_owned(),
            client_id: client_id.to_owned(),
            resource: resource.to_owned(),
            scope: scope.to_owned(),
            created_at: now(),
            revoked_at: None,
        })
        .await?;
        Ok(grant_id)
    }

    /// Ends a client's machine access: its machine grants are revoked (every token dies at the guard, on
    /// every instance) and the client credentials grant leaves its registration, so its secret cannot simply
    /// get a new token. Returns whether the client was registered for that grant or held a live machine grant.
    /// `grant_types` and `metadata` are the registration without that grant (so no later edit of the stored
    /// metadata brings it back).
    pub async fn revoke_machine_access(
        &self,
        client_id: &str,
        grant_types: &str,
        metadata: &str,
    ) -> Result<bool, DbErr> {
        let (_turn, txn) = self.begin_write().await?;
        let live = grant::Entity::update_many()
            .col_expr(grant::Column::RevokedAt, Expr::value(now()))
            .filter(grant::Column::ClientId.eq(client_id))
            .filter(grant::Column::UserId.eq(MACHINE_GRANT_USER))
            .filter(grant::Column::RevokedAt.is_null())
            .exec(&txn)
            .await?;
        let registered = client::Entity::update_many()
            .col_expr(client::Column::GrantTypes, Expr::value(grant_types))
            .col_expr(client::Column::Metadata, Expr::value(metadata))
            .filter(client::Column::ClientId.eq(client_id))
            .filter(client::Column::GrantTypes.ne(grant_types))
            .exec(&txn)
            .await?;
        self.commit_ending(txn).await?;
        Ok(live.rows_affected > 0 || registered.rows_affected > 0)
    }

    /// Records a client assertion's `jti` (as `jti_hash`) until it expires: `true` the first time, `false` when
    /// it was seen already (a replay), on any instance. One INSERT that only one request can win.
    pub async fn use_assertion(&self, jti_hash: &str, expires_at: crate::clock::UnixTime) -> Result<bool, DbErr> {
        use sea_orm::sea_query::OnConflict;
        let row =
            used_assertion::ActiveModel::from(used_assertion::Model { jti_hash: jti_hash.to_owned(), expires_at });
        let inserted = used_assertion::Entity::insert(row)
            .on_conflict(OnConflict::column(used_assertion::Column::JtiHash).do_nothing().to_owned())
            .exec_without_returning(&self.db)
            .await?;
        Ok(inserted == 1)
    }

    /// The username behind a person's grant whose tokens may still be used, in one query.
    async fn active_grant_username(&self, grant_id: &str) -> Result<Option<String>, DbErr> {
        let live_grant_user = grant::Entity::find()
            .select_only()
            .column(grant::Column::UserId)
            .filter(grant::Column::GrantId.eq(grant_id))
            .filter(grant::Column::RevokedAt.is_null())
            .into_query();
        user::Entity::find()
            .select_only()
            .column(user::Column::Username)
            .filter(user::Column::Disabled.eq(false))
            .filter(user::Column::Id.in_subquery(live_grant_user))
            .into_tuple()
            .one(&self.db)
            .await
    }

    /// Commits a transaction that revoked grants or ended a session (or may have). On Postgres the other
    /// instances are told in the same transaction, so they hear of it exactly when it commits; this
    /// instance stops trusting what it remembers before returning.
    pub(super) async fn commit_ending(&self, txn: DatabaseTransaction) -> Result<(), DbErr> {
        if self.is_postgres() {
            Store::notify_in(&txn, ENDINGS_CHANNEL, "").await?;
        }
        let committed = txn.commit().await;
        // Also when the commit seems to fail: it may have happened with only its answer lost.
        self.ended();
        committed
    }

    /// Revokes a grant and every refresh token issued under it (RFC 9700 §4.14.2 on reuse, RFC 7009 on
    /// revocation, RFC 6749 §4.1.2 on code replay); its access tokens fail at the guard from now on.
    /// Returns whether the grant was live.
    pub async fn revoke_grant(&self, grant_id: &str) -> Result<bool, DbErr> {
        let at = now();
        let (_turn, txn) = self.begin_write().await?;
        let revoked = grant::Entity::update_many()
            .col_expr(grant::Column::RevokedAt, Expr::value(at))
            .filter(grant::Column::GrantId.eq(grant_id))
            .filter(grant::Column::RevokedAt.is_null())
            .exec(&txn)
            .await?;
        refresh_token::Entity::update_many()
            .col_expr(refresh_token::Column::RevokedAt, Expr::value(at))
            .filter(refresh_token::Column::FamilyId.eq(grant_id))
            .filter(refresh_token::Column::RevokedAt.is_null())
            .exec(&txn)
            .await?;
        self.commit_ending(txn).await?;
        Ok(revoked.rows_affected == 1)
    }

    /// Revokes every live grant matching `condition` and the refresh tokens issued under them.
    pub(super) async fn revoke_grants_where(
        txn: &impl ConnectionTrait,
        condition: impl IntoCondition + Clone,
    ) -> Result<(), DbErr> {
        let at = now();
        let families =
            grant::Entity::find().select_only().column(grant::Column::GrantId).filter(condition.clone()).into_query();
        refresh_token::Entity::update_many()
            .col_expr(refresh_token::Column::RevokedAt, Expr::value(at))
            .filter(refresh_token::Column::FamilyId.in_subquery(families))
            .filter(refresh_token::Column::RevokedAt.is_null())
            .exec(txn)
            .await?;
        grant::Entity::update_many()
            .col_expr(grant::Column::RevokedAt, Expr::value(at))
            .filter(condition)
            .filter(grant::Column::RevokedAt.is_null())
            .exec(txn)
            .await?;
        Ok(())
    }

    /// `EXISTS` a grant with the id held in `grant_id` (a column of the outer statement) that is not revoked
    /// and whose user is enabled. Correlated on purpose: an `IN (SELECT …)` over every live grant is built in
    /// full for each statement on SQLite, so its cost would grow with the number of grants.
    pub(super) fn live_grant(grant_id: impl IntoColumnRef) -> Expr {
        Expr::exists(
            Query::select()
                .expr(Expr::val(1))
                .from(grant::Entity)
                .inner_join(
                    user::Entity,
                    Expr::col((user::Entity, user::Column::Id)).equals((grant::Entity, grant::Column::UserId)),
                )
                .and_where(Expr::col((grant::Entity, grant::Column::GrantId)).equals(grant_id))
                .and_where(Expr::col((grant::Entity, grant::Column::RevokedAt)).is_null())
                .and_where(Expr::col((user::Entity, user::Column::Disabled)).eq(false))
                .to_owned(),
        )
    }
}
