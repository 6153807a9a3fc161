//! The OAuth face's error vocabulary: [`OAuthError`], mapped to the wire once, as RFC 6749 §5.2 JSON with
//! `Cache-Control: no-store` (the response enums built by [`oauth_response!`](crate::oauth_response)).
use std::borrow::Cow;
use std::fmt;

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

    /// A rate limit was hit.
    pub fn too_many_requests(retry_after: crate::limits::RetryAfter) -> OAuthError {
        OAuthError {
            retry_after: Some(retry_after.seconds()),
            ..OAuthError::new(ErrorCode::TemporarilyUnavailable, "too many requests; try again later")
        }
    }

    /// Logs the cause (which may be internal) and answers a generic `server_error`.
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

impl From<crate::domain::registration::RegistrationError> for OAuthError {
    fn from(e: crate::domain::registration::RegistrationError) -> OAuthError {
        use crate::domain::registration::RegistrationError;
        match e {
            RegistrationError::InvalidRedirectUri(d) => OAuthError::new(ErrorCode::InvalidRedirectUri, d),
            RegistrationError::InvalidMetadata(d) => OAuthError::new(ErrorCode::InvalidClientMetadata, d),
            RegistrationError::Storage(e) => OAuthError::internal(e),
        }
    }
}

impl fmt::Display for OAuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.description)
    }
}

impl std::error::Error for OAuthError {}

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

/// Builds a poem-openapi response enum for an OAuth endpoint: the success variant (a JSON body with its
/// status, or an empty 204) plus the RFC 6749 §5.2 error variants, and the one mapping from [`OAuthError`].
#[macro_export]
macro_rules! oauth_response {
    ($(#[$meta:meta])* $name:ident, $status:literal, $body:ty) => {
        $crate::oauth_response!(@enum $(#[$meta])* $name, $body, {
            /// Success.
            #[oai(status = $status)]
            Ok(poem_openapi::payload::Json<$body>),
        });

        impl From<Result<$body, $crate::oauth::error::OAuthError>> for $name {
            fn from(r: Result<$body, $crate::oauth::error::OAuthError>) -> $name {
                match r {
                    Ok(body) => $name::Ok(poem_openapi::payload::Json(body)),
                    Err(e) => e.into(),
                }
            }
        }
    };
    ($(#[$meta:meta])* $name:ident, 204) => {
        $crate::oauth_response!(@enum $(#[$meta])* $name, (), {
            /// Done; nothing to report.
            #[oai(status = 204)]
            Done,
        });

        impl From<Result<(), $crate::oauth::error::OAuthError>> for $name {
            fn from(r: Result<(), $crate::oauth::error::OAuthError>) -> $name {
                match r {
                    Ok(()) => $name::Done,
                    Err(e) => e.into(),
                }
            }
        }
    };
    (@enum $(#[$meta:meta])* $name:ident, $body:ty, { $($success:tt)* }) => {
        $(#[$meta])*
        // Built once per request and moved straight into the response: boxing buys nothing.
        #[allow(clippy::large_enum_variant)]
        #[derive(poem_openapi::ApiResponse)]
        #[oai(bad_request_handler = "crate::oauth::error::from_request_error")]
        pub enum $name {
            $($success)*
            /// The request is invalid (RFC 6749 §5.2 error code in `error`).
            #[oai(status = 400)]
            BadRequest(poem_openapi::payload::Json<$crate::oauth::error::OAuthErrorBody>),
            /// Client authentication failed (`invalid_client`), or the bearer token is not valid (`invalid_token`).
            #[oai(status = 401)]
            Unauthorized(
                poem_openapi::payload::Json<$crate::oauth::error::OAuthErrorBody>,
                #[oai(header = "WWW-Authenticate")] Option<String>,
            ),
            /// A rate limit was hit (`temporarily_unavailable`); `Retry-After` says when to come back.
            #[oai(status = 429)]
            TooManyRequests(
                poem_openapi::payload::Json<$crate::oauth::error::OAuthErrorBody>,
                #[oai(header = "Retry-After")] Option<u64>,
            ),
            /// The server failed (`server_error`).
            #[oai(status = 500)]
            ServerError(poem_openapi::payload::Json<$crate::oauth::error::OAuthErrorBody>),
        }

        impl From<$crate::oauth::error::OAuthError> for $name {
            fn from(e: $crate::oauth::error::OAuthError) -> $name {
                let body = poem_openapi::payload::Json(e.body());
                match e.status().as_u16() {
                    401 => $name::Unauthorized(body, e.www_authenticate),
                    429 => $name::TooManyRequests(body, e.retry_after),
                    500 => $name::ServerError(body),
                    _ => $name::BadRequest(body),
                }
            }
        }
    };
}
