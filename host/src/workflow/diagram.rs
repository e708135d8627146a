//! A run as a Mermaid flowchart (`graph TD`): one node per step, labelled
//! with its name, plugin and state, styled by a class per state, and one
//! edge per dependency. Served by `GET /v1/workflow-runs/{id}/diagram`.

use std::fmt::Write as _;

use super::run::{StepState, WorkflowRun};

/// The style of each step state (`classDef`), in the order of
/// [`StepState::ALL`].
const CLASSES: [(StepState, &str); 6] = [
    (
        StepState::Pending,
        "fill:#f4f4f5,stroke:#a1a1aa,color:#3f3f46",
    ),
    (
        StepState::Running,
        "fill:#dbeafe,stroke:#2563eb,color:#1e3a8a",
    ),
    (
        StepState::Completed,
        "fill:#dcfce7,stroke:#16a34a,color:#14532d",
    ),
    (
        StepState::Failed,
        "fill:#fee2e2,stroke:#dc2626,color:#7f1d1d",
    ),
    (
        StepState::Skipped,
        "fill:#fef9c3,stroke:#ca8a04,color:#713f12,stroke-dasharray:4 2",
    ),
    (
        StepState::Cancelled,
        "fill:#e4e4e7,stroke:#52525b,color:#27272a",
    ),
];

/// The Mermaid text of a run. Node ids are `s0`, `s1`, … (a step may be
/// named like a Mermaid keyword, `end` for one); names appear in labels.
pub fn mermaid(run: &WorkflowRun) -> String {
    let mut out = String::from("graph TD\n");
    let index: std::collections::HashMap<&str, usize> = run
        .steps
        .iter()
        .enumerate()
        .map(|(i, s)| (s.name.as_str(), i))
        .collect();
    for (i, step) in run.steps.iter().enumerate() {
        let mut label = format!("{}<br/>{} v{}", step.name, step.plugin, step.version);
        match step.items {
            Some(count) => {
                let _ = write!(
                    label,
                    "<br/>{} · {}/{count} done",
                    step.state, step.items_done
                );
            }
            None => {
                let _ = write!(label, "<br/>{}", step.state);
            }
        }
        // Names and plugins are [a-z0-9_-]; states are fixed words: no
        // character here needs escaping inside a quoted label.
        let _ = writeln!(out, "    s{i}[\"{label}\"]");
    }
    for (i, step) in run.steps.iter().enumerate() {
        for dep in &step.depends_on {
            if let Some(d) = index.get(dep.as_str()) {
                let _ = writeln!(out, "    s{d} --> s{i}");
            }
        }
    }
    for (state, style) in CLASSES {
        let _ = writeln!(out, "    classDef {state} {style}");
    }
    for (state, _) in CLASSES {
        let members: Vec<String> = run
            .steps
            .iter()
            .enumerate()
            .filter(|(_, s)| s.state == state)
            .map(|(i, _)| format!("s{i}"))
            .collect();
        if !members.is_empty() {
            let _ = writeln!(out, "    class {} {state}", members.join(","));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workflow::OnFailure;
    use crate::workflow::run::{RunState, StepRun};

    fn step(name: &str, deps: &[&str], state: StepState, items: Option<u32>) -> StepRun {
        StepRun {
            name: name.into(),
            plugin: "echo".into(),
            version: 1,
            state,
            depends_on: deps.iter().map(|d| d.to_string()).collect(),
            on_failure: OnFailure::Halt,
            job_id: None,
            items,
            items_started: 0,
            items_done: 2,
            result: None,
            error: None,
            skipped_by: None,
            started_at: None,
            finished_at: None,
        }
    }

    #[test]
    fn a_diamond_with_states() {
        let run = WorkflowRun {
            id: uuid::Uuid::nil(),
            workflow: "w".into(),
            workflow_version: 1,
            state: RunState::Running,
            input: serde_json::json!({}),
            error: None,
            schedule: None,
            created_at: chrono::Utc::now(),
            finished_at: None,
            steps: vec![
                step("a", &[], StepState::Completed, None),
                step("end", &["a"], StepState::Running, Some(5)),
                step("c", &["a"], StepState::Skipped, None),
                step("d", &["end", "c"], StepState::Pending, None),
            ],
        };
        let text = mermaid(&run);
        assert!(text.starts_with("graph TD\n"), "{text}");
        assert!(
            text.contains("    s0[\"a<br/>echo v1<br/>completed\"]\n"),
            "{text}"
        );
        assert!(
            text.contains("    s1[\"end<br/>echo v1<br/>running · 2/5 done\"]\n"),
            "{text}"
        );
        for edge in ["s0 --> s1", "s0 --> s2", "s1 --> s3", "s2 --> s3"] {
            assert!(text.contains(edge), "{edge} in {text}");
        }
        assert!(text.contains("    class s0 completed\n"), "{text}");
        assert!(text.contains("    class s3 pending\n"), "{text}");
        assert!(text.contains("    classDef failed "), "{text}");
    }
}
