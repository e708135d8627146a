//! Fits Corral's world but also imports an interface Corral does not
//! provide. Upload must refuse it, naming the unknown import.
wit_bindgen::generate!({
    path: "../../../wit",
    inline: r#"
        package test:unknown;
        interface vault {
            secret: func(name: string) -> string;
        }
        world greedy {
            include corral:plugin/job-handler@0.1.0;
            import vault;
        }
    "#,
    world: "test:unknown/greedy",
    generate_all,
});

use corral::plugin::types::{Job, JobError};

struct Greedy;

impl exports::corral::plugin::handler::Guest for Greedy {
    fn run(_job: Job) -> Result<String, JobError> {
        Ok(format!(
            "{:?}",
            test::unknown::vault::secret("root-password")
        ))
    }
}

export!(Greedy);
