use sea_orm::{ColumnTrait, Condition, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use super::{Store, note};
use crate::crypto::now;

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

    /// Notes whose title or body contains `query` (case-insensitive for ASCII on both databases).
    pub async fn search_notes(&self, user_id: &str, query: &str, limit: u64) -> Result<Vec<note::Model>, DbErr> {
        let notes = note::Entity::find()
            .filter(note::Column::UserId.eq(user_id))
            .order_by_desc(note::Column::UpdatedAt)
            .all(&self.db)
            .await?;
        // Filtering here keeps the match rules identical on SQLite and Postgres (LIKE differs in case
        // handling and needs escaping); a person's notes are few enough for that.
        let needle = query.to_lowercase();
        Ok(notes
            .into_iter()
            .filter(|n| n.title.to_lowercase().contains(&needle) || n.body.to_lowercase().contains(&needle))
            .take(limit as usize)
            .collect())
    }

    /// Titles of the user's notes starting with `prefix` (for completions).
    pub async fn note_titles(&self, user_id: &str, prefix: &str, limit: u64) -> Result<Vec<String>, DbErr> {
        let lower = prefix.to_lowercase();
        let titles = note::Entity::find()
            .select_only()
            .column(note::Column::Title)
            .filter(note::Column::UserId.eq(user_id))
            .order_by_asc(note::Column::Title)
            .into_tuple::<String>()
            .all(&self.db)
            .await?;
        Ok(titles.into_iter().filter(|t| t.to_lowercase().starts_with(&lower)).take(limit as usize).collect())
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
