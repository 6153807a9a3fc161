//! The gateway's upstreams: their configuration (shared by every instance), per-tool overrides, and what
//! each instance reports about its own connections.
use sea_orm::sea_query::OnConflict;
use sea_orm::{ColumnTrait, DatabaseTransaction, DbErr, EntityTrait, QueryFilter, QueryOrder};

use super::{Store, upstream, upstream_status, upstream_tool};
use crate::clock::{UnixTime, now};

/// Postgres channel announcing that the upstream configuration changed.
pub const UPSTREAMS_CHANNEL: &str = "mcp_gateway_upstreams";

/// One upstream as stored, with its tool overrides.
#[derive(Debug, Clone)]
pub struct UpstreamRow {
    pub upstream: upstream::Model,
    pub tools: Vec<upstream_tool::Model>,
}

impl Store {
    /// Every configured upstream, by name.
    pub async fn list_upstreams(&self) -> Result<Vec<UpstreamRow>, DbErr> {
        let upstreams = upstream::Entity::find().order_by_asc(upstream::Column::Name).all(&self.db).await?;
        let mut tools = upstream_tool::Entity::find()
            .order_by_asc(upstream_tool::Column::Upstream)
            .order_by_asc(upstream_tool::Column::Tool)
            .all(&self.db)
            .await?;
        Ok(upstreams
            .into_iter()
            .map(|upstream| {
                let (mine, rest) = tools.drain(..).partition(|t| t.upstream == upstream.name);
                tools = rest;
                UpstreamRow { upstream, tools: mine }
            })
            .collect())
    }

    /// Creates or replaces upstreams (with their tool overrides), and with `keep_only` removes every upstream
    /// not named there, all in one transaction; announced to every instance. `Ok(true)` when anything changed.
    pub async fn save_upstreams(&self, rows: Vec<UpstreamRow>, keep_only: Option<&[String]>) -> Result<bool, DbErr> {
        let (_turn, txn) = self.begin_write().await?;
        let existing = upstream::Entity::find().all(&txn).await?;
        let existing_tools = upstream_tool::Entity::find().all(&txn).await?;
        let mut changed = false;
        for row in &rows {
            let before = existing.iter().find(|e| e.name == row.upstream.name);
            let before_tools: Vec<_> = existing_tools.iter().filter(|t| t.upstream == row.upstream.name).collect();
            let same = before.is_some_and(|b| same_settings(b, &row.upstream))
                && before_tools.len() == row.tools.len()
                && row.tools.iter().all(|t| before_tools.contains(&t));
            if same {
                continue;
            }
            changed = true;
            // People's credentials were given for where the upstream was: a new URL or program gets none of them.
            if let Some(before) = before
                && (before.url != row.upstream.url
                    || before.command != row.upstream.command
                    || before.auth != row.upstream.auth)
            {
                forget_people(&txn, std::slice::from_ref(&row.upstream.name)).await?;
            }
            let mut model = row.upstream.clone();
            model.created_at = before.map_or(model.created_at, |b| b.created_at);
            model.updated_at = now();
            upstream::Entity::insert(upstream::ActiveModel::from(model))
                .on_conflict(
                    OnConflict::column(upstream::Column::Name)
                        .update_columns([
                            upstream::Column::Kind,
                            upstream::Column::Command,
                            upstream::Column::Args,
                            upstream::Column::Env,
                            upstream::Column::Cwd,
                            upstream::Column::Url,
                            upstream::Column::Headers,
                            upstream::Column::Prefix,
                            upstream::Column::Scope,
                            upstream::Column::TimeoutSecs,
                            upstream::Column::Enabled,
                            upstream::Column::UpdatedAt,
                            upstream::Column::Auth,
                            upstream::Column::Oauth,
                            upstream::Column::EnvPerUser,
                        ])
                        .to_owned(),
                )
                .exec_without_returning(&txn)
                .await?;
            upstream_tool::Entity::delete_many()
                .filter(upstream_tool::Column::Upstream.eq(&row.upstream.name))
                .exec(&txn)
                .await?;
            if !row.tools.is_empty() {
                upstream_tool::Entity::insert_many(row.tools.iter().cloned().map(upstream_tool::ActiveModel::from))
                    .exec_without_returning(&txn)
                    .await?;
            }
        }
        if let Some(keep) = keep_only {
            let gone: Vec<String> =
                existing.iter().filter(|e| !keep.contains(&e.name)).map(|e| e.name.clone()).collect();
            if !gone.is_empty() {
                changed = true;
                delete_upstreams(&txn, &gone).await?;
            }
        }
        if changed && self.is_postgres() {
            Store::notify_in(&txn, UPSTREAMS_CHANNEL, "").await?;
        }
        txn.commit().await?;
        Ok(changed)
    }

    /// Removes an upstream and its overrides; `Ok(false)` when there was none by that name.
    pub async fn remove_upstream(&self, name: &str) -> Result<bool, DbErr> {
        let (_turn, txn) = self.begin_write().await?;
        let removed = delete_upstreams(&txn, &[name.to_owned()]).await?;
        if removed && self.is_postgres() {
            Store::notify_in(&txn, UPSTREAMS_CHANNEL, "").await?;
        }
        txn.commit().await?;
        Ok(removed)
    }

    /// Enables or disables an upstream; `Ok(false)` when there is none by that name.
    pub async fn set_upstream_enabled(&self, name: &str, enabled: bool) -> Result<bool, DbErr> {
        let (_turn, txn) = self.begin_write().await?;
        let result = upstream::Entity::update_many()
            .col_expr(upstream::Column::Enabled, enabled.into())
            .col_expr(upstream::Column::UpdatedAt, now().into())
            .filter(upstream::Column::Name.eq(name))
            .exec(&txn)
            .await?;
        if result.rows_affected > 0 && self.is_postgres() {
            Store::notify_in(&txn, UPSTREAMS_CHANNEL, "").await?;
        }
        txn.commit().await?;
        Ok(result.rows_affected > 0)
    }

    /// What this instance reports about its connections, replacing its earlier report.
    pub async fn report_upstream_status(&self, instance: &str, rows: Vec<upstream_status::Model>) -> Result<(), DbErr> {
        let (_turn, txn) = self.begin_write().await?;
        upstream_status::Entity::delete_many()
            .filter(upstream_status::Column::Instance.eq(instance))
            .exec(&txn)
            .await?;
        if !rows.is_empty() {
            upstream_status::Entity::insert_many(rows.into_iter().map(upstream_status::ActiveModel::from))
                .exec_without_returning(&txn)
                .await?;
        }
        txn.commit().await
    }

    /// The reports of instances heard from since `since`, by upstream and instance.
    pub async fn upstream_statuses(&self, since: UnixTime) -> Result<Vec<upstream_status::Model>, DbErr> {
        upstream_status::Entity::find()
            .filter(upstream_status::Column::UpdatedAt.gte(since))
            .order_by_asc(upstream_status::Column::Upstream)
            .order_by_asc(upstream_status::Column::Instance)
            .all(&self.db)
            .await
    }

    /// Forgets an instance's reports (it is shutting down).
    pub async fn clear_upstream_status(&self, instance: &str) -> Result<(), DbErr> {
        upstream_status::Entity::delete_many()
            .filter(upstream_status::Column::Instance.eq(instance))
            .exec(&self.db)
            .await?;
        Ok(())
    }
}

fn same_settings(a: &upstream::Model, b: &upstream::Model) -> bool {
    (&a.kind, &a.command, &a.args, &a.env, &a.cwd, &a.url, &a.headers, &a.prefix, &a.scope, &a.auth, &a.oauth)
        == (&b.kind, &b.command, &b.args, &b.env, &b.cwd, &b.url, &b.headers, &b.prefix, &b.scope, &b.auth, &b.oauth)
        && a.env_per_user == b.env_per_user
        && (a.timeout_secs, a.enabled) == (b.timeout_secs, b.enabled)
}

/// Forgets people's accounts and values at these upstreams, the gateway's registration there, the sign-ins
/// under way and what they offered.
async fn forget_people(txn: &DatabaseTransaction, names: &[String]) -> Result<(), DbErr> {
    use super::{upstream_account, upstream_client, upstream_flow, upstream_offer};
    upstream_account::Entity::delete_many().filter(upstream_account::Column::Upstream.is_in(names)).exec(txn).await?;
    upstream_flow::Entity::delete_many().filter(upstream_flow::Column::Upstream.is_in(names)).exec(txn).await?;
    upstream_client::Entity::delete_many().filter(upstream_client::Column::Upstream.is_in(names)).exec(txn).await?;
    upstream_offer::Entity::delete_many().filter(upstream_offer::Column::Upstream.is_in(names)).exec(txn).await?;
    Ok(())
}

async fn delete_upstreams(txn: &DatabaseTransaction, names: &[String]) -> Result<bool, DbErr> {
    // People's accounts there go with it: added again, it is connected again.
    forget_people(txn, names).await?;
    upstream_tool::Entity::delete_many().filter(upstream_tool::Column::Upstream.is_in(names)).exec(txn).await?;
    let removed = upstream::Entity::delete_many().filter(upstream::Column::Name.is_in(names)).exec(txn).await?;
    Ok(removed.rows_affected > 0)
}
