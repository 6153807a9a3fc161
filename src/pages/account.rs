//! What every signed-in page shares: the navigation and the way to the login page.
use poem::Response;

use super::see_other;
use super::session::SignedIn;
use super::templates::Nav;
use crate::state::AppState;

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
