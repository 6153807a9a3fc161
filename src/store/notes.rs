use sea_orm::sea_query::{Expr, Func, LikeExpr, SimpleExpr};
use sea_orm::{
    ColumnTrait, Condition, DbErr, EntityTrait, ExprTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect,
};

use super::{Store, note};
use crate::clock::now;

impl Store {
    pub async fn create_note(&self, user_id: &str, title: &str, body: &str) -> Result<note::Model, DbErr> {
        let at = now();
        let model = note::Model {
            id: uuid::Uuid::new_v4().to_string(),
            user_id: user_id.to_owned(),
            title: title.to_owned(),
            body: body.to_owned(),
            created_at: at,
            updated_at: at,
        };
        note::Entity::insert(note::ActiveModel::from(model.clone())).exec_without_returning(&self.db).await?;
        Ok(model)
    }

    /// A note of this user; another user's note is simply not found.
    pub async fn find_note(&self, user_id: &str, id: &str) -> Result<Option<note::Model>, DbErr> {
        note::Entity::find_by_id(id).filter(note::Column::UserId.eq(user_id)).one(&self.db).await
    }

    /// The user's notes, newest first, after `offset`.
    pub async fn list_notes(&self, user_id: &str, offset: u64, limit: u64) -> Result<Vec<note::Model>, DbErr> {
        note::Entity::find()
            .filter(note::Column::UserId.eq(user_id))
            .order_by_desc(note::Column::UpdatedAt)
            .order_by_asc(note::Column::Id)
            .offset(offset)
            .limit(limit)
            .all(&self.db)
            .await
    }

    /// Notes whose title or body contains `query`, newest first (case-insensitive for ASCII on both
    /// databases: the match runs in SQL on `LOWER(…)` with `LIKE` wildcards escaped).
    pub async fn search_notes(&self, user_id: &str, query: &str, limit: u64) -> Result<Vec<note::Model>, DbErr> {
        let pattern = format!("%{}%", escape_like(&query.to_lowercase()));
        note::Entity::find()
            .filter(note::Column::UserId.eq(user_id))
            .filter(
                Condition::any()
                    .add(lower_like(note::Column::Title, &pattern))
                    .add(lower_like(note::Column::Body, &pattern)),
            )
            .order_by_desc(note::Column::UpdatedAt)
            .limit(limit)
            .all(&self.db)
            .await
    }

    /// Titles of the user's notes starting with `prefix` (for completions).
    pub async fn note_titles(&self, user_id: &str, prefix: &str, limit: u64) -> Result<Vec<String>, DbErr> {
        let pattern = format!("{}%", escape_like(&prefix.to_lowercase()));
        note::Entity::find()
            .select_only()
            .column(note::Column::Title)
            .filter(note::Column::UserId.eq(user_id))
            .filter(lower_like(note::Column::Title, &pattern))
            .order_by_asc(note::Column::Title)
            .limit(limit)
            .into_tuple::<String>()
            .all(&self.db)
            .await
    }

    /// Ids of the user's notes starting with `prefix` (for completions).
    pub async fn note_ids(&self, user_id: &str, prefix: &str, limit: u64) -> Result<Vec<String>, DbErr> {
        note::Entity::find()
            .select_only()
            .column(note::Column::Id)
            .filter(note::Column::UserId.eq(user_id))
            .filter(note::Column::Id.like(LikeExpr::new(format!("{}%", escape_like(prefix))).escape('\\')))
            .order_by_asc(note::Column::Id)
            .limit(limit)
            .into_tuple::<String>()
            .all(&self.db)
            .await
    }

    pub async fn count_notes(&self, user_id: &str) -> Result<u64, DbErr> {
        note::Entity::find().filter(note::Column::UserId.eq(user_id)).count(&self.db).await
    }

    /// Deletes a note of this user; returns it if it existed.
    pub async fn delete_note(&self, user_id: &str, id: &str) -> Result<Option<note::Model>, DbErr> {
        note::Entity::delete_many()
            .filter(Condition::all().add(note::Column::Id.eq(id)).add(note::Column::UserId.eq(user_id)))
            .exec_with_returning(&self.db)
            .await
            .map(|mut rows| rows.pop())
    }
}

/// `LOWER(column) LIKE pattern ESCAPE '\'`.
fn lower_like(column: note::Column, pattern: &str) -> SimpleExpr {
    Expr::expr(Func::lower(Expr::col(column))).like(LikeExpr::new(pattern).escape('\\'))
}

/// Escapes `LIKE` wildcards so user text matches literally.
fn escape_like(text: &str) -> String {
    text.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_")
}
