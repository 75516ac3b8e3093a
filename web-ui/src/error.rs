use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use imslab_store::Error as StoreError;
use serde_json::json;

/// Every failure of an API call, mapped to its HTTP status in [`IntoResponse`]. Internal details
/// (database errors) are logged, not sent.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// The request's input is invalid; every problem is listed.
    #[error("{message}")]
    Invalid {
        /// Summary.
        message: String,
        /// One entry per problem (`field: what is wrong` or `line N: ...`).
        details: Vec<String>,
    },
    /// No such resource.
    #[error("{0}")]
    NotFound(String),
    /// The resource already exists.
    #[error("{0}")]
    Conflict(String),
    /// Missing or wrong bearer token.
    #[error("a valid bearer token is required")]
    Unauthorized,
    /// The operation needs a function that is not running here.
    #[error("{0}")]
    Unavailable(String),
    /// The HSS tried and failed.
    #[error("{0}")]
    Failed(String),
    /// The store failed.
    #[error("internal error")]
    Internal(#[source] StoreError),
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::InvalidSubscriber { errors } => Self::Invalid {
                message: "invalid subscriber".into(),
                details: errors.iter().map(ToString::to_string).collect(),
            },
            StoreError::InvalidImport { lines } => Self::Invalid {
                message: "nothing imported: invalid lines".into(),
                details: lines.iter().map(ToString::to_string).collect(),
            },
            StoreError::CsvFormat { .. } => Self::Invalid {
                message: e.to_string(),
                details: Vec::new(),
            },
            StoreError::NotFound { .. } => Self::NotFound(e.to_string()),
            StoreError::Duplicate { .. } => Self::Conflict(e.to_string()),
            other => Self::Internal(other),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = match &self {
            Self::Invalid { .. } => StatusCode::BAD_REQUEST,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Failed(_) => StatusCode::BAD_GATEWAY,
            Self::Internal(e) => {
                tracing::error!("API store error: {e}");
                StatusCode::INTERNAL_SERVER_ERROR
            }
        };
        let details = match &self {
            Self::Invalid { details, .. } => details.clone(),
            _ => Vec::new(),
        };
        let mut resp = (
            status,
            Json(json!({ "error": self.to_string(), "details": details })),
        )
            .into_response();
        if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer"),
            );
        }
        resp
    }
}
