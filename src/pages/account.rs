//! What every signed-in page shares: who is signed in, the navigation, the way to the login page.
use poem::Response;
use poem::web::cookie::CookieJar;

use super::see_other;
use super::session::{SignedIn, signed_in};
use super::templates::Nav;
use crate::error::PageError;
use crate::state::AppState;

/// The signed-in person, or `None` when the page must send the browser to the login page.
pub async fn require(state: &AppState, jar: &CookieJar) -> Result<Option<SignedIn>, PageError> {
    signed_in(state, jar).await
}

/// To the login page, which comes back to `here` (a local path) afterwards.
pub fn to_login(state: &AppState, here: &str) -> Response {
    let base = state.config.issuer_path();
    let back: String = url::form_urlencoded::byte_serialize(format!("{base}{here}").as_bytes()).collect();
    see_other(&format!("{base}/login?return_to={back}"))
}

pub fn nav<'a>(state: &'a AppState, me: &'a SignedIn, current: &'static str) -> Nav<'a> {
    Nav {
        base: state.config.issuer_path(),
        username: &me.user.username,
        admin: me.user.is_admin,
        csrf_token: me.csrf_token(),
        current,
    }
}
