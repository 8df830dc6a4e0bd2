//! Configuration from environment variables, parsed once at start-up into typed structs.
//!
//! A bad value stops start-up with a message naming the variable. Values are never echoed back,
//! because some of them are secrets.

use std::fmt::Display;
use std::str::FromStr;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
#[error("configuration variable {variable}: {problem}")]
pub struct ConfigError {
    pub variable: String,
    pub problem: String,
}

impl ConfigError {
    pub fn new(variable: &str, problem: impl Into<String>) -> Self {
        Self {
            variable: variable.to_owned(),
            problem: problem.into(),
        }
    }
}

fn raw(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .filter(|value| !value.trim().is_empty())
}

fn parse<T>(name: &str, value: &str) -> Result<T, ConfigError>
where
    T: FromStr,
    T::Err: Display,
{
    value
        .trim()
        .parse()
        .map_err(|err| ConfigError::new(name, format!("cannot parse the value: {err}")))
}

/// The variable's value, or `default` when it is unset or empty.
pub fn var<T>(name: &str, default: T) -> Result<T, ConfigError>
where
    T: FromStr,
    T::Err: Display,
{
    raw(name).map_or(Ok(default), |value| parse(name, &value))
}

/// The variable's value, or `None` when it is unset or empty.
pub fn optional<T>(name: &str) -> Result<Option<T>, ConfigError>
where
    T: FromStr,
    T::Err: Display,
{
    raw(name).map(|value| parse(name, &value)).transpose()
}

/// The variable's value; unset or empty stops start-up.
pub fn required<T>(name: &str) -> Result<T, ConfigError>
where
    T: FromStr,
    T::Err: Display,
{
    let value = raw(name).ok_or_else(|| ConfigError::new(name, "is required but not set"))?;
    parse(name, &value)
}

/// A duration given in milliseconds.
pub fn millis(name: &str, default_ms: u64) -> Result<Duration, ConfigError> {
    var(name, default_ms).map(Duration::from_millis)
}

/// A comma-separated list; empty items are dropped.
pub fn list(name: &str) -> Vec<String> {
    raw(name)
        .map(|value| {
            value
                .split(',')
                .map(str::trim)
                .filter(|item| !item.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// A secret of at least `min_len` bytes; its value never appears in an error.
pub fn secret(name: &str, min_len: usize) -> Result<crate::secret::Secret, ConfigError> {
    let value: String = required(name)?;
    if value.len() < min_len {
        return Err(ConfigError::new(
            name,
            format!("must be at least {min_len} bytes long"),
        ));
    }
    Ok(crate::secret::Secret::new(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_error_names_the_variable_and_hides_the_value() {
        let err = parse::<u16>("GATEWAY_PORT", "hunter2").unwrap_err();
        let shown = err.to_string();
        assert!(shown.contains("GATEWAY_PORT"), "{shown}");
        assert!(!shown.contains("hunter2"), "{shown}");
    }

    #[test]
    fn parses_typed_values() {
        assert_eq!(parse::<u16>("X", " 3001 ").unwrap(), 3001);
        assert!(parse::<bool>("X", "yes").is_err());
    }
}
