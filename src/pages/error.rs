//! The HTML face's error vocabulary: [`PageError`], rendered once as the site's error page.
use std::borrow::Cow;
use std::fmt;

use poem::Response;
use poem::http::StatusCode;

use super::templates::render_error;
use crate::domain::sessions::FormExpired;

/// An error shown to a person in the browser: an HTML page, never a redirect.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{title}")]
pub struct PageError {
    pub status: StatusCode,
    pub title: Cow<'static, str>,
    pub message: Cow<'static, str>,
}

impl PageError {
    pub fn bad_request(title: impl Into<Cow<'static, str>>, message: impl Into<Cow<'static, str>>) -> PageError {
        PageError { status: StatusCode::BAD_REQUEST, title: title.into(), message: message.into() }
    }

    pub fn forbidden(title: impl Into<Cow<'static, str>>, message: impl Into<Cow<'static, str>>) -> PageError {
        PageError { status: StatusCode::FORBIDDEN, title: title.into(), message: message.into() }
    }

    pub fn not_found() -> PageError {
        PageError { status: StatusCode::NOT_FOUND, title: "Not found".into(), message: "There is no page here.".into() }
    }

    /// Logs the cause (which may be internal) and shows a generic page.
    pub fn internal(cause: impl fmt::Display) -> PageError {
        tracing::error!(error = %cause, "internal error");
        PageError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            title: "Something went wrong".into(),
            message: "The server could not complete the request. Please try again.".into(),
        }
    }
}

impl From<sea_orm::DbErr> for PageError {
    fn from(e: sea_orm::DbErr) -> PageError {
        PageError::internal(e)
    }
}

impl From<FormExpired> for PageError {
    fn from(_: FormExpired) -> PageError {
        PageError::bad_request(FormExpired::TITLE, FormExpired::MESSAGE)
    }
}

impl poem::error::ResponseError for PageError {
    fn status(&self) -> StatusCode {
        self.status
    }

    fn as_response(&self) -> Response {
        super::html_response(self.status, render_error(&self.title, &self.message))
    }
}
