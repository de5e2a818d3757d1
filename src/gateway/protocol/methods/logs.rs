//! `logs.tail`: pages of the gateway's diagnostic log, by byte cursor, as
//! `openclaw logs` (and `--follow`) reads them.

use serde_json::{Value, json};

use super::super::frames::{ErrorShape, codes};
use super::Params;
use crate::gateway::Gateway;

const LIMIT_DEFAULT: u64 = 500;
const LIMIT_MAX: u64 = 5_000;
const MAX_BYTES_DEFAULT: u64 = 250_000;
const MAX_BYTES_MAX: u64 = 1_000_000;

pub fn tail(gateway: &Gateway, params: Option<&Value>) -> Result<Value, ErrorShape> {
    let params = Params::closed("logs.tail", params, &["cursor", "limit", "maxBytes"])?;
    let cursor = params.opt_u64("cursor")?;
    let limit = params.opt_u64("limit")?.unwrap_or(LIMIT_DEFAULT);
    if !(1..=LIMIT_MAX).contains(&limit) {
        return Err(params.invalid(format!("at /limit: must be between 1 and {LIMIT_MAX}")));
    }
    let max_bytes = params.opt_u64("maxBytes")?.unwrap_or(MAX_BYTES_DEFAULT);
    if !(1..=MAX_BYTES_MAX).contains(&max_bytes) {
        return Err(params.invalid(format!(
            "at /maxBytes: must be between 1 and {MAX_BYTES_MAX}"
        )));
    }
    let tail = gateway
        .logs
        .tail(cursor, limit as usize, max_bytes)
        .map_err(|error| {
            ErrorShape::new(
                codes::UNAVAILABLE,
                format!("cannot read the log file: {error}"),
            )
        })?;
    let mut answer = json!({
        "file": tail.file.display().to_string(),
        "cursor": tail.cursor,
        "size": tail.size,
        "lines": tail.lines,
    });
    if tail.truncated {
        answer["truncated"] = json!(true);
    }
    if tail.reset {
        answer["reset"] = json!(true);
    }
    Ok(answer)
}
