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
        .map_err(|e| match blame(expr) {
            Some(why) => format!("{expr:?}: {why}"),
            None => format!("{expr:?} is not a cron expression: {e}"),
        })
}

/// One field of a cron expression: what it is called, the numbers it takes, the names
/// that stand for numbers (from `min` on) and what a mistake is told.
struct Field {
    kind: Kind,
    name: &'static str,
    min: u64,
    max: u64,
    names: &'static [&'static str],
    range: &'static str,
}

/// Which field: the day fields take forms of their own (L, W, #).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Second,
    Minute,
    Hour,
    DayOfMonth,
    Month,
    DayOfWeek,
}

const SECOND: Field = Field {
    kind: Kind::Second,
    name: "seconds",
    min: 0,
    max: 59,
    names: &[],
    range: "0-59",
};
const MINUTE: Field = Field {
    kind: Kind::Minute,
    name: "minute",
    min: 0,
    max: 59,
    names: &[],
    range: "0-59",
};
const HOUR: Field = Field {
    kind: Kind::Hour,
    name: "hour",
    min: 0,
    max: 23,
    names: &[],
    range: "0-23",
};
const DAY_OF_MONTH: Field = Field {
    kind: Kind::DayOfMonth,
    name: "day of month",
    min: 1,
    max: 31,
    names: &[],
    range: "1-31",
};
const MONTH: Field = Field {
    kind: Kind::Month,
    name: "month",
    min: 1,
    max: 12,
    names: &[
        "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
    ],
    range: "1-12 or JAN-DEC",
};
const DAY_OF_WEEK: Field = Field {
    kind: Kind::DayOfWeek,
    name: "day of week",
    min: 0,
    max: 7,
    names: &["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"],
    range: "0-7 or SUN-SAT",
};

/// The field a refused expression got wrong, in drover's words (a number out of its
/// range, a word that is no month or weekday, a step that is no positive number);
/// None when no field can be blamed, and the parser's own words are all there is.
fn blame(expr: &str) -> Option<String> {
    let fields: Vec<&str> = expr.split_whitespace().collect();
    let kinds: &[Field] = match fields.len() {
        5 => &[MINUTE, HOUR, DAY_OF_MONTH, MONTH, DAY_OF_WEEK],
        6 => &[SECOND, MINUTE, HOUR, DAY_OF_MONTH, MONTH, DAY_OF_WEEK],
        _ => return None,
    };
    fields.iter().zip(kinds).find_map(|(text, field)| {
        let why = field.mistake(text)?;
        Some(format!("the {} field {text:?} {why}", field.name))
    })
}

impl Field {
    /// What is wrong with this field's text, if a part of it is surely wrong.
    fn mistake(&self, text: &str) -> Option<String> {
        let alone = |item: &str| item == text;
        for item in text.split(',') {
            let (base, step) = match item.split_once('/') {
                Some((base, step)) => (base, Some(step)),
                None => (item, None),
            };
            if let Some(step) = step
                && !step.parse::<u64>().is_ok_and(|n| n > 0)
            {
                return Some(format!(
                    "has the step {step:?}, which is not a whole number from 1"
                ));
            }
            for value in base.split('-') {
                let Some(why) = self.bad_value(value) else {
                    continue;
                };
                return Some(match alone(value) {
                    true => why,
                    false => format!("holds {value:?}, which {why}"),
                });
            }
            let held = |what: &str| match alone(base) {
                true => what.to_owned(),
                false => format!("holds {base:?}, which {what}"),
            };
            if let Some((from, to)) = base.split_once('-')
                && let (Some(a), Some(b)) = (self.number(from), self.number(to))
                // SAT-SUN ends on Sunday as 7.
                && a > b
                && !(self.kind == Kind::DayOfWeek && b == 0)
            {
                return Some(held(&format!("runs backwards (write {to}-{from})")));
            }
            if self.kind == Kind::DayOfWeek
                && let Some((_, nth)) = base.split_once('#')
                && !nth.parse::<u64>().is_ok_and(|n| (1..=5).contains(&n))
            {
                return Some(held(&format!(
                    "asks for weekday #{nth} of the month (# takes 1-5)"
                )));
            }
        }
        None
    }

    /// A plain value's number (a name's too), for comparing a range's ends.
    fn number(&self, value: &str) -> Option<u64> {
        let upper = value.to_ascii_uppercase();
        match self.names.iter().position(|n| *n == upper) {
            Some(i) => Some(self.min + i as u64),
            None => upper.parse().ok(),
        }
    }

    /// Why one value (a number, a name, or `*`, `?` and the L, W and # forms where
    /// cron has them) is wrong: None when it is right, or not surely wrong.
    fn bad_value(&self, value: &str) -> Option<String> {
        let upper = value.to_ascii_uppercase();
        let number = match self.kind {
            // 15W (the weekday closest to the 15th), L and LW (the last day).
            Kind::DayOfMonth => upper.strip_suffix('W').unwrap_or(&upper),
            // 5#2 (the second Friday), 5L (the last Friday).
            Kind::DayOfWeek => {
                let v = upper.split('#').next().unwrap_or_default();
                v.strip_suffix('L').unwrap_or(v)
            }
            Kind::Second | Kind::Minute | Kind::Hour | Kind::Month => &upper,
        };
        if number.is_empty() || matches!(number, "*" | "?" | "L") {
            return None;
        }
        if number.bytes().all(|b| b.is_ascii_digit()) {
            let in_range = number
                .parse::<u64>()
                .is_ok_and(|n| (self.min..=self.max).contains(&n));
            return (!in_range).then(|| format!("is out of range ({})", self.range));
        }
        if self.names.contains(&number) {
            return None;
        }
        Some(format!("is not a {} ({})", self.name, self.range))
    }
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

    /// Each field of the 5- and 6-field forms, named with its range in drover's words.
    #[test]
    fn a_value_out_of_a_fields_range_is_named_with_the_range() {
        for (expr, said) in [
            (
                "61 * * * *",
                r#""61 * * * *": the minute field "61" is out of range (0-59)"#,
            ),
            (
                "0 24 * * *",
                r#""0 24 * * *": the hour field "24" is out of range (0-23)"#,
            ),
            (
                "0 0 32 * *",
                r#""0 0 32 * *": the day of month field "32" is out of range (1-31)"#,
            ),
            (
                "0 0 0 * *",
                r#""0 0 0 * *": the day of month field "0" is out of range (1-31)"#,
            ),
            (
                "0 * * 13 *",
                r#""0 * * 13 *": the month field "13" is out of range (1-12 or JAN-DEC)"#,
            ),
            (
                "0 * * FOO *",
                r#""0 * * FOO *": the month field "FOO" is not a month (1-12 or JAN-DEC)"#,
            ),
            (
                "0 * * * 8",
                r#""0 * * * 8": the day of week field "8" is out of range (0-7 or SUN-SAT)"#,
            ),
            (
                "0 * * * MON-FRY",
                r#""0 * * * MON-FRY": the day of week field "MON-FRY" holds "FRY", which is not a day of week (0-7 or SUN-SAT)"#,
            ),
            (
                "60 * * * * *",
                r#""60 * * * * *": the seconds field "60" is out of range (0-59)"#,
            ),
            (
                "0 75 * * * *",
                r#""0 75 * * * *": the minute field "75" is out of range (0-59)"#,
            ),
            (
                "0 0 1,5,25 * * *",
                r#""0 0 1,5,25 * * *": the hour field "1,5,25" holds "25", which is out of range (0-23)"#,
            ),
            (
                "*/0 * * * *",
                r#""*/0 * * * *": the minute field "*/0" has the step "0", which is not a whole number from 1"#,
            ),
            (
                "0 5-1 * * *",
                r#""0 5-1 * * *": the hour field "5-1" runs backwards (write 1-5)"#,
            ),
            (
                "0 0 * * 1#9",
                r#""0 0 * * 1#9": the day of week field "1#9" asks for weekday #9 of the month (# takes 1-5)"#,
            ),
            (
                "1.5 * * * *",
                r#""1.5 * * * *": the minute field "1.5" is not a minute (0-59)"#,
            ),
            (
                "0 9-30 * * *",
                r#""0 9-30 * * *": the hour field "9-30" holds "30", which is out of range (0-23)"#,
            ),
        ] {
            assert_eq!(parse(expr).unwrap_err(), said, "{expr}");
        }
    }

    /// What the checks must not refuse: every form cron has, at each field's ends.
    #[test]
    fn the_forms_cron_has_pass() {
        for expr in [
            "0-59 0-23 1-31 1-12 0-7",
            "59 23 31 DEC SAT",
            "0 0 L * *",
            "0 0 15W * *",
            "0 0 LW * *",
            "0 0 ? * 5#2",
            "0 0 * jan-mar mon-fri",
            "0 0 * * 5L",
            "0 0 * * SAT-SUN",
            "0 0 * * FRI-SUN",
            "*/15 */2 */3 */4 */5",
            "0 0 1,15 * SUN,SAT",
        ] {
            assert!(parse(expr).is_ok(), "{expr}: {:?}", parse(expr).err());
        }
    }

    #[test]
    fn mistakes_are_named() {
        for (expr, needle) in [
            ("* * *", "has 3 fields"),
            (
                "61 * * * *",
                "the minute field \"61\" is out of range (0-59)",
            ),
            // No field to blame: the parser's words.
            ("@dayly", "is not a cron expression"),
            ("every day", "has 2 fields"),
            ("* * * * * * * *", "has 8 fields"),
        ] {
            let e = parse(expr).unwrap_err();
            assert!(e.contains(needle), "{expr}: {e}");
        }
    }
}
