//! The authorization endpoint's pages, rendered by this face for the OAuth face (which only knows the
//! [`AuthorizeViews`] interface).
use poem::web::cookie::CookieJar;

use super::Pages;
use super::account::login_html;
use super::templates::{ConsentPage, LeavePage, render, render_error};
use crate::domain::views::{AuthorizeViews, ConsentView, LeaveView};

/// Renders sign-in, consent and error pages with the site's templates.
pub struct HtmlViews(pub Pages);

impl AuthorizeViews for HtmlViews {
    fn login(&self, jar: &CookieJar, return_to: &str) -> String {
        login_html(&self.0, jar, return_to, "", None)
    }

    fn consent(&self, view: &ConsentView<'_>) -> String {
        render(&ConsentPage { base: &self.0.base, view })
    }

    fn leave(&self, view: &LeaveView<'_>) -> String {
        render(&LeavePage { base: &self.0.base, view })
    }

    fn error(&self, title: &str, message: &str) -> String {
        render_error(title, message)
    }
}
