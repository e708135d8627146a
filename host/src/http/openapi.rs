//! The OpenAPI document, generated from the handlers' annotations: served at
//! `GET /openapi.json`, browsable at `GET /docs` (Swagger UI, whose assets are
//! compiled into the binary, so it works offline), printed by `corral openapi`.

use serde::Serialize;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{IntoResponses, Modify, OpenApi, ToSchema};

use super::{admin_keys, bulk, jobs, plugins, schedules, secrets, summaries, tenants, workflows};

/// The error shape every 4xx and 5xx answer has (the client crate's type).
pub use corral_client::api::{ErrorBody, ErrorDetail};

/// The refusals every `/v1` route may answer with.
#[derive(IntoResponses)]
#[allow(dead_code)] // Only its shape is used, by the OpenAPI document.
pub enum Refusals {
    /// Malformed request (bad JSON, query or header).
    #[response(status = 400)]
    BadRequest(ErrorBody),
    /// No key, or a key Corral does not know.
    #[response(status = 401)]
    Unauthorized(ErrorBody),
    /// A key of the wrong kind: an admin key on a tenant route, or the reverse.
    #[response(status = 403)]
    Forbidden(ErrorBody),
    /// Nothing by that name for this key (another tenant's ids included).
    #[response(status = 404)]
    NotFound(ErrorBody),
    /// The request's headers arrived but it was not received and answered in time.
    #[response(status = 408)]
    RequestTimeout(ErrorBody),
    /// Well-formed, but breaks a rule (the message names it).
    #[response(status = 422)]
    Unprocessable(ErrorBody),
    /// Over a quota, or too many failed authentications from this address; `Retry-After` says when to try again.
    #[response(status = 429, headers(("Retry-After" = u64, description = "Seconds until trying again may succeed")))]
    TooManyRequests(ErrorBody),
    /// The database cannot be reached, or the host is at a limit of its own.
    #[response(status = 503, headers(("Retry-After" = u64, description = "Seconds until trying again may succeed")))]
    Unavailable(ErrorBody),
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Status {
    /// `ok` or `ready`.
    status: String,
}

/// Every `/v1` route takes `Authorization: Bearer <api key>`.
struct BearerKey;

impl Modify for BearerKey {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "A tenant's key for plugins and jobs; the admin key for tenants and keys.",
                    ))
                    .build(),
            ),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Corral",
        description = "A WebAssembly-plugin job host: upload components, enqueue jobs, follow them. \
                       Errors are `{\"error\": {\"code\", \"message\"}}`.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    paths(
        super::health, super::ready, super::ops::metrics,
        tenants::create, tenants::list, tenants::get, tenants::update, tenants::delete, tenants::create_key, tenants::list_keys,
        tenants::revoke_key, admin_keys::list, admin_keys::create, admin_keys::revoke,
        plugins::upload, plugins::list, plugins::versions, plugins::get, plugins::update,
        plugins::delete,
        jobs::create, jobs::create_batch, jobs::list, jobs::get, jobs::cancel, jobs::replay,
        jobs::attempts, jobs::logs, jobs::events, bulk::replay, bulk::cancel,
        summaries::overview, summaries::dead_letters,
        workflows::put, workflows::list, workflows::get, workflows::start, workflows::runs,
        workflows::run, workflows::diagram, workflows::cancel, workflows::events,
        schedules::put, schedules::list, schedules::get, schedules::delete, schedules::pause,
        schedules::resume,
        secrets::put, secrets::list, secrets::delete,
    ),
    components(schemas(ErrorBody, crate::model::OutcomeKind)),
    modifiers(&BearerKey),
    security(("api_key" = [])),
    tags(
        (name = "tenants", description = "Tenants and their keys (admin key)"),
        (name = "plugins", description = "WebAssembly components and their versions"),
        (name = "jobs", description = "Jobs: enqueue, follow, cancel, replay"),
        (name = "workflows", description = "Workflows (DAGs of plugin steps) and their runs"),
        (name = "schedules", description = "Cron schedules that start jobs or workflow runs"),
        (name = "secrets", description = "Write-only tenant secrets for plugins' outbound requests"),
        (name = "operations", description = "Health, readiness and metrics (no key)"),
    ),
)]
pub struct ApiDoc;

/// The document as JSON text.
pub fn document() -> String {
    ApiDoc::openapi()
        .to_pretty_json()
        .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
}

/// `/openapi.json` and the Swagger UI at `/docs`.
pub fn routes<S: Clone + Send + Sync + 'static>() -> axum::Router<S> {
    utoipa_swagger_ui::SwaggerUi::new("/docs")
        .url("/openapi.json", ApiDoc::openapi())
        .into()
}
