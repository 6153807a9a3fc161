use sea_orm::sea_query::OnConflict;
use sea_orm::{ActiveValue::Set, ColumnTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect, SqlErr};

use super::{Store, identity, identity_provider, user, user_group};
use crate::clock::now;

impl Store {
    /// Adds a provider; `Ok(false)` when its name or issuer is taken.
    pub async fn insert_identity_provider(&self, model: identity_provider::Model) -> Result<bool, DbErr> {
        let row = identity_provider::ActiveModel::from(model);
        match identity_provider::Entity::insert(row).exec_without_returning(&self.db).await {
            Ok(_) => Ok(true),
            Err(e) if matches!(e.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => Ok(false),
            Err(e) => Err(e),
        }
    }

    pub async fn list_identity_providers(&self) -> Result<Vec<identity_provider::Model>, DbErr> {
        identity_provider::Entity::find().order_by_asc(identity_provider::Column::Name).all(&self.db).await
    }

    /// Removes a provider (the identities it vouched for stay, unusable until it is added again).
    pub async fn remove_identity_provider(&self, name: &str) -> Result<bool, DbErr> {
        Ok(identity_provider::Entity::delete_by_id(name).exec(&self.db).await?.rows_affected == 1)
    }

    pub async fn set_identity_provider_disabled(&self, name: &str, disabled: bool) -> Result<bool, DbErr> {
        let updated = identity_provider::Entity::update_many()
            .set(identity_provider::ActiveModel { disabled: Set(disabled), ..Default::default() })
            .filter(identity_provider::Column::Name.eq(name))
            .exec(&self.db)
            .await?;
        Ok(updated.rows_affected == 1)
    }

    /// The enabled provider people sign in through by this name (one with our client id there).
    pub async fn sign_in_provider(&self, name: &str) -> Result<Option<identity_provider::Model>, DbErr> {
        Ok(identity_provider::Entity::find_by_id(name)
            .one(&self.db)
            .await?
            .filter(|p| !p.disabled && p.client_id.is_some()))
    }

    /// Replaces what one source says of a person's groups.
    pub async fn set_user_groups(&self, user_id: &str, source: &str, names: &[String]) -> Result<(), DbErr> {
        let (_turn, txn) = self.begin_write().await?;
        user_group::Entity::delete_many()
            .filter(user_group::Column::UserId.eq(user_id))
            .filter(user_group::Column::Source.eq(source))
            .exec(&txn)
            .await?;
        if !names.is_empty() {
            let rows = names.iter().map(|name| user_group::ActiveModel {
                user_id: Set(user_id.to_owned()),
                name: Set(name.clone()),
                source: Set(source.to_owned()),
            });
            user_group::Entity::insert_many(rows).exec_without_returning(&txn).await?;
        }
        txn.commit().await
    }

    /// A person's groups, by name (from every source).
    pub async fn user_groups(&self, user_id: &str) -> Result<Vec<user_group::Model>, DbErr> {
        user_group::Entity::find()
            .filter(user_group::Column::UserId.eq(user_id))
            .order_by_asc(user_group::Column::Name)
            .all(&self.db)
            .await
    }

    /// The enabled provider whose tokens carry this `iss`.
    pub async fn enabled_identity_provider(&self, issuer: &str) -> Result<Option<identity_provider::Model>, DbErr> {
        identity_provider::Entity::find()
            .filter(identity_provider::Column::Issuer.eq(issuer))
            .filter(identity_provider::Column::Disabled.eq(false))
            .one(&self.db)
            .await
    }

    /// The account a provider's `iss` + `sub` is linked to.
    pub async fn find_identity(&self, issuer: &str, subject: &str) -> Result<Option<identity::Model>, DbErr> {
        identity::Entity::find_by_id((issuer.to_owned(), subject.to_owned())).one(&self.db).await
    }

    /// The identities linked to an account.
    pub async fn identities_of(&self, user_id: &str) -> Result<Vec<identity::Model>, DbErr> {
        identity::Entity::find()
            .filter(identity::Column::UserId.eq(user_id))
            .order_by_asc(identity::Column::CreatedAt)
            .all(&self.db)
            .await
    }

    /// Links a provider's `iss` + `sub` to an account, unless it is linked already; returns the account it is
    /// linked to now (another one's means it was not linked here).
    pub async fn link_identity(
        &self,
        issuer: &str,
        subject: &str,
        user_id: &str,
        email: Option<&str>,
    ) -> Result<String, DbErr> {
        let link = identity::Model {
            issuer: issuer.to_owned(),
            subject: subject.to_owned(),
            user_id: user_id.to_owned(),
            email: email.map(str::to_owned),
            created_at: now(),
        };
        let inserted = identity::Entity::insert(identity::ActiveModel::from(link))
            .on_conflict(
                OnConflict::columns([identity::Column::Issuer, identity::Column::Subject]).do_nothing().to_owned(),
            )
            .exec_without_returning(&self.db)
            .await?;
        if inserted == 1 {
            return Ok(user_id.to_owned());
        }
        let existing = self.find_identity(issuer, subject).await?.ok_or(DbErr::RecordNotFound("identity".into()))?;
        Ok(existing.user_id)
    }

    /// Unlinks one of an account's identities only while the account keeps another way
    /// to sign in (a password, or another identity): nobody locks themselves out. Returns whether it went.
    pub async fn unlink_identity(&self, user_id: &str, issuer: &str) -> Result<bool, DbErr> {
        use sea_orm::sea_query::{Expr, ExprTrait, Query};
        let others = Query::select()
            .expr(Expr::val(1))
            .from(identity::Entity)
            .and_where(Expr::col((identity::Entity, identity::Column::UserId)).eq(user_id))
            .and_where(Expr::col((identity::Entity, identity::Column::Issuer)).ne(issuer))
            .to_owned();
        let with_password = Query::select()
            .expr(Expr::val(1))
            .from(user::Entity)
            .and_where(Expr::col((user::Entity, user::Column::Id)).eq(user_id))
            .and_where(Expr::col((user::Entity, user::Column::PasswordHash)).ne(""))
            .to_owned();
        // Two unlinks of the same account at once take turns on its row (Postgres: a row lock; SQLite: the
        // one write lock), so the second sees what the first left and never removes the last way in.
        let (_turn, txn) = self.begin_write().await?;
        if user::Entity::find_by_id(user_id).lock_exclusive().one(&txn).await?.is_none() {
            return Ok(false);
        }
        let removed = identity::Entity::delete_many()
            .filter(identity::Column::UserId.eq(user_id))
            .filter(identity::Column::Issuer.eq(issuer))
            .filter(Expr::exists(others).or(Expr::exists(with_password)))
            .exec(&txn)
            .await?;
        txn.commit().await?;
        Ok(removed.rows_affected > 0)
    }

    /// Makes an account for a person a provider vouches for and links it, in one transaction. The username is
    /// `wanted`, or `wanted-N` when taken. When a racing request linked the same identity first, its account is
    /// returned and nothing new is kept.
    pub async fn create_user_for_identity(
        &self,
        issuer: &str,
        subject: &str,
        email: Option<&str>,
        wanted: &str,
    ) -> Result<user::Model, DbErr> {
        let (_turn, txn) = self.begin_write().await?;
        let mut account = None;
        for attempt in 0..20u32 {
            let username = if attempt == 0 { wanted.to_owned() } else { format!("{wanted}-{}", attempt + 1) };
            let model = user::Model {
                id: uuid::Uuid::new_v4().to_string(),
                username,
                // No password: this person signs in through the provider.
                password_hash: String::new(),
                is_admin: false,
                disabled: false,
                created_at: now(),
            };
            let inserted = user::Entity::insert(user::ActiveModel::from(model.clone()))
                .on_conflict(OnConflict::column(user::Column::Username).do_nothing().to_owned())
                .exec_without_returning(&txn)
                .await?;
            if inserted == 1 {
                account = Some(model);
                break;
            }
        }
        let Some(account) = account else {
            return Err(DbErr::Custom(format!("no free username near {wanted}")));
        };
        let link = identity::Model {
            issuer: issuer.to_owned(),
            subject: subject.to_owned(),
            user_id: account.id.clone(),
            email: email.map(str::to_owned),
            created_at: now(),
        };
        let linked = identity::Entity::insert(identity::ActiveModel::from(link))
            .on_conflict(
                OnConflict::columns([identity::Column::Issuer, identity::Column::Subject]).do_nothing().to_owned(),
            )
            .exec_without_returning(&txn)
            .await?;
        if linked == 1 {
            txn.commit().await?;
            return Ok(account);
        }
        txn.rollback().await?;
        let existing = self.find_identity(issuer, subject).await?.ok_or(DbErr::RecordNotFound("identity".into()))?;
        self.find_user(&existing.user_id).await?.ok_or(DbErr::RecordNotFound("user".into()))
    }
}
