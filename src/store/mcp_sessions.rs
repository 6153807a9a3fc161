use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{ColumnTrait, DbErr, EntityTrait, PaginatorTrait, QueryFilter};

use super::{Store, mcp_session};
use std::time::Duration;

use crate::clock::{UnixTime, now};

impl Store {
    /// Records who owns a session rmcp just created (or whose state it stored first).
    pub async fn bind_mcp_session(&self, session_id: &str, subject: &str, client_id: &str) -> Result<(), DbErr> {
        let at = now();
        let model = mcp_session::Model {
            session_id: session_id.to_owned(),
            subject: Some(subject.to_owned()),
            client_id: Some(client_id.to_owned()),
            state: None,
            created_at: at,
            last_seen: at,
        };
        mcp_session::Entity::insert(mcp_session::ActiveModel::from(model))
            .on_conflict(
                OnConflict::column(mcp_session::Column::SessionId)
                    .update_columns([mcp_session::Column::Subject, mcp_session::Column::ClientId])
                    .to_owned(),
            )
            .exec_without_returning(&self.db)
            .await?;
        Ok(())
    }

    /// Stores rmcp's session state, keeping the owner recorded by [`Store::bind_mcp_session`].
    pub async fn store_mcp_session_state(&self, session_id: &str, state: &str) -> Result<(), DbErr> {
        let at = now();
        let model = mcp_session::Model {
            session_id: session_id.to_owned(),
            subject: None,
            client_id: None,
            state: Some(state.to_owned()),
            created_at: at,
            last_seen: at,
        };
        mcp_session::Entity::insert(mcp_session::ActiveModel::from(model))
            .on_conflict(
                OnConflict::column(mcp_session::Column::SessionId).update_column(mcp_session::Column::State).to_owned(),
            )
            .exec_without_returning(&self.db)
            .await?;
        Ok(())
    }

    /// A session that was used within `idle`.
    pub async fn find_live_mcp_session(
        &self,
        session_id: &str,
        idle: Duration,
    ) -> Result<Option<mcp_session::Model>, DbErr> {
        mcp_session::Entity::find_by_id(session_id)
            .filter(mcp_session::Column::LastSeen.gt(now() - idle))
            .one(&self.db)
            .await
    }

    /// How many sessions of `subject` were used within `idle` (the per-person cap on sessions).
    pub async fn count_live_mcp_sessions(&self, subject: &str, idle: Duration) -> Result<u64, DbErr> {
        mcp_session::Entity::find()
            .filter(mcp_session::Column::Subject.eq(subject))
            .filter(mcp_session::Column::LastSeen.gt(now() - idle))
            .count(&self.db)
            .await
    }

    /// Marks a session as used, writing at most once every `every` per session; returns the time written.
    pub async fn touch_mcp_session(&self, session_id: &str, every: Duration) -> Result<UnixTime, DbErr> {
        let at = now();
        mcp_session::Entity::update_many()
            .col_expr(mcp_session::Column::LastSeen, Expr::value(at))
            .filter(mcp_session::Column::SessionId.eq(session_id))
            .filter(mcp_session::Column::LastSeen.lt(at - every))
            .exec(&self.db)
            .await?;
        Ok(at)
    }

    /// Ends a session on every instance: those that trusted it hear of it (see `Store::commit_ending`).
    pub async fn delete_mcp_session(&self, session_id: &str) -> Result<(), DbErr> {
        let (_turn, txn) = self.begin_write().await?;
        mcp_session::Entity::delete_by_id(session_id).exec(&txn).await?;
        self.commit_ending(txn).await
    }
}
