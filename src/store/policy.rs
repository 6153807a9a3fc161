//! Local group membership and the policy rules that let groups use upstreams.
use sea_orm::sea_query::OnConflict;
use sea_orm::{ActiveValue::Set, ColumnTrait, DbErr, EntityTrait, QueryFilter, QueryOrder};

use super::{Store, policy_rule, user_group};

/// The source of groups given here (not by an identity provider).
pub const LOCAL_GROUPS: &str = "local";

impl Store {
    /// Adds a person to a local group; `false` when they were in it already.
    pub async fn add_local_member(&self, user_id: &str, group: &str) -> Result<bool, DbErr> {
        let row = user_group::ActiveModel {
            user_id: Set(user_id.to_owned()),
            name: Set(group.to_owned()),
            source: Set(LOCAL_GROUPS.to_owned()),
        };
        let inserted = user_group::Entity::insert(row)
            .on_conflict(
                OnConflict::columns([user_group::Column::UserId, user_group::Column::Name, user_group::Column::Source])
                    .do_nothing()
                    .to_owned(),
            )
            .exec_without_returning(&self.db)
            .await?;
        Ok(inserted == 1)
    }

    /// Takes a person out of a local group; `false` when they were not in it.
    pub async fn remove_local_member(&self, user_id: &str, group: &str) -> Result<bool, DbErr> {
        let removed = user_group::Entity::delete_many()
            .filter(user_group::Column::UserId.eq(user_id))
            .filter(user_group::Column::Name.eq(group))
            .filter(user_group::Column::Source.eq(LOCAL_GROUPS))
            .exec(&self.db)
            .await?;
        Ok(removed.rows_affected == 1)
    }

    /// Every membership, by group then person.
    pub async fn all_memberships(&self) -> Result<Vec<user_group::Model>, DbErr> {
        user_group::Entity::find()
            .order_by_asc(user_group::Column::Name)
            .order_by_asc(user_group::Column::UserId)
            .all(&self.db)
            .await
    }

    /// Adds or replaces the rule of a group for an upstream.
    pub async fn save_policy_rule(&self, rule: policy_rule::Model) -> Result<(), DbErr> {
        policy_rule::Entity::insert(policy_rule::ActiveModel::from(rule))
            .on_conflict(
                OnConflict::columns([policy_rule::Column::GroupName, policy_rule::Column::Upstream])
                    .update_columns([policy_rule::Column::AllowTools, policy_rule::Column::DenyTools])
                    .to_owned(),
            )
            .exec_without_returning(&self.db)
            .await?;
        Ok(())
    }

    /// Makes the rules exactly `rules`, in one transaction; `true` when anything changed.
    pub async fn replace_policy_rules(&self, rules: Vec<policy_rule::Model>) -> Result<bool, DbErr> {
        let (_turn, txn) = self.begin_write().await?;
        let mut before = policy_rule::Entity::find().all(&txn).await?;
        let mut after = rules.clone();
        let key = |r: &policy_rule::Model| (r.group_name.clone(), r.upstream.clone());
        before.sort_by_key(key);
        after.sort_by_key(key);
        if before == after {
            return Ok(false);
        }
        policy_rule::Entity::delete_many().exec(&txn).await?;
        if !rules.is_empty() {
            policy_rule::Entity::insert_many(rules.into_iter().map(policy_rule::ActiveModel::from))
                .exec_without_returning(&txn)
                .await?;
        }
        txn.commit().await?;
        Ok(true)
    }

    pub async fn remove_policy_rule(&self, group: &str, upstream: &str) -> Result<bool, DbErr> {
        let removed = policy_rule::Entity::delete_many()
            .filter(policy_rule::Column::GroupName.eq(group))
            .filter(policy_rule::Column::Upstream.eq(upstream))
            .exec(&self.db)
            .await?;
        Ok(removed.rows_affected == 1)
    }

    pub async fn policy_rules(&self) -> Result<Vec<policy_rule::Model>, DbErr> {
        policy_rule::Entity::find()
            .order_by_asc(policy_rule::Column::Upstream)
            .order_by_asc(policy_rule::Column::GroupName)
            .all(&self.db)
            .await
    }
}
