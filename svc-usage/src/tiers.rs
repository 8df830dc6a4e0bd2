//! Tier limits: one JSON file shipped with the crate (`tiers.json`), replaceable at start-up by
//! `USAGE_TIERS_PATH`. `-1` means unlimited. An operation is a monthly counter unless the file
//! lists it among its `gauges`: standing counts (`platforms`, the creator profiles connected),
//! taken and released rather than consumed, never reset by a billing cycle.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::error::UsageError;

pub const SHIPPED: &str = include_str!("../tiers.json");
pub const UNLIMITED: i64 = -1;

#[derive(Debug, Clone, Deserialize)]
pub struct Tier {
    pub price_usd: u32,
    pub seats: u32,
    pub limits: BTreeMap<String, i64>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Tiers {
    /// Every billable operation, in the order reports list them.
    pub operations: Vec<String>,
    /// The operations (of `operations`) that are standing gauges; required, `[]` for none, so
    /// that a file written before gauges existed stops start-up instead of counting `platforms`
    /// monthly.
    pub gauges: Vec<String>,
    pub tiers: BTreeMap<String, Tier>,
}

impl Tiers {
    /// Parses and checks a tier file: every tier names a limit (≥ -1) for every operation.
    pub fn parse(json: &str) -> Result<Self, String> {
        let tiers: Self =
            serde_json::from_str(json).map_err(|err| format!("not a valid tier file: {err}"))?;
        if tiers.operations.is_empty() || tiers.tiers.is_empty() {
            return Err("the tier file lists no operations or no tiers".into());
        }
        for (index, gauge) in tiers.gauges.iter().enumerate() {
            if !tiers.operations.contains(gauge) {
                return Err(format!(
                    "gauges lists {gauge}, which is not a listed operation"
                ));
            }
            if tiers.gauges[..index].contains(gauge) {
                return Err(format!("gauges lists {gauge} twice"));
            }
        }
        for (name, tier) in &tiers.tiers {
            for operation in &tiers.operations {
                match tier.limits.get(operation) {
                    Some(limit) if *limit >= UNLIMITED => {}
                    Some(_) => {
                        return Err(format!("tier {name}: the limit of {operation} is below -1"));
                    }
                    None => return Err(format!("tier {name} has no limit for {operation}")),
                }
            }
            if let Some(extra) = tier.limits.keys().find(|op| !tiers.operations.contains(op)) {
                return Err(format!(
                    "tier {name} limits {extra}, which is not a listed operation"
                ));
            }
        }
        Ok(tiers)
    }

    /// The tier file shipped with svc-usage (a test checks that it parses).
    pub fn shipped() -> Result<Self, String> {
        Self::parse(SHIPPED)
            .map_err(|problem| format!("the tier file shipped with svc-usage: {problem}"))
    }

    pub fn check_operation(&self, operation: &str) -> Result<(), UsageError> {
        if self.operations.iter().any(|known| known == operation) {
            Ok(())
        } else {
            Err(UsageError::invalid(
                "operation",
                format!("operation must be one of {}", self.operations.join(", ")),
            ))
        }
    }

    pub fn tier(&self, tier: &str) -> Result<&Tier, UsageError> {
        self.tiers.get(tier).ok_or_else(|| {
            let known: Vec<&str> = self.tiers.keys().map(String::as_str).collect();
            UsageError::invalid("tier", format!("tier must be one of {}", known.join(", ")))
        })
    }

    /// The limit of `operation` in `tier`; both must be known.
    pub fn limit(&self, tier: &str, operation: &str) -> Result<i64, UsageError> {
        self.check_operation(operation)?;
        Ok(self.tier(tier)?.limits[operation])
    }

    /// Whether `operation` is a standing gauge rather than a monthly counter.
    pub fn is_gauge(&self, operation: &str) -> bool {
        self.gauges.iter().any(|gauge| gauge == operation)
    }

    /// [`Self::limit`] of an operation that is consumed per cycle: a gauge is refused, naming
    /// `operation`.
    pub fn counter_limit(&self, tier: &str, operation: &str) -> Result<i64, UsageError> {
        let limit = self.limit(tier, operation)?;
        if self.is_gauge(operation) {
            return Err(UsageError::Gauge(operation.to_owned()));
        }
        Ok(limit)
    }

    /// `operation` must be a gauge; any other is refused, naming `operation`.
    pub fn check_gauge(&self, operation: &str) -> Result<(), UsageError> {
        self.check_operation(operation)?;
        if self.is_gauge(operation) {
            Ok(())
        } else {
            Err(UsageError::invalid(
                "operation",
                format!(
                    "{operation} is counted per billing cycle, not held; the gauges are: {}",
                    self.gauges.join(", ")
                ),
            ))
        }
    }

    /// [`Self::limit`] of a gauge: any other operation is refused, naming `operation`.
    pub fn gauge_limit(&self, tier: &str, operation: &str) -> Result<i64, UsageError> {
        self.check_gauge(operation)?;
        self.limit(tier, operation)
    }
}

/// What is left of `limit` after `used` (`-1` stays unlimited).
pub fn remaining(limit: i64, used: i64) -> i64 {
    if limit == UNLIMITED {
        UNLIMITED
    } else {
        (limit - used).max(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_file_matches_the_design_table() {
        let tiers = Tiers::shipped().unwrap();
        assert_eq!(tiers.limit("starter", "captions").unwrap(), 3);
        assert_eq!(tiers.limit("creator", "captions").unwrap(), 50);
        assert_eq!(tiers.limit("pro", "taxonomy_ai").unwrap(), 500);
        assert_eq!(tiers.limit("starter", "ai_media_ops").unwrap(), 5);
        assert_eq!(tiers.limit("studio", "captions").unwrap(), UNLIMITED);
        assert_eq!(tiers.limit("studio", "platforms").unwrap(), 9);
        assert_eq!(tiers.tiers["studio"].price_usd, 499);
        assert_eq!(tiers.tiers["studio"].seats, 5);
        assert_eq!(tiers.gauges, ["platforms"]);
        assert!(tiers.is_gauge("platforms") && !tiers.is_gauge("captions"));
    }

    #[test]
    fn gauges_and_counters_are_not_taken_for_each_other() {
        let tiers = Tiers::shipped().unwrap();
        let refused = |err: UsageError| {
            let err = common::ApiError::from(err);
            (err.reason.into_owned(), err.field)
        };
        assert_eq!(tiers.gauge_limit("creator", "platforms").unwrap(), 3);
        assert_eq!(tiers.counter_limit("creator", "captions").unwrap(), 50);
        assert_eq!(
            refused(tiers.counter_limit("creator", "platforms").unwrap_err()),
            (
                "operation_is_a_gauge".to_owned(),
                Some("operation".to_owned())
            )
        );
        assert_eq!(
            refused(tiers.gauge_limit("creator", "captions").unwrap_err()),
            ("invalid_body".to_owned(), Some("operation".to_owned()))
        );
        assert_eq!(
            refused(tiers.gauge_limit("creator", "dance").unwrap_err()).1,
            Some("operation".to_owned())
        );
    }

    #[test]
    fn unknown_names_are_errors_naming_the_field() {
        let tiers = Tiers::shipped().unwrap();
        let field = |err: UsageError| common::ApiError::from(err).field;
        assert_eq!(
            field(tiers.limit("gold", "captions").unwrap_err()).as_deref(),
            Some("tier")
        );
        assert_eq!(
            field(tiers.limit("pro", "dance").unwrap_err()).as_deref(),
            Some("operation")
        );
    }

    #[test]
    fn incomplete_or_wrong_files_are_refused() {
        assert!(Tiers::parse("{").is_err());
        assert!(
            Tiers::parse(
                r#"{"operations":["a"],"gauges":[],"tiers":{"t":{"price_usd":0,"seats":1,"limits":{}}}}"#
            )
            .is_err()
        );
        assert!(
            Tiers::parse(
                r#"{"operations":["a"],"gauges":[],"tiers":{"t":{"price_usd":0,"seats":1,"limits":{"a":-2}}}}"#
            )
            .is_err()
        );
        assert!(Tiers::parse(r#"{"operations":["a"],"gauges":[],"tiers":{"t":{"price_usd":0,"seats":1,"limits":{"a":1,"b":2}}}}"#).is_err());
        assert!(
            Tiers::parse(
                r#"{"operations":["a"],"gauges":[],"tiers":{"t":{"price_usd":0,"seats":1,"limits":{"a":-1}}}}"#
            )
            .is_ok()
        );
        let limits = r#""tiers":{"t":{"price_usd":0,"seats":1,"limits":{"a":1,"b":1}}}"#;
        let file = |gauges: &str| format!(r#"{{"operations":["a","b"],{gauges}{limits}}}"#);
        assert!(
            Tiers::parse(&file("")).is_err(),
            "a file must say which operations are gauges"
        );
        assert!(
            Tiers::parse(&file(r#""gauges":["c"],"#)).is_err(),
            "an unknown gauge"
        );
        assert!(
            Tiers::parse(&file(r#""gauges":["b","b"],"#)).is_err(),
            "a gauge twice"
        );
        let parsed = Tiers::parse(&file(r#""gauges":["b"],"#)).unwrap();
        assert!(parsed.is_gauge("b") && !parsed.is_gauge("a"));
    }

    #[test]
    fn remaining_never_goes_negative_and_unlimited_stays_unlimited() {
        assert_eq!(remaining(5, 3), 2);
        assert_eq!(remaining(5, 7), 0);
        assert_eq!(remaining(UNLIMITED, 1_000), UNLIMITED);
    }
}
