//! `cron_restart`'s schedule: PM2's cron syntax (5 fields, or 6 with seconds first;
//! `@daily` and the other nicknames), in local time, through the croner crate. Pure:
//! the supervisor sleeps until [`next_after`] and reloads the app.

use chrono::{DateTime, Local};
use croner::Cron;
use croner::parser::{CronParser, Seconds};

/// The expression, parsed; the error is one line for the config's message.
pub fn parse(expr: &str) -> Result<Cron, String> {
    let expr = expr.trim();
    let fields = expr.split_whitespace().count();
    if !expr.starts_with('@') && !(5..=6).contains(&fields) {
        return Err(format!(
            "{expr:?} has {fields} fields; a cron expression has 5 (minute hour day month weekday) or 6 (seconds first)"
        ));
    }
    CronParser::builder()
        .seconds(Seconds::Optional)
        .build()
        .parse(expr)
        .map_err(|e| format!("{expr:?} is not a cron expression: {e}"))
}

/// The first time after `t` the expression names, if any.
pub fn next_after(cron: &Cron, t: DateTime<Local>) -> Option<DateTime<Local>> {
    cron.find_next_occurrence(&t, false).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Timelike};

    #[test]
    fn five_and_six_fields_and_nicknames() {
        let t = Local.with_ymd_and_hms(2026, 12, 5, 10, 20, 30).unwrap();
        let at = |e: &str| next_after(&parse(e).unwrap(), t).unwrap();
        assert_eq!((at("0 3 * * *").hour(), at("0 3 * * *").minute()), (3, 0));
        assert_eq!(at("*/5 * * * * *"), t + chrono::Duration::seconds(5));
        assert_eq!(
            at("* * * * *"),
            Local.with_ymd_and_hms(2026, 12, 5, 10, 21, 0).unwrap()
        );
        assert_eq!(
            at("@hourly"),
            Local.with_ymd_and_hms(2026, 12, 5, 11, 0, 0).unwrap()
        );
    }

    #[test]
    fn mistakes_are_named() {
        for (expr, needle) in [
            ("* * *", "has 3 fields"),
            ("61 * * * *", "is not a cron expression"),
            ("every day", "has 2 fields"),
            ("* * * * * * * *", "has 8 fields"),
        ] {
            let e = parse(expr).unwrap_err();
            assert!(e.contains(needle), "{expr}: {e}");
        }
    }
}
