//! Typed settings, validated once at start with errors that name the setting.

use chrono_tz::Tz;

use crate::model::period::zone_has_whole_hour_offsets;

#[derive(Debug, thiserror::Error)]
#[error("{name}: {message}")]
pub struct ConfigError {
    pub name: String,
    pub message: String,
}

/// Parses a reporting time zone. Days of the reporting zone are composed of UTC hours, so the zone
/// must keep whole-hour offsets.
pub fn parse_reporting_tz(name: &str, value: &str) -> Result<Tz, ConfigError> {
    let tz: Tz = value.parse().map_err(|_| ConfigError {
        name: name.to_string(),
        message: format!("{value:?} is not an IANA time zone name (for example UTC or Asia/Seoul)"),
    })?;
    if !zone_has_whole_hour_offsets(tz) {
        return Err(ConfigError {
            name: name.to_string(),
            message: format!(
                "{value} is not a whole number of hours from UTC; choose a zone that is"
            ),
        });
    }
    Ok(tz)
}

/// Reads a required environment variable.
pub(crate) fn required_env(name: &str) -> Result<String, ConfigError> {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => Ok(v),
        Ok(_) => Err(ConfigError {
            name: name.into(),
            message: "is set but empty".into(),
        }),
        Err(_) => Err(ConfigError {
            name: name.into(),
            message: "is required but not set".into(),
        }),
    }
}

/// Reads an optional whole number of days, above zero; `default` when unset.
pub(crate) fn positive_days(name: &str, default: i64) -> Result<i64, ConfigError> {
    match optional_env(name) {
        None => Ok(default),
        Some(v) => v
            .trim()
            .parse()
            .ok()
            .filter(|d| *d > 0)
            .ok_or_else(|| ConfigError {
                name: name.into(),
                message: format!("{v:?} is not a positive whole number of days"),
            }),
    }
}

/// Reads an optional size in MiB (a positive number, fractions allowed) as bytes; the rollup's
/// default piece of work when unset.
pub(crate) fn shard_bytes(name: &str) -> Result<u64, ConfigError> {
    match optional_env(name) {
        None => Ok(crate::rollup::DEFAULT_SHARD_BYTES),
        Some(v) => parse_mib(&v).map_err(|message| ConfigError {
            name: name.into(),
            message,
        }),
    }
}

/// A positive number of MiB as bytes (at least one).
pub fn parse_mib(v: &str) -> Result<u64, String> {
    match v.trim().parse::<f64>() {
        Ok(mib) if mib > 0.0 && mib.is_finite() => Ok(((mib * 1048576.0) as u64).max(1)),
        _ => Err(format!("{v:?} is not a positive number of MiB")),
    }
}

/// Reads an optional environment variable; empty counts as unset.
pub(crate) fn optional_env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

#[cfg(test)]
mod tests {
    #[test]
    fn errors_name_the_setting() {
        let e = super::parse_reporting_tz("TALLY_REPORTING_TZ", "Mars/Olympus").unwrap_err();
        assert!(e.to_string().starts_with("TALLY_REPORTING_TZ: "));
        let e = super::parse_reporting_tz("TALLY_REPORTING_TZ", "Asia/Kolkata").unwrap_err();
        assert!(e.to_string().contains("whole number of hours"));
        assert_eq!(
            super::parse_reporting_tz("X", "Asia/Seoul").unwrap().name(),
            "Asia/Seoul"
        );
        assert_eq!(super::parse_mib("32"), Ok(32 << 20));
        assert_eq!(super::parse_mib("0.001"), Ok(1048));
        for bad in ["0", "-1", "lots", "inf", ""] {
            assert!(super::parse_mib(bad).is_err(), "{bad}");
        }
    }
}
