//! Notes of the signed-in person: create, list, search, get, delete. Each note is also a resource.
use poem::http::request::Parts;
use rmcp::handler::server::tool::Extension;
use rmcp::handler::server::wrapper::Parameters;
#[allow(deprecated)] // MCP logging (SEP-2577 deprecates it; 2025 clients use it)
use rmcp::model::LoggingLevel;
use rmcp::{Json, Peer, RoleServer, schemars, tool, tool_router};
use serde::{Deserialize, Serialize};

use super::{reader, writer};
use crate::mcp::error::log_hidden;
use crate::mcp::server::{McpServer, note_uri};
use crate::store::note;

const MAX_TITLE: usize = 200;
const MAX_BODY: usize = 32 * 1024;
/// Keeps one person's storage (and the cost of listing and searching it) bounded.
const MAX_NOTES: u64 = 10_000;
const DEFAULT_LIMIT: u32 = 20;
const MAX_LIMIT: u32 = 100;

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct Note {
    pub id: String,
    /// The resource URI of the note.
    pub uri: String,
    pub title: String,
    pub body: String,
    /// RFC 3339, UTC.
    pub created_at: String,
    /// RFC 3339, UTC.
    pub updated_at: String,
}

impl From<note::Model> for Note {
    fn from(n: note::Model) -> Note {
        Note {
            uri: note_uri(&n.id),
            created_at: n.created_at.rfc3339(),
            updated_at: n.updated_at.rfc3339(),
            id: n.id,
            title: n.title,
            body: n.body,
        }
    }
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct NoteList {
    pub notes: Vec<Note>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct CreateNote {
    /// A short title (1–200 characters).
    pub title: String,
    /// The text of the note, Markdown welcome (up to 32 KiB).
    pub body: String,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct ListNotes {
    /// How many notes to return (1–100, default 20).
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct SearchNotes {
    /// Text to look for in titles and bodies (case-insensitive).
    pub query: String,
    /// How many notes to return (1–100, default 20).
    pub limit: Option<u32>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct NoteId {
    /// The note's id (see notes_list).
    pub id: String,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct Deleted {
    pub deleted: bool,
    pub id: String,
}

fn limit(asked: Option<u32>) -> Result<u64, String> {
    match asked.unwrap_or(DEFAULT_LIMIT) {
        n @ 1..=MAX_LIMIT => Ok(u64::from(n)),
        _ => Err(format!("limit must be between 1 and {MAX_LIMIT}")),
    }
}

fn storage_failed<E: std::fmt::Display>(e: E) -> String {
    log_hidden("notes storage failed", &e);
    "the notes could not be read or written; try again".to_owned()
}

#[tool_router(router = notes_router, vis = "pub(crate)")]
impl McpServer {
    /// Create a note.
    #[tool(
        name = "notes_create",
        title = "Create a note",
        annotations(
            read_only_hint = false,
            destructive_hint = false,
            idempotent_hint = false,
            open_world_hint = false
        )
    )]
    async fn notes_create(
        &self,
        Parameters(args): Parameters<CreateNote>,
        Extension(parts): Extension<Parts>,
        peer: Peer<RoleServer>,
    ) -> Result<Json<Note>, String> {
        let me = writer(&parts)?;
        let title = args.title.trim();
        if title.is_empty() || title.chars().count() > MAX_TITLE {
            return Err(format!("title must be 1–{MAX_TITLE} characters"));
        }
        if args.body.len() > MAX_BODY {
            return Err(format!("body must be at most {MAX_BODY} bytes"));
        }
        if self.ctx.store.count_notes(&me.sub).await.map_err(storage_failed)? >= MAX_NOTES {
            return Err(format!("you have {MAX_NOTES} notes, the most one person may keep; delete some first"));
        }
        let note = self.ctx.store.create_note(&me.sub, title, &args.body).await.map_err(storage_failed)?;
        self.ctx.note_events.note_changed(&me.sub, &note.id).await;
        #[allow(deprecated)]
        self.log(&peer, LoggingLevel::Info, serde_json::json!({"event": "note created", "id": note.id})).await;
        Ok(Json(note.into()))
    }

    /// List your notes, most recently changed first.
    #[tool(
        name = "notes_list",
        title = "List notes",
        annotations(read_only_hint = true, destructive_hint = false, idempotent_hint = true, open_world_hint = false)
    )]
    async fn notes_list(
        &self,
        Parameters(args): Parameters<ListNotes>,
        Extension(parts): Extension<Parts>,
    ) -> Result<Json<NoteList>, String> {
        let me = reader(&parts)?;
        let limit = limit(args.limit)?;
        let offset = match args.cursor.as_deref() {
            None => 0,
            Some(c) => c.parse::<u64>().map_err(|_| "cursor is not one this server gave out".to_owned())?,
        };
        let mut notes = self.ctx.store.list_notes(&me.sub, offset, limit + 1).await.map_err(storage_failed)?;
        let next_cursor = (notes.len() as u64 > limit).then(|| (offset + limit).to_string());
        notes.truncate(limit as usize);
        Ok(Json(NoteList { notes: notes.into_iter().map(Note::from).collect(), next_cursor }))
    }

    /// Find notes whose title or text contains the query.
    #[tool(
        name = "notes_search",
        title = "Search notes",
        annotations(read_only_hint = true, destructive_hint = false, idempotent_hint = true, open_world_hint = false)
    )]
    async fn notes_search(
        &self,
        Parameters(args): Parameters<SearchNotes>,
        Extension(parts): Extension<Parts>,
    ) -> Result<Json<NoteList>, String> {
        let me = reader(&parts)?;
        if args.query.trim().is_empty() {
            return Err("query must not be empty".to_owned());
        }
        let notes = self
            .ctx
            .store
            .search_notes(&me.sub, args.query.trim(), limit(args.limit)?)
            .await
            .map_err(storage_failed)?;
        Ok(Json(NoteList { notes: notes.into_iter().map(Note::from).collect(), next_cursor: None }))
    }

    /// Read one note by id.
    #[tool(
        name = "notes_get",
        title = "Get a note",
        annotations(read_only_hint = true, destructive_hint = false, idempotent_hint = true, open_world_hint = false)
    )]
    async fn notes_get(
        &self,
        Parameters(args): Parameters<NoteId>,
        Extension(parts): Extension<Parts>,
    ) -> Result<Json<Note>, String> {
        let me = reader(&parts)?;
        match self.ctx.store.find_note(&me.sub, &args.id).await.map_err(storage_failed)? {
            Some(note) => Ok(Json(note.into())),
            None => Err(format!("no note with id {}", args.id)),
        }
    }

    /// Delete one note by id. This cannot be undone.
    #[tool(
        name = "notes_delete",
        title = "Delete a note",
        annotations(read_only_hint = false, destructive_hint = true, idempotent_hint = true, open_world_hint = false)
    )]
    async fn notes_delete(
        &self,
        Parameters(args): Parameters<NoteId>,
        Extension(parts): Extension<Parts>,
        peer: Peer<RoleServer>,
    ) -> Result<Json<Deleted>, String> {
        let me = writer(&parts)?;
        match self.ctx.store.delete_note(&me.sub, &args.id).await.map_err(storage_failed)? {
            Some(note) => {
                self.ctx.note_events.note_changed(&me.sub, &note.id).await;
                #[allow(deprecated)]
                self.log(&peer, LoggingLevel::Info, serde_json::json!({"event": "note deleted", "id": note.id})).await;
                Ok(Json(Deleted { deleted: true, id: note.id }))
            }
            None => Err(format!("no note with id {}", args.id)),
        }
    }
}
