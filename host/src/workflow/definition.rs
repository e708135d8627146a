//! A workflow definition as a tenant writes it, and its validation: every
//! problem is found before anything is stored, and named (a cycle with its
//! path, an unknown dependency, a duplicate step, a bad expression).
//! Whether the plugins exist is checked by the store, in the transaction
//! that stores the definition.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::expression::Expression;
use crate::model::{MAX_ATTEMPTS_PER_JOB, MAX_INPUT_BYTES, MAX_PRIORITY, Name, NameError};

/// Steps in one workflow. Bounds the work of advancing a run (every step
/// is looked at when one finishes) and the size of the run's diagram.
pub const MAX_STEPS: usize = 100;
/// Elements one fan-out step may run. Bounds the jobs one run can create
/// from one result (each element is a job and a row).
pub const MAX_FAN_OUT_ITEMS: usize = 10_000;
/// Element jobs of one fan-out step running at once, at most (the default is
/// all of them, still bounded by the tenant's `max_concurrency`).
pub const MAX_PARALLEL: u32 = MAX_FAN_OUT_ITEMS as u32;

/// A workflow: a DAG of steps, each a job of a plugin.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkflowSpec {
    /// The steps, in any order (dependencies decide when each runs).
    pub steps: Vec<StepSpec>,
}

/// A step as a tenant writes it, and what a failed one does to its run:
/// the API's types.
pub use corral_client::api::{OnFailure, StepSpec};

/// Why a definition was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DefinitionError {
    #[error("a workflow needs 1 to {MAX_STEPS} steps, got {0}")]
    StepCount(usize),
    /// A step's name is not a [`Name`].
    #[error(transparent)]
    BadStepName(#[from] NameError),
    #[error("step `{0}` is defined twice")]
    DuplicateStep(String),
    #[error("step `{step}` depends on `{dependency}`, which is not a step of this workflow")]
    UnknownDependency { step: String, dependency: String },
    #[error("step `{0}` depends on itself")]
    SelfDependency(String),
    #[error("the steps form a cycle: {}", .0.join(" -> "))]
    Cycle(Vec<String>),
    #[error("step `{step}`: {message}")]
    Step { step: String, message: String },
}

impl WorkflowSpec {
    /// The definition of a stored version.
    pub fn of(workflow: &super::Workflow) -> WorkflowSpec {
        WorkflowSpec {
            steps: workflow.steps.clone(),
        }
    }

    /// Check everything that does not need the database.
    pub fn validate(&self) -> Result<(), DefinitionError> {
        if self.steps.is_empty() || self.steps.len() > MAX_STEPS {
            return Err(DefinitionError::StepCount(self.steps.len()));
        }
        let mut names = BTreeSet::new();
        for step in &self.steps {
            Name::parse("step name", &step.name)?;
            if !names.insert(step.name.as_str()) {
                return Err(DefinitionError::DuplicateStep(step.name.clone()));
            }
        }
        for step in &self.steps {
            validate_step(step, &names)?;
        }
        if let Some(cycle) = self.find_cycle() {
            return Err(DefinitionError::Cycle(cycle));
        }
        Ok(())
    }

    /// The position of each step by name.
    pub fn positions(&self) -> BTreeMap<&str, usize> {
        self.steps
            .iter()
            .enumerate()
            .map(|(i, s)| (s.name.as_str(), i))
            .collect()
    }

    /// A cycle's path (its first step repeated at the end), if there is one.
    fn find_cycle(&self) -> Option<Vec<String>> {
        #[derive(Clone, Copy, PartialEq)]
        enum Mark {
            New,
            OnPath,
            Done,
        }
        let at = self.positions();
        let mut marks = vec![Mark::New; self.steps.len()];
        // Iterative depth-first search (a recursion of MAX_STEPS is fine, but
        // the explicit stack also gives the path for the message).
        for start in 0..self.steps.len() {
            if marks[start] != Mark::New {
                continue;
            }
            let mut path: Vec<(usize, usize)> = vec![(start, 0)];
            marks[start] = Mark::OnPath;
            while let Some((node, next)) = path.last_mut() {
                let deps = &self.steps[*node].depends_on;
                if *next == deps.len() {
                    marks[*node] = Mark::Done;
                    path.pop();
                    continue;
                }
                let dep = at[deps[*next].as_str()];
                *next += 1;
                match marks[dep] {
                    Mark::New => {
                        marks[dep] = Mark::OnPath;
                        path.push((dep, 0));
                    }
                    Mark::OnPath => {
                        // The path runs from dependents to dependencies; show
                        // it in the order the steps would run.
                        let from = path.iter().position(|(n, _)| *n == dep).unwrap_or(0);
                        let mut cycle: Vec<String> = path[from..]
                            .iter()
                            .map(|(n, _)| self.steps[*n].name.clone())
                            .collect();
                        cycle.push(self.steps[dep].name.clone());
                        cycle.reverse();
                        return Some(cycle);
                    }
                    Mark::Done => {}
                }
            }
        }
        None
    }
}

/// Check one step against the names of its workflow's steps.
fn validate_step(step: &StepSpec, names: &BTreeSet<&str>) -> Result<(), DefinitionError> {
    let problem = |message: String| DefinitionError::Step {
        step: step.name.clone(),
        message,
    };
    Name::parse("plugin name", &step.plugin).map_err(|e| problem(e.to_string()))?;
    if step.version == Some(0) {
        return Err(problem("plugin versions start at 1".into()));
    }
    let mut seen = BTreeSet::new();
    for dep in &step.depends_on {
        if dep == &step.name {
            return Err(DefinitionError::SelfDependency(step.name.clone()));
        }
        if !names.contains(dep.as_str()) {
            return Err(DefinitionError::UnknownDependency {
                step: step.name.clone(),
                dependency: dep.clone(),
            });
        }
        if !seen.insert(dep) {
            return Err(problem(format!("depends on `{dep}` twice")));
        }
    }
    if let Some(input) = &step.input {
        let text = input.to_string();
        if text.len() > MAX_INPUT_BYTES {
            return Err(problem(format!(
                "input is {} bytes; the limit is {MAX_INPUT_BYTES}",
                text.len()
            )));
        }
        if let Some(why) = crate::model::json_refusal(&text) {
            return Err(problem(format!("input {why}")));
        }
    }
    if let Some(when) = &step.when {
        Expression::compile(when).map_err(|e| problem(format!("when: {e}")))?;
    }
    if let Some(for_each) = &step.for_each {
        Expression::compile(for_each).map_err(|e| problem(format!("for_each: {e}")))?;
    }
    match (step.max_parallel, &step.for_each) {
        (Some(_), None) => {
            return Err(problem("max_parallel needs for_each".into()));
        }
        (Some(n), Some(_)) if !(1..=MAX_PARALLEL).contains(&n) => {
            return Err(problem(format!(
                "max_parallel must be between 1 and {MAX_PARALLEL}"
            )));
        }
        _ => {}
    }
    if let Some(queue) = &step.queue {
        Name::parse("queue", queue).map_err(|e| problem(e.to_string()))?;
    }
    if let Some(priority) = step.priority
        && !(-MAX_PRIORITY..=MAX_PRIORITY).contains(&priority)
    {
        return Err(problem(format!(
            "priority must be between -{MAX_PRIORITY} and {MAX_PRIORITY}"
        )));
    }
    if let Some(n) = step.max_attempts
        && !(1..=MAX_ATTEMPTS_PER_JOB).contains(&n)
    {
        return Err(problem(format!(
            "max_attempts must be between 1 and {MAX_ATTEMPTS_PER_JOB}"
        )));
    }
    if step.timeout_ms == Some(0) {
        return Err(problem("timeout_ms must be positive".into()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(steps: serde_json::Value) -> WorkflowSpec {
        serde_json::from_value(serde_json::json!({ "steps": steps })).unwrap()
    }

    #[test]
    fn a_diamond_is_valid() {
        let s = spec(serde_json::json!([
            {"name": "a", "plugin": "echo"},
            {"name": "b", "plugin": "echo", "depends_on": ["a"]},
            {"name": "c", "plugin": "echo", "depends_on": ["a"]},
            {"name": "d", "plugin": "echo", "depends_on": ["b", "c"]},
        ]));
        assert_eq!(s.validate(), Ok(()));
    }

    #[test]
    fn a_cycle_is_named_with_its_path() {
        let s = spec(serde_json::json!([
            {"name": "a", "plugin": "echo", "depends_on": ["c"]},
            {"name": "b", "plugin": "echo", "depends_on": ["a"]},
            {"name": "c", "plugin": "echo", "depends_on": ["b"]},
            {"name": "d", "plugin": "echo"},
        ]));
        let err = s.validate().unwrap_err();
        assert_eq!(
            err.to_string(),
            "the steps form a cycle: a -> b -> c -> a",
            "{err:?}"
        );
    }

    #[test]
    fn problems_are_named() {
        let cases = [
            (
                serde_json::json!([{"name": "a", "plugin": "echo", "depends_on": ["zz"]}]),
                "step `a` depends on `zz`, which is not a step of this workflow",
            ),
            (
                serde_json::json!([{"name": "a", "plugin": "echo"}, {"name": "a", "plugin": "echo"}]),
                "step `a` is defined twice",
            ),
            (
                serde_json::json!([{"name": "a", "plugin": "echo", "depends_on": ["a"]}]),
                "step `a` depends on itself",
            ),
            (
                serde_json::json!([{"name": "a", "plugin": "echo", "when": "input.["}]),
                "step `a`: when: ",
            ),
            (
                serde_json::json!([{"name": "a", "plugin": "echo", "max_parallel": 2}]),
                "step `a`: max_parallel needs for_each",
            ),
            (
                serde_json::json!([]),
                "a workflow needs 1 to 100 steps, got 0",
            ),
        ];
        for (steps, want) in cases {
            let err = spec(steps.clone()).validate().unwrap_err().to_string();
            assert!(err.starts_with(want), "{steps}: {err}");
        }
    }
}
