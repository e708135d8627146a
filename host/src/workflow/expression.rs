//! `when` and `for_each` expressions: JMESPath (the `jmespath` crate's
//! parser and functions), over the data
//! `{"input": <run input>, "steps": {<step>: <result>}}`, evaluated by the
//! bounded interpreter below.
//!
//! Why JMESPath and not a general expression language (CEL, evalexpr): a
//! JMESPath expression can only walk the data it is given and has no loops
//! of its own. That alone is not a bound: `[@,@][]` doubles its value, so
//! `input|[@,@][]|[@,@][]|…` of 200 bytes built gigabytes (and a tree of
//! shared parts, `[@,@]|[@,@]|…`, is small in memory yet exponential to
//! compare, serialize or flatten). So evaluation is charged: every value
//! made or touched costs a unit, every string byte made or compared a unit,
//! a value compared or passed to a function its whole (unshared) size, and
//! an evaluation stops with an error after [`MAX_EVALUATION_COST`] units.
//! Expression references (`&expr`: `map`, `sort_by`, `min_by`, `max_by`)
//! are refused, since the crate evaluates them outside this budget. Tenants
//! write these and the host evaluates them (after the transaction that made
//! a step ready, on a blocking thread: see `evaluator`), so the bound is
//! what keeps one tenant's expression from holding a host's CPU and memory.

use std::sync::Arc;

use jmespath::ast::Ast;
use jmespath::{Context, Rcvar, Variable};
use serde_json::Value;

/// Bytes of one expression. Bounds the parser's recursion (nesting) and the
/// interpreter's (one frame per node).
pub const MAX_EXPRESSION_BYTES: usize = 1024;

/// Cost units one evaluation may spend (see the module doc). A unit is a
/// value made or touched or a string byte; a million of them take a few
/// milliseconds and at most tens of megabytes, whatever the expression.
pub const MAX_EVALUATION_COST: u64 = 1_000_000;

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
        let compiled = jmespath::compile(text)
            .map_err(|e| format!("`{text}` is not a JMESPath expression: {}", e.reason))?;
        if has_expref(compiled.as_ast()) {
            return Err(format!(
                "`{text}` uses an expression reference (`&`, as in map, sort_by, min_by and max_by), which Corral does not evaluate"
            ));
        }
        Ok(Expression(compiled))
    }

    /// Evaluate over `data` within the budget.
    pub fn search(&self, data: &Arc<jmespath::Variable>) -> Result<Rcvar, String> {
        let mut budget = Budget::new(self.0.as_str());
        budget.eval(data, self.0.as_ast())
    }

    /// Evaluate and turn the value into JSON, charging its size.
    fn search_value(&self, data: &Arc<jmespath::Variable>) -> Result<(Rcvar, Budget<'_>), String> {
        let mut budget = Budget::new(self.0.as_str());
        let found = budget.eval(data, self.0.as_ast())?;
        Ok((found, budget))
    }
}

/// Whether an expression holds `&expr` anywhere.
fn has_expref(node: &Ast) -> bool {
    match node {
        Ast::Expref { .. } => true,
        Ast::Field { .. }
        | Ast::Identity { .. }
        | Ast::Literal { .. }
        | Ast::Index { .. }
        | Ast::Slice { .. } => false,
        Ast::Subexpr { lhs, rhs, .. }
        | Ast::Or { lhs, rhs, .. }
        | Ast::And { lhs, rhs, .. }
        | Ast::Comparison { lhs, rhs, .. }
        | Ast::Projection { lhs, rhs, .. } => has_expref(lhs) || has_expref(rhs),
        Ast::Condition {
            predicate, then, ..
        } => has_expref(predicate) || has_expref(then),
        Ast::Not { node, .. } | Ast::ObjectValues { node, .. } | Ast::Flatten { node, .. } => {
            has_expref(node)
        }
        Ast::MultiList { elements, .. } => elements.iter().any(has_expref),
        Ast::MultiHash { elements, .. } => elements.iter().any(|kv| has_expref(&kv.value)),
        Ast::Function { args, .. } => args.iter().any(has_expref),
    }
}

/// What one evaluation has left to spend.
struct Budget<'a> {
    expression: &'a str,
    left: u64,
}

impl<'a> Budget<'a> {
    fn new(expression: &'a str) -> Budget<'a> {
        Budget {
            expression,
            left: MAX_EVALUATION_COST,
        }
    }

    fn charge(&mut self, units: u64) -> Result<(), String> {
        match self.left.checked_sub(units) {
            Some(left) => {
                self.left = left;
                Ok(())
            }
            None => {
                self.left = 0;
                Err(format!(
                    "`{}` is too costly: it would make or touch more than {MAX_EVALUATION_COST} values (MAX_EVALUATION_COST)",
                    self.expression
                ))
            }
        }
    }

    /// Charge the whole size of `value`: its nodes and string bytes, a shared
    /// part counted each time it appears (as comparing or serializing it
    /// would walk it). Stops as soon as the budget runs out.
    fn weigh(&mut self, value: &Rcvar) -> Result<(), String> {
        let mut stack: Vec<&Variable> = vec![value];
        while let Some(v) = stack.pop() {
            match v {
                Variable::String(s) => self.charge(1 + s.len() as u64)?,
                Variable::Array(items) => {
                    self.charge(1)?;
                    stack.extend(items.iter().map(|i| &**i));
                }
                Variable::Object(map) => {
                    self.charge(1)?;
                    for (key, item) in map {
                        self.charge(key.len() as u64)?;
                        stack.push(item);
                    }
                }
                _ => self.charge(1)?,
            }
        }
        Ok(())
    }

    fn eval(&mut self, data: &Rcvar, node: &Ast) -> Result<Rcvar, String> {
        self.charge(1)?;
        let null = || Rcvar::new(Variable::Null);
        Ok(match node {
            Ast::Field { name, .. } => data.get_field(name),
            Ast::Identity { .. } => data.clone(),
            Ast::Literal { value, .. } => value.clone(),
            Ast::Index { idx, .. } => {
                if *idx >= 0 {
                    data.get_index(*idx as usize)
                } else {
                    data.get_negative_index(idx.unsigned_abs() as usize)
                }
            }
            Ast::Subexpr { lhs, rhs, .. } => {
                let left = self.eval(data, lhs)?;
                self.eval(&left, rhs)?
            }
            Ast::Or { lhs, rhs, .. } => {
                let left = self.eval(data, lhs)?;
                if left.is_truthy() {
                    left
                } else {
                    self.eval(data, rhs)?
                }
            }
            Ast::And { lhs, rhs, .. } => {
                let left = self.eval(data, lhs)?;
                if !left.is_truthy() {
                    left
                } else {
                    self.eval(data, rhs)?
                }
            }
            Ast::Not { node, .. } => {
                Rcvar::new(Variable::Bool(!self.eval(data, node)?.is_truthy()))
            }
            Ast::Condition {
                predicate, then, ..
            } => {
                if self.eval(data, predicate)?.is_truthy() {
                    self.eval(data, then)?
                } else {
                    null()
                }
            }
            Ast::Comparison {
                comparator,
                lhs,
                rhs,
                ..
            } => {
                let left = self.eval(data, lhs)?;
                let right = self.eval(data, rhs)?;
                // Equality walks both values.
                self.weigh(&left)?;
                self.weigh(&right)?;
                left.compare(comparator, &right)
                    .map_or_else(null, |result| Rcvar::new(Variable::Bool(result)))
            }
            Ast::ObjectValues { node, .. } => match &*self.eval(data, node)? {
                Variable::Object(map) => {
                    self.charge(map.len() as u64)?;
                    Rcvar::new(Variable::Array(map.values().cloned().collect()))
                }
                _ => null(),
            },
            Ast::Projection { lhs, rhs, .. } => match self.eval(data, lhs)?.as_array() {
                None => null(),
                Some(left) => {
                    self.charge(left.len() as u64)?;
                    let mut collected = Vec::new();
                    for element in left {
                        let current = self.eval(element, rhs)?;
                        if !current.is_null() {
                            collected.push(current);
                        }
                    }
                    Rcvar::new(Variable::Array(collected))
                }
            },
            Ast::Flatten { node, .. } => match self.eval(data, node)?.as_array() {
                None => null(),
                Some(items) => {
                    let size: usize = items
                        .iter()
                        .map(|item| item.as_array().map_or(1, Vec::len))
                        .sum();
                    self.charge(size as u64)?;
                    let mut collected = Vec::with_capacity(size);
                    for item in items {
                        match item.as_array() {
                            Some(inner) => collected.extend(inner.iter().cloned()),
                            None => collected.push(item.clone()),
                        }
                    }
                    Rcvar::new(Variable::Array(collected))
                }
            },
            Ast::MultiList { elements, .. } => {
                if data.is_null() {
                    null()
                } else {
                    self.charge(elements.len() as u64)?;
                    let mut collected = Vec::with_capacity(elements.len());
                    for node in elements {
                        collected.push(self.eval(data, node)?);
                    }
                    Rcvar::new(Variable::Array(collected))
                }
            }
            Ast::MultiHash { elements, .. } => {
                if data.is_null() {
                    null()
                } else {
                    self.charge(elements.len() as u64)?;
                    let mut collected = std::collections::BTreeMap::new();
                    for pair in elements {
                        collected.insert(pair.key.clone(), self.eval(data, &pair.value)?);
                    }
                    Rcvar::new(Variable::Object(collected))
                }
            }
            Ast::Function { name, args, offset } => {
                let mut values = Vec::with_capacity(args.len());
                for arg in args {
                    let value = self.eval(data, arg)?;
                    // Every builtin is linear in its arguments' size but
                    // `sort` (n log n, charged twice below).
                    self.weigh(&value)?;
                    values.push(value);
                }
                if name == "sort" {
                    for value in &values {
                        self.weigh(value)?;
                    }
                }
                let runtime = &*jmespath::DEFAULT_RUNTIME;
                let function = runtime
                    .get_function(name)
                    .ok_or_else(|| format!("`{}`: no function `{name}`", self.expression))?;
                let mut ctx = Context::new(self.expression, runtime);
                ctx.offset = *offset;
                let made = function
                    .evaluate(&values, &mut ctx)
                    .map_err(|e| format!("`{}` failed: {}", self.expression, e.reason))?;
                // What it made (`join`, `to_string` make new strings).
                self.weigh(&made)?;
                made
            }
            Ast::Expref { .. } => {
                return Err(format!(
                    "`{}`: expression references are not evaluated",
                    self.expression
                ));
            }
            Ast::Slice {
                start, stop, step, ..
            } => {
                if *step == 0 {
                    return Err(format!("`{}`: a slice's step cannot be 0", self.expression));
                }
                match data.slice(*start, *stop, *step) {
                    Some(items) => {
                        self.charge(items.len() as u64)?;
                        Rcvar::new(Variable::Array(items))
                    }
                    None => null(),
                }
            }
        })
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
    let compiled = Expression::compile(expression)?;
    let (found, mut budget) = compiled.search_value(data)?;
    if !found.is_array() {
        return Err(format!(
            "`{expression}` gave {}, not an array",
            found.get_type()
        ));
    }
    // Turning it into JSON walks the whole value.
    budget.weigh(&found)?;
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

    #[test]
    fn doubling_runs_out_of_budget_instead_of_memory() {
        let d = data(&json!({"input": [1]})).unwrap();
        // Flattened: the array doubles at every step.
        let flat = format!("input{}", "|[@,@][]".repeat(100));
        let err = elements(&flat, &d).unwrap_err();
        assert!(err.contains("too costly"), "{err}");
        // Shared: small in memory, exponential to walk.
        let shared = format!("input{}", "|[@,@]".repeat(100));
        let half = format!("input{}", "|[@,@]".repeat(50));
        let err = is_true(&format!("({half}) == ({half})"), &d).unwrap_err();
        assert!(err.contains("too costly"), "{err}");
        let err = elements(&shared, &d).unwrap_err();
        assert!(err.contains("too costly"), "{err}");
        let err = is_true(&format!("length(to_string({shared}))"), &d).unwrap_err();
        assert!(err.contains("too costly"), "{err}");
        // Strings double too.
        let strings = format!("'ab'{}", "|join('', [@,@])".repeat(40));
        let err = is_true(&strings, &d).unwrap_err();
        assert!(err.contains("too costly"), "{err}");
        // A few doublings stay well within it.
        let few = format!("input{}", "|[@,@][]".repeat(10));
        assert_eq!(elements(&few, &d).unwrap().len(), 1024);
    }

    #[test]
    fn expression_references_are_refused() {
        let err = Expression::compile("sort_by(input.items, &n)")
            .err()
            .unwrap();
        assert!(err.contains("expression reference"), "{err}");
        let d = data(&json!({"input": {"items": [3, 1, 2]}})).unwrap();
        assert_eq!(
            elements("sort(input.items)", &d).unwrap(),
            vec![json!(1), json!(2), json!(3)]
        );
        assert!(
            is_true(
                "contains(input.items, `2`) && length(input.items) == `3`",
                &d
            )
            .unwrap()
        );
    }
}
