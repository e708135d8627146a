//! The API's request and response types. The server answers with these very
//! types (and builds its OpenAPI document from them, with the `openapi`
//! feature), so client and server cannot drift. Each module holds one area
//! of the API; everything is also here, at the top.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

mod jobs;
mod plugins;
mod schedules;
mod tenants;
mod workflows;

pub use jobs::*;
pub use plugins::*;
pub use schedules::*;
pub use tenants::*;
pub use workflows::*;

/// A point in time, in UTC.
pub type Timestamp = DateTime<Utc>;

/// The error shape every 4xx and 5xx answer has.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorDetail {
    /// A stable snake_case code, e.g. `unknown_plugin`.
    pub code: String,
    /// A sentence naming the problem.
    pub message: String,
}
