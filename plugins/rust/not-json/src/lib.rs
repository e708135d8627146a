//! Hostile: returns text that is not JSON, bypassing the SDK's encoding.
//! Must end as `invalid_result`.
use corral_sdk::bindings::corral::plugin::types::{Job, JobError};
use corral_sdk::bindings::exports::corral::plugin::handler::Guest;

struct NotJson;

impl Guest for NotJson {
    fn run(_job: Job) -> Result<String, JobError> {
        Ok("this is { not json".to_string())
    }
}

corral_sdk::bindings::__export_job_handler!(NotJson with_types_in corral_sdk::bindings);
