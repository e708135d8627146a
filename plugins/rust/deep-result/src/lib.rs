//! Hostile: returns arrays nested `depth` levels deep (`{"depth": 1000}`),
//! valid JSON that serde_json parses only to 128 levels and PostgreSQL's
//! jsonb not at all when deep enough. Must end as `invalid_result`.
use corral_sdk::Error;
use serde_json::Value;

fn deep(input: Value) -> Result<Value, Error> {
    let depth = input["depth"].as_u64().unwrap_or(1000);
    let mut value = Value::Null;
    for _ in 0..depth {
        value = Value::Array(vec![value]);
    }
    Ok(value)
}

corral_sdk::register!(deep);
