//! People's own accounts at OAuth-protected upstreams: the gateway's registration at each upstream, the
//! authorization flows under way, each person's sealed tokens (refreshed by one instance at a time), and
//! the last list of what such an upstream offers.
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict};
use sea_orm::{ActiveValue::Set, ColumnTrait, Condition, DbErr, EntityTrait, QueryFilter, QueryOrder};

use super::{Store, upstream_account, upstream_client, upstream_flow, upstream_offer};
use crate::clock::{UnixTime, now};

impl Store {
    pub async fn upstream_client(&self, upstream: &str) -> Result<Option<upstream_client::Model>, DbErr> {
        upstream_client::Entity::find_by_id(upstream).one(&self.db).await
    }

    /// Keeps a registration unless another instance kept one first; the one kept is returned.
    pub async fn keep_upstream_client(&self, model: upstream_client::Model) -> Result<upstream_client::Model, DbErr> {
        let upstream = model.upstream.clone();
        upstream_client::Entity::insert(upstream_client::ActiveModel::from(model))
            .on_conflict(OnConflict::column(upstream_client::Column::Upstream).do_nothing().to_owned())
            .exec_without_returning(&self.db)
            .await?;
        self.upstream_client(&upstream)
            .await?
            .ok_or_else(|| DbErr::RecordNotFound(format!("the registration at upstream {upstream}")))
    }

    /// Forgets a registration (made for another URL); the next flow registers again.
    pub async fn forget_upstream_client(&self, upstream: &str, url: &str) -> Result<(), DbErr> {
        upstream_client::Entity::delete_many()
            .filter(upstream_client::Column::Upstream.eq(upstream))
            .filter(upstream_client::Column::Url.eq(url))
            .exec(&self.db)
            .await?;
        Ok(())
    }

    pub async fn save_upstream_flow(&self, model: upstream_flow::Model) -> Result<(), DbErr> {
        upstream_flow::Entity::insert(upstream_flow::ActiveModel::from(model)).exec_without_returning(&self.db).await?;
        Ok(())
    }

    /// The flow a `state` names, if it is `user_id`'s.
    pub async fn upstream_flow_of(
        &self,
        state_hash: &str,
        user_id: &str,
    ) -> Result<Option<upstream_flow::Model>, DbErr> {
        Ok(upstream_flow::Entity::find_by_id(state_hash).one(&self.db).await?.filter(|f| f.user_id == user_id))
    }

    /// Takes `user_id`'s flow by its `state`, once: of two requests with the same `state`, one gets it. Another
    /// person's flow is left alone.
    pub async fn take_upstream_flow(
        &self,
        state_hash: &str,
        user_id: &str,
    ) -> Result<Option<upstream_flow::Model>, DbErr> {
        let Some(flow) = self.upstream_flow_of(state_hash, user_id).await? else {
            return Ok(None);
        };
        let taken = upstream_flow::Entity::delete_many()
            .filter(upstream_flow::Column::StateHash.eq(state_hash))
            .exec(&self.db)
            .await?;
        Ok((taken.rows_affected == 1 && flow.expires_at > now()).then_some(flow))
    }

    pub async fn upstream_account(
        &self,
        user_id: &str,
        upstream: &str,
    ) -> Result<Option<upstream_account::Model>, DbErr> {
        upstream_account::Entity::find_by_id((user_id.to_owned(), upstream.to_owned())).one(&self.db).await
    }

    pub async fn all_upstream_accounts(&self) -> Result<Vec<upstream_account::Model>, DbErr> {
        upstream_account::Entity::find().all(&self.db).await
    }

    pub async fn upstream_clients(&self) -> Result<Vec<upstream_client::Model>, DbErr> {
        upstream_client::Entity::find().all(&self.db).await
    }

    /// Someone with credentials at `upstream` (with whose client what it offers can be listed).
    pub async fn someone_at_upstream(&self, upstream: &str) -> Result<Option<String>, DbErr> {
        Ok(upstream_account::Entity::find()
            .filter(upstream_account::Column::Upstream.eq(upstream))
            .filter(upstream_account::Column::Problem.is_null())
            .one(&self.db)
            .await?
            .map(|a| a.user_id))
    }

    /// A person's accounts, by upstream.
    pub async fn upstream_accounts_of(&self, user_id: &str) -> Result<Vec<upstream_account::Model>, DbErr> {
        upstream_account::Entity::find()
            .filter(upstream_account::Column::UserId.eq(user_id))
            .order_by_asc(upstream_account::Column::Upstream)
            .all(&self.db)
            .await
    }

    /// Keeps a person's new tokens (a new connection, or a connection made again), replacing what was there.
    pub async fn save_upstream_account(
        &self,
        user_id: &str,
        upstream: &str,
        sealed: String,
        expires_at: Option<UnixTime>,
    ) -> Result<(), DbErr> {
        let at = now();
        let row = upstream_account::Model {
            user_id: user_id.to_owned(),
            upstream: upstream.to_owned(),
            credentials_sealed: sealed,
            expires_at,
            // A connection made again must not repeat a version an older one had (clients made with that
            // would be taken for current).
            version: chrono::Utc::now().timestamp_micros(),
            refreshing_until: None,
            refresh_claim: None,
            problem: None,
            created_at: at,
            updated_at: at,
        };
        upstream_account::Entity::insert(upstream_account::ActiveModel::from(row))
            .on_conflict(
                OnConflict::columns([upstream_account::Column::UserId, upstream_account::Column::Upstream])
                    .update_columns([
                        upstream_account::Column::CredentialsSealed,
                        upstream_account::Column::ExpiresAt,
                        upstream_account::Column::RefreshingUntil,
                        upstream_account::Column::RefreshClaim,
                        upstream_account::Column::Problem,
                        upstream_account::Column::UpdatedAt,
                    ])
                    .value(
                        upstream_account::Column::Version,
                        Expr::col((upstream_account::Entity, upstream_account::Column::Version)).add(1),
                    )
                    .to_owned(),
            )
            .exec_without_returning(&self.db)
            .await?;
        Ok(())
    }

    /// Claims the refresh of the tokens at `version` until `until` under `claim` (random): one statement, so
    /// of every instance that tries, one wins (`true`); the others wait for the version to change.
    pub async fn claim_upstream_refresh(
        &self,
        user_id: &str,
        upstream: &str,
        version: i64,
        until: UnixTime,
        claim: &str,
    ) -> Result<bool, DbErr> {
        let claimed = upstream_account::Entity::update_many()
            .set(upstream_account::ActiveModel {
                refreshing_until: Set(Some(until)),
                refresh_claim: Set(Some(claim.to_owned())),
                ..Default::default()
            })
            .filter(upstream_account::Column::UserId.eq(user_id))
            .filter(upstream_account::Column::Upstream.eq(upstream))
            .filter(upstream_account::Column::Version.eq(version))
            .filter(upstream_account::Column::Problem.is_null())
            .filter(
                Condition::any()
                    .add(upstream_account::Column::RefreshingUntil.is_null())
                    .add(upstream_account::Column::RefreshingUntil.lt(now())),
            )
            .exec(&self.db)
            .await?;
        Ok(claimed.rows_affected == 1)
    }

    /// Saves refreshed tokens over `version`, if `claim` still holds the refresh; `false` when the account
    /// changed or the claim was taken over meanwhile.
    pub async fn store_upstream_refresh(
        &self,
        user_id: &str,
        upstream: &str,
        version: i64,
        claim: &str,
        sealed: String,
        expires_at: Option<UnixTime>,
    ) -> Result<bool, DbErr> {
        let saved = upstream_account::Entity::update_many()
            .set(upstream_account::ActiveModel {
                credentials_sealed: Set(sealed),
                expires_at: Set(expires_at),
                refreshing_until: Set(None),
                refresh_claim: Set(None),
                problem: Set(None),
                updated_at: Set(now()),
                ..Default::default()
            })
            .col_expr(
                upstream_account::Column::Version,
                Expr::col((upstream_account::Entity, upstream_account::Column::Version)).add(1),
            )
            .filter(upstream_account::Column::UserId.eq(user_id))
            .filter(upstream_account::Column::Upstream.eq(upstream))
            .filter(upstream_account::Column::Version.eq(version))
            .filter(upstream_account::Column::RefreshClaim.eq(claim))
            .exec(&self.db)
            .await?;
        Ok(saved.rows_affected == 1)
    }

    /// Ends a refresh that did not get new tokens: `problem` set when the upstream refused the refresh token
    /// (the person connects again), else the claim released so the next call tries again.
    pub async fn end_upstream_refresh(
        &self,
        user_id: &str,
        upstream: &str,
        version: i64,
        claim: &str,
        problem: Option<&str>,
    ) -> Result<(), DbErr> {
        upstream_account::Entity::update_many()
            .set(upstream_account::ActiveModel {
                refreshing_until: Set(None),
                refresh_claim: Set(None),
                problem: Set(problem.map(str::to_owned)),
                updated_at: Set(now()),
                ..Default::default()
            })
            .filter(upstream_account::Column::UserId.eq(user_id))
            .filter(upstream_account::Column::Upstream.eq(upstream))
            .filter(upstream_account::Column::Version.eq(version))
            .filter(upstream_account::Column::RefreshClaim.eq(claim))
            .exec(&self.db)
            .await?;
        Ok(())
    }

    /// Deletes a person's account at an upstream, returning it (for revocation there).
    pub async fn delete_upstream_account(
        &self,
        user_id: &str,
        upstream: &str,
    ) -> Result<Option<upstream_account::Model>, DbErr> {
        let Some(account) = self.upstream_account(user_id, upstream).await? else {
            return Ok(None);
        };
        let deleted = upstream_account::Entity::delete_many()
            .filter(upstream_account::Column::UserId.eq(user_id))
            .filter(upstream_account::Column::Upstream.eq(upstream))
            .exec(&self.db)
            .await?;
        Ok((deleted.rows_affected == 1).then_some(account))
    }

    pub async fn upstream_offer(&self, upstream: &str) -> Result<Option<upstream_offer::Model>, DbErr> {
        upstream_offer::Entity::find_by_id(upstream).one(&self.db).await
    }

    pub async fn save_upstream_offer(&self, upstream: &str, offer: String) -> Result<(), DbErr> {
        let row = upstream_offer::Model { upstream: upstream.to_owned(), offer, updated_at: now() };
        upstream_offer::Entity::insert(upstream_offer::ActiveModel::from(row))
            .on_conflict(
                OnConflict::column(upstream_offer::Column::Upstream)
                    .update_columns([upstream_offer::Column::Offer, upstream_offer::Column::UpdatedAt])
                    .to_owned(),
            )
            .exec_without_returning(&self.db)
            .await?;
        Ok(())
    }
}
