//! `when` and `for_each` expressions: JMESPath (the `jmespath` crate), over
//! the data `{"input": <run input>, "steps": {<step>: <result>}}`.
//!
//! Why JMESPath and not a general expression language (CEL, evalexpr): a
//! JMESPath expression can only walk the data it is given, and inside a
//! projection it sees only the current element, so its cost is bounded by
//! the expression's size times the data's size. Tenants write these and the
//! host evaluates them inside the transaction that advances a run; a
//! language with nested comprehensions over the same list (CEL's `map`
//! inside `map`) would let one expression take hours.

use std::sync::Arc;

use serde_json::Value;

/// Bytes of one expression. Bounds the parser's recursion (nesting) and the
/// evaluation's cost, which is linear in the expression's size.
pub const MAX_EXPRESSION_BYTES: usize = 1024;

/// A compiled JMESPath expression.
pub struct Expression(jmespath::Expression<'static>);

impl Expression {
    pub fn compile(text: &str) -> Result<Expression, String> {
        if text.len() > MAX_EXPRESSION_BYTES {
            return Err(format!(
                "the expression is {} bytes; the limit is {MAX_EXPRESSION_BYTES}",
                text.len()
            ));
        }
        if text.trim().is_empty() {
            return Err("the expression is empty".into());
        }
        jmespath::compile(text)
            .map(Expression)
            .map_err(|e| format!("`{text}` is not a JMESPath expression: {}", e.reason))
    }

    /// Evaluate over `data`.
    pub fn search(
        &self,
        data: &Arc<jmespath::Variable>,
    ) -> Result<Arc<jmespath::Variable>, String> {
        self.0
            .search(data.clone())
            .map_err(|e| format!("`{}` failed: {}", self.0.as_str(), e.reason))
    }
}

/// The data expressions see, ready to search.
pub fn data(value: &Value) -> Result<Arc<jmespath::Variable>, String> {
    jmespath::Variable::from_serializable(value)
        .map(Arc::new)
        .map_err(|e| format!("the data is not JSON: {}", e.reason))
}

/// A condition: true when the expression's value is truthy (JMESPath's
/// rule: false, null, empty strings, arrays and objects are false).
pub fn is_true(expression: &str, data: &Arc<jmespath::Variable>) -> Result<bool, String> {
    Ok(Expression::compile(expression)?.search(data)?.is_truthy())
}

/// The elements a `for_each` expression gives; an error when it is not an array.
pub fn elements(expression: &str, data: &Arc<jmespath::Variable>) -> Result<Vec<Value>, String> {
    let found = Expression::compile(expression)?.search(data)?;
    if !found.is_array() {
        return Err(format!(
            "`{expression}` gave {}, not an array",
            found.get_type()
        ));
    }
    match serde_json::to_value(&*found) {
        Ok(Value::Array(items)) => Ok(items),
        Ok(_) => Err(format!("`{expression}` did not give an array")),
        Err(e) => Err(format!("`{expression}` gave a value that is not JSON: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn conditions_and_elements() {
        let d = data(
            &json!({"input": {"n": 150, "items": [1, 2]}, "steps": {"check-it": {"ok": true}}}),
        )
        .unwrap();
        assert!(is_true("input.n > `100`", &d).unwrap());
        assert!(is_true("steps.\"check-it\".ok", &d).unwrap());
        assert!(!is_true("steps.missing", &d).unwrap());
        assert_eq!(
            elements("input.items", &d).unwrap(),
            vec![json!(1), json!(2)]
        );
        let err = elements("input.n", &d).unwrap_err();
        assert!(err.contains("number, not an array"), "{err}");
    }

    #[test]
    fn deep_nesting_within_the_bound_compiles_on_a_small_stack() {
        // Tokio's worker threads have 2 MiB stacks: the largest expression
        // allowed must parse and run there.
        let depth = (MAX_EXPRESSION_BYTES - "input".len()) / 2;
        let text = format!("{}input{}", "(".repeat(depth), ")".repeat(depth));
        std::thread::Builder::new()
            .stack_size(2 * 1024 * 1024)
            .spawn(move || {
                let d = data(&json!({"input": true})).unwrap();
                assert!(is_true(&text, &d).unwrap());
            })
            .unwrap()
            .join()
            .unwrap();
        assert!(Expression::compile(&"a".repeat(MAX_EXPRESSION_BYTES + 1)).is_err());
    }
}
