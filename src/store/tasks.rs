//! Tasks in the database. Every change of status is one conditional UPDATE on the status (and the round it
//! was read at), so of two instances racing — a cancel and a finish, two answers — exactly one wins.
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseBackend, DbErr, EntityTrait, PaginatorTrait, QueryFilter,
    Statement,
};

use super::{Store, task};
use crate::clock::{UnixTime, now};

pub const WORKING: &str = "working";
pub const INPUT_REQUIRED: &str = "input_required";
pub const COMPLETED: &str = "completed";
pub const FAILED: &str = "failed";
pub const CANCELLED: &str = "cancelled";

/// A task about to start.
pub struct NewTask {
    pub id: String,
    pub owner_sub: String,
    pub owner_client: String,
    pub tool: String,
    pub sealed: String,
    pub instance: String,
    pub expires_at: UnixTime,
}

/// How a task's status changes, from one it was read in.
pub enum TaskChange<'a> {
    /// Working → waiting for the client's input (sealed: what it waits for).
    AwaitInput { sealed: &'a str },
    /// Working → finished: `completed`, `failed` (sealed: the result or the error).
    Finish { status: &'static str, sealed: &'a str },
    /// Working, on an instance that has not beaten since `before` → failed (sealed: that error).
    Abandoned { before: UnixTime, sealed: &'a str },
}

impl Store {
    /// Adds a working task unless its owner already has `max_active` live tasks: unexpired, and waiting for
    /// input or working on an instance heard from since `alive_since` (a task whose instance stopped does not
    /// count); `Ok(false)` then. One owner's inserts take turns (SQLite: the one write lock; Postgres: a lock
    /// on the owner for the transaction), so calls at the same moment cannot all pass the count.
    pub async fn insert_task(&self, new: NewTask, max_active: u64, alive_since: UnixTime) -> Result<bool, DbErr> {
        let (_turn, txn) = self.begin_write().await?;
        if self.is_postgres() {
            txn.execute_raw(Statement::from_sql_and_values(
                DatabaseBackend::Postgres,
                "SELECT pg_advisory_xact_lock(hashtextextended($1, 2663))",
                [format!("task owner {}", new.owner_sub).into()],
            ))
            .await?;
        }
        let at = now();
        let active = task::Entity::find()
            .filter(task::Column::OwnerSub.eq(&new.owner_sub))
            .filter(task::Column::ExpiresAt.gte(at))
            .filter(
                sea_orm::Condition::any().add(task::Column::Status.eq(INPUT_REQUIRED)).add(
                    sea_orm::Condition::all()
                        .add(task::Column::Status.eq(WORKING))
                        .add(task::Column::HeartbeatAt.gte(alive_since)),
                ),
            )
            .count(&txn)
            .await?;
        if active >= max_active {
            txn.rollback().await?;
            return Ok(false);
        }
        let row = task::ActiveModel {
            id: Set(new.id),
            owner_sub: Set(new.owner_sub),
            owner_client: Set(new.owner_client),
            tool: Set(new.tool),
            status: Set(WORKING.to_owned()),
            sealed: Set(new.sealed),
            round: Set(0),
            instance: Set(Some(new.instance)),
            heartbeat_at: Set(at),
            cancel_requested: Set(false),
            created_at: Set(at),
            updated_at: Set(at),
            expires_at: Set(new.expires_at),
        };
        task::Entity::insert(row).exec_without_returning(&txn).await?;
        txn.commit().await?;
        Ok(true)
    }

    /// A task that has not expired.
    pub async fn find_task(&self, id: &str) -> Result<Option<task::Model>, DbErr> {
        Ok(task::Entity::find_by_id(id).one(&self.db).await?.filter(|t| t.expires_at >= now()))
    }

    /// A working task's change, made only if it is still working in `round` (not cancelled meanwhile), and
    /// for [`TaskChange::Abandoned`] only if its heartbeat is still old: once, whoever tries.
    pub async fn change_task(&self, id: &str, round: i64, change: TaskChange<'_>) -> Result<bool, DbErr> {
        let (status, sealed, abandoned_before) = match change {
            TaskChange::AwaitInput { sealed } => (INPUT_REQUIRED, sealed, None),
            TaskChange::Finish { status, sealed } => (status, sealed, None),
            TaskChange::Abandoned { before, sealed } => (FAILED, sealed, Some(before)),
        };
        let mut update = task::Entity::update_many()
            .col_expr(task::Column::Status, Expr::value(status))
            .col_expr(task::Column::Sealed, Expr::value(sealed))
            .col_expr(task::Column::Instance, Expr::value(Option::<String>::None))
            .col_expr(task::Column::UpdatedAt, Expr::value(now()))
            .filter(task::Column::Id.eq(id))
            .filter(task::Column::Round.eq(round))
            .filter(task::Column::Status.eq(WORKING));
        if let Some(before) = abandoned_before {
            update = update.filter(task::Column::HeartbeatAt.lt(before));
        }
        Ok(update.exec(&self.db).await?.rows_affected == 1)
    }

    /// Records answers to a task waiting for input, read in `round`, and moves it to the next round (so of two
    /// answers read in the same round one wins, and the other reads again): with `resume`, it goes back to
    /// work on `instance`; else it keeps waiting for the rest.
    pub async fn answer_task(&self, id: &str, round: i64, sealed: &str, resume: Option<&str>) -> Result<bool, DbErr> {
        let at = now();
        let mut update = task::Entity::update_many()
            .col_expr(task::Column::Sealed, Expr::value(sealed))
            .col_expr(task::Column::Round, Expr::col(task::Column::Round).add(1))
            .col_expr(task::Column::UpdatedAt, Expr::value(at));
        if let Some(instance) = resume {
            update = update
                .col_expr(task::Column::Status, Expr::value(WORKING))
                .col_expr(task::Column::Instance, Expr::value(instance))
                .col_expr(task::Column::HeartbeatAt, Expr::value(at));
        }
        let updated = update
            .filter(task::Column::Id.eq(id))
            .filter(task::Column::Round.eq(round))
            .filter(task::Column::Status.eq(INPUT_REQUIRED))
            .exec(&self.db)
            .await?;
        Ok(updated.rows_affected == 1)
    }

    /// Cancels a task that is working or waiting for input; `Ok(false)` if it had already finished.
    pub async fn cancel_task(&self, id: &str) -> Result<bool, DbErr> {
        let updated = task::Entity::update_many()
            .col_expr(task::Column::Status, Expr::value(CANCELLED))
            .col_expr(task::Column::CancelRequested, Expr::value(true))
            .col_expr(task::Column::Instance, Expr::value(Option::<String>::None))
            .col_expr(task::Column::UpdatedAt, Expr::value(now()))
            .filter(task::Column::Id.eq(id))
            .filter(task::Column::Status.is_in([WORKING, INPUT_REQUIRED]))
            .exec(&self.db)
            .await?;
        Ok(updated.rows_affected == 1)
    }

    /// The running instance's sign of life for the tasks it works on; returns the ones among them that are no
    /// longer working (cancelled, or taken as failed) so it stops them.
    pub async fn task_heartbeat(&self, instance: &str, ids: &[String]) -> Result<Vec<String>, DbErr> {
        if ids.is_empty() {
            return Ok(vec![]);
        }
        task::Entity::update_many()
            .col_expr(task::Column::HeartbeatAt, Expr::value(now()))
            .filter(task::Column::Id.is_in(ids.iter().cloned()))
            .filter(task::Column::Instance.eq(instance))
            .filter(task::Column::Status.eq(WORKING))
            .exec(&self.db)
            .await?;
        let still = task::Entity::find()
            .filter(task::Column::Id.is_in(ids.iter().cloned()))
            .filter(task::Column::Instance.eq(instance))
            .filter(task::Column::Status.eq(WORKING))
            .all(&self.db)
            .await?;
        Ok(ids.iter().filter(|id| !still.iter().any(|t| &&t.id == id)).cloned().collect())
    }

    /// Deletes tasks past their time to live, finished or not.
    pub(super) async fn purge_tasks(&self, at: UnixTime) -> Result<u64, DbErr> {
        Ok(task::Entity::delete_many().filter(task::Column::ExpiresAt.lt(at)).exec(&self.db).await?.rows_affected)
    }
}
