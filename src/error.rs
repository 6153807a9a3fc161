//! One error type per face, each mapped to the wire once: [`OAuthError`] → RFC 6749 §5.2 JSON (the
//! response enums built by [`oauth_response!`]), [`PageError`] → an HTML error page.
use std::borrow::Cow;
use std::fmt;

use poem::Response;
use poem::http::StatusCode;
use poem_openapi::Object;

/// RFC 6749 §4.1.2.1 / §5.2, RFC 7591 §3.2.2, RFC 8707 §2 error codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    InvalidRequest,
    InvalidClient,
    InvalidGrant,
    UnauthorizedClient,
    UnsupportedGrantType,
    UnsupportedResponseType,
    UnsupportedTokenType,
    InvalidScope,
    InvalidTarget,
    AccessDenied,
    InvalidRedirectUri,
    InvalidClientMetadata,
    /// RFC 6750 §3.1: a bad registration access token (RFC 7592).
    InvalidToken,
    /// A rate limit was hit (answered with 429 and `Retry-After`).
    TemporarilyUnavailable,
    ServerError,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::InvalidClient => "invalid_client",
            ErrorCode::InvalidGrant => "invalid_grant",
            ErrorCode::UnauthorizedClient => "unauthorized_client",
            ErrorCode::UnsupportedGrantType => "unsupported_grant_type",
            ErrorCode::UnsupportedResponseType => "unsupported_response_type",
            ErrorCode::UnsupportedTokenType => "unsupported_token_type",
            ErrorCode::InvalidScope => "invalid_scope",
            ErrorCode::InvalidTarget => "invalid_target",
            ErrorCode::AccessDenied => "access_denied",
            ErrorCode::InvalidRedirectUri => "invalid_redirect_uri",
            ErrorCode::InvalidClientMetadata => "invalid_client_metadata",
            ErrorCode::InvalidToken => "invalid_token",
            ErrorCode::TemporarilyUnavailable => "temporarily_unavailable",
            ErrorCode::ServerError => "server_error",
        }
    }
}

/// An OAuth error: a code, a human-readable description (never containing a secret) and, for failed
/// HTTP Basic client authentication, the `WWW-Authenticate` challenge RFC 6749 §5.2 asks for.
#[derive(Debug, Clone)]
pub struct OAuthError {
    pub code: ErrorCode,
    pub description: Cow<'static, str>,
    pub www_authenticate: Option<String>,
    /// Seconds for the `Retry-After` header of a 429.
    pub retry_after: Option<u64>,
}

impl OAuthError {
    pub fn new(code: ErrorCode, description: impl Into<Cow<'static, str>>) -> OAuthError {
        OAuthError { code, description: description.into(), www_authenticate: None, retry_after: None }
    }

    pub fn invalid_request(description: impl Into<Cow<'static, str>>) -> OAuthError {
        OAuthError::new(ErrorCode::InvalidRequest, description)
    }

    pub fn invalid_grant(description: impl Into<Cow<'static, str>>) -> OAuthError {
        OAuthError::new(ErrorCode::InvalidGrant, description)
    }

    /// Logs the cause (which may be internal) and answers a generic `server_error`.
    /// A rate limit was hit.
    pub fn too_many_requests(retry_after: crate::limits::RetryAfter) -> OAuthError {
        OAuthError {
            retry_after: Some(retry_after.seconds()),
            ..OAuthError::new(ErrorCode::TemporarilyUnavailable, "too many requests; try again later")
        }
    }

    pub fn internal(cause: impl fmt::Display) -> OAuthError {
        tracing::error!(error = %cause, "internal error");
        OAuthError::new(ErrorCode::ServerError, "the server could not complete the request")
    }

    pub fn status(&self) -> StatusCode {
        match self.code {
            ErrorCode::InvalidClient | ErrorCode::InvalidToken => StatusCode::UNAUTHORIZED,
            ErrorCode::TemporarilyUnavailable => StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::ServerError => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::BAD_REQUEST,
        }
    }

    pub fn body(&self) -> OAuthErrorBody {
        OAuthErrorBody { error: self.code.as_str().to_owned(), error_description: Some(self.description.to_string()) }
    }
}

impl From<sea_orm::DbErr> for OAuthError {
    fn from(e: sea_orm::DbErr) -> OAuthError {
        OAuthError::internal(e)
    }
}

/// The JSON body of every OAuth error response (RFC 6749 §5.2).
#[derive(Debug, Clone, Object)]
pub struct OAuthErrorBody {
    /// The error code, e.g. `invalid_grant`.
    pub error: String,
    /// A human-readable explanation.
    #[oai(skip_serializing_if_is_none)]
    pub error_description: Option<String>,
}

/// Response enums of the OAuth endpoints: which error code a malformed request maps to.
pub trait OAuthResponse: From<OAuthError> {
    const MALFORMED: ErrorCode = ErrorCode::InvalidRequest;
}

/// poem-openapi calls this when the request cannot be parsed (wrong content type, missing body, a
/// parameter given twice…): answer with an RFC-shaped error instead of a plain-text 400.
pub fn from_request_error<R: OAuthResponse>(err: poem::Error) -> R {
    R::from(OAuthError::new(R::MALFORMED, format!("malformed request: {err}")))
}

/// Builds a poem-openapi response enum for an OAuth endpoint: the success variant plus the RFC 6749
/// §5.2 error variants, and the one mapping from [`OAuthError`].
#[macro_export]
macro_rules! oauth_response {
    ($(#[$meta:meta])* $name:ident, $status:literal, $body:ty) => {
        $(#[$meta])*
        // Built once per request and moved straight into the response: boxing buys nothing.
        #[allow(clippy::large_enum_variant)]
        #[derive(poem_openapi::ApiResponse)]
        #[oai(bad_request_handler = "crate::error::from_request_error")]
        pub enum $name {
            /// Success.
            #[oai(status = $status)]
            Ok(poem_openapi::payload::Json<$body>),
            /// The request is invalid (RFC 6749 §5.2 error code in `error`).
            #[oai(status = 400)]
            BadRequest(poem_openapi::payload::Json<$crate::error::OAuthErrorBody>),
            /// Client authentication failed (`invalid_client`).
            #[oai(status = 401)]
            Unauthorized(
                poem_openapi::payload::Json<$crate::error::OAuthErrorBody>,
                #[oai(header = "WWW-Authenticate")] Option<String>,
            ),
            /// A rate limit was hit (`temporarily_unavailable`); `Retry-After` says when to come back.
            #[oai(status = 429)]
            TooManyRequests(
                poem_openapi::payload::Json<$crate::error::OAuthErrorBody>,
                #[oai(header = "Retry-After")] Option<u64>,
            ),
            /// The server failed (`server_error`).
            #[oai(status = 500)]
            ServerError(poem_openapi::payload::Json<$crate::error::OAuthErrorBody>),
        }

        impl From<$crate::error::OAuthError> for $name {
            fn from(e: $crate::error::OAuthError) -> $name {
                let body = poem_openapi::payload::Json(e.body());
                match e.status().as_u16() {
                    401 => $name::Unauthorized(body, e.www_authenticate),
                    429 => $name::TooManyRequests(body, e.retry_after),
                    500 => $name::ServerError(body),
                    _ => $name::BadRequest(body),
                }
            }
        }

        impl From<Result<$body, $crate::error::OAuthError>> for $name {
            fn from(r: Result<$body, $crate::error::OAuthError>) -> $name {
                match r {
                    Ok(body) => $name::Ok(poem_openapi::payload::Json(body)),
                    Err(e) => e.into(),
                }
            }
        }
    };
}

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

    pub fn not_found() -> PageError {
        PageError { status: StatusCode::NOT_FOUND, title: "Not found".into(), message: "There is no page here.".into() }
    }

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

impl poem::error::ResponseError for PageError {
    fn status(&self) -> StatusCode {
        self.status
    }

    fn as_response(&self) -> Response {
        let html = crate::pages::templates::render_error(&self.title, &self.message);
        crate::pages::html_response(self.status, html)
    }
}
