//! Request params as OpenClaw validates them: closed objects, typed fields,
//! and errors worded as its schema validator words them
//! (`invalid <method> params: at /limit: must be integer`).

use serde_json::{Map, Value};

use super::super::frames::ErrorShape;

static EMPTY: std::sync::LazyLock<Map<String, Value>> = std::sync::LazyLock::new(Map::new);

pub struct Params<'a> {
    method: &'a str,
    object: &'a Map<String, Value>,
}

impl<'a> Params<'a> {
    /// Params that must be an object (or absent) with only `allowed` keys.
    pub fn closed(
        method: &'a str,
        params: Option<&'a Value>,
        allowed: &[&str],
    ) -> Result<Params<'a>, ErrorShape> {
        let object = match params {
            None | Some(Value::Null) => &*EMPTY,
            Some(Value::Object(object)) => object,
            Some(_) => {
                return Err(ErrorShape::invalid(format!(
                    "invalid {method} params: must be object"
                )));
            }
        };
        let params = Params { method, object };
        if let Some(key) = object.keys().find(|key| !allowed.contains(&key.as_str())) {
            return Err(params.invalid(format!(
                "must NOT have additional properties (unexpected property '{key}')"
            )));
        }
        Ok(params)
    }

    /// Params that must be an object (or absent), any keys allowed (the
    /// few methods OpenClaw declares open).
    pub fn open(method: &'a str, params: Option<&'a Value>) -> Result<Params<'a>, ErrorShape> {
        Params::closed(method, params, &[]).or_else(|error| match params {
            Some(Value::Object(object)) => Ok(Params { method, object }),
            _ => Err(error),
        })
    }

    pub fn invalid(&self, detail: impl std::fmt::Display) -> ErrorShape {
        ErrorShape::invalid(format!("invalid {} params: {detail}", self.method))
    }

    pub fn get(&self, key: &str) -> Option<&'a Value> {
        self.object.get(key).filter(|value| !value.is_null())
    }

    /// Whether the key is present at all, `null` included (a request to
    /// clear, where [`Params::get`] sees nothing).
    pub fn has(&self, key: &str) -> bool {
        self.object.contains_key(key)
    }

    pub fn str(&self, key: &str) -> Result<&'a str, ErrorShape> {
        self.opt_str(key)?
            .ok_or_else(|| self.invalid(format!("must have required property '{key}'")))
    }

    pub fn opt_str(&self, key: &str) -> Result<Option<&'a str>, ErrorShape> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(text)) => Ok(Some(text)),
            Some(_) => Err(self.invalid(format!("at /{key}: must be string"))),
        }
    }

    pub fn opt_u64(&self, key: &str) -> Result<Option<u64>, ErrorShape> {
        match self.get(key) {
            None => Ok(None),
            Some(value) => value
                .as_u64()
                .map(Some)
                .ok_or_else(|| self.invalid(format!("at /{key}: must be integer >= 0"))),
        }
    }

    pub fn opt_bool(&self, key: &str) -> Result<Option<bool>, ErrorShape> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Bool(flag)) => Ok(Some(*flag)),
            Some(_) => Err(self.invalid(format!("at /{key}: must be boolean"))),
        }
    }

    /// An optional array of strings.
    pub fn opt_strings(&self, key: &str) -> Result<Option<Vec<&'a str>>, ErrorShape> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Array(items)) if items.iter().all(Value::is_string) => {
                Ok(Some(items.iter().filter_map(Value::as_str).collect()))
            }
            Some(_) => Err(self.invalid(format!("at /{key}: must be array of strings"))),
        }
    }

    /// An optional string that must be one of `allowed`.
    pub fn opt_choice(&self, key: &str, allowed: &[&str]) -> Result<Option<&'a str>, ErrorShape> {
        match self.opt_str(key)? {
            Some(choice) if !allowed.contains(&choice) => Err(self.invalid(format!(
                "at /{key}: must be equal to one of the allowed values ({})",
                allowed.join(", ")
            ))),
            choice => Ok(choice),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn params_are_closed_and_typed() {
        let value = json!({"raw": "{}", "limit": 5, "flag": true});
        let params = Params::closed("m", Some(&value), &["raw", "limit", "flag"]).unwrap();
        assert_eq!(params.str("raw").unwrap(), "{}");
        assert_eq!(params.opt_u64("limit").unwrap(), Some(5));
        assert_eq!(params.opt_bool("flag").unwrap(), Some(true));
        assert_eq!(
            params.str("missing").unwrap_err().message,
            "invalid m params: must have required property 'missing'"
        );
        assert!(
            params
                .opt_str("limit")
                .unwrap_err()
                .message
                .contains("at /limit: must be string")
        );
        let error = Params::closed("m", Some(&value), &["raw"]).err().unwrap();
        assert!(
            error.message.contains("unexpected property 'flag'"),
            "{}",
            error.message
        );
        assert!(Params::closed("m", Some(&json!([])), &[]).is_err());
        assert!(Params::closed("m", None, &[]).is_ok());
        let value = json!({"list": ["a", "b"], "mixed": ["a", 1]});
        let params = Params::closed("m", Some(&value), &["list", "mixed"]).unwrap();
        assert_eq!(params.opt_strings("list").unwrap(), Some(vec!["a", "b"]));
        assert_eq!(params.opt_strings("absent").unwrap(), None);
        assert_eq!(
            params.opt_strings("mixed").unwrap_err().message,
            "invalid m params: at /mixed: must be array of strings"
        );
    }
}
