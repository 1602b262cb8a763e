//! PM2's `log_date_format`: moment.js format tokens, compiled once, formatted per line.
//!
//! Supported tokens (English locale, as moment's default):
//!
//! | token | output | token | output |
//! |---|---|---|---|
//! | `YYYY` `YY` `Y` | 2026, 26, 2026 | `YYYYY` `YYYYYY` | 02026, +002026 |
//! | `M` `MM` `Mo` | 1, 01, 1st | `MMM` `MMMM` | Jan, January |
//! | `D` `DD` `Do` | 7, 07, 7th | `DDD` `DDDD` `DDDo` | day of year 1, 001, 1st |
//! | `d` `e` `do` | weekday 0–6 (Sun=0), 0th | `dd` `ddd` `dddd` | Su, Sun, Sunday |
//! | `E` | ISO weekday 1–7 | `W` `WW` `Wo` | ISO week 1, 01, 1st |
//! | `Q` | quarter 1–4 | | |
//! | `H` `HH` | 0–23 | `h` `hh` | 1–12 |
//! | `k` `kk` | 1–24 | `A` `a` | AM/PM, am/pm |
//! | `m` `mm` | minutes | `s` `ss` | seconds |
//! | `S` … `SSSSSSSSS` | fraction of a second, 1–9 digits (truncated) | | |
//! | `Z` `ZZ` | +05:30, +0530 | `z` `zz` | nothing (as moment without moment-timezone) |
//! | `X` `x` | Unix seconds, Unix milliseconds | | |
//!
//! `[text]` is copied literally, as is any character that starts no token (`T`, `-`,
//! `:`, space…). A backslash copies the following token or character literally.
//! Tokens are matched longest first, as moment's tokenizer does (`DDDD` before `DD`).

use chrono::{DateTime, Datelike, Local, Offset, TimeZone, Timelike, Utc};

/// Longest format string accepted; a prefix is per line, it has no business being long.
const MAX_FORMAT_LEN: usize = 256;

/// A compiled moment.js-style date format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DateFormat {
    tokens: Vec<Token>,
    subsecond: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Lit(Box<[u8]>),
    Field(Field),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Year6,
    Year5,
    Year4,
    Year2,
    YearY,
    MonthLong,
    MonthShort,
    Month2,
    MonthOrd,
    Month1,
    DayOfYear3,
    DayOfYearOrd,
    DayOfYear1,
    Day2,
    DayOrd,
    Day1,
    WeekdayLong,
    WeekdayShort,
    WeekdayMin,
    WeekdayOrd,
    Weekday,
    IsoWeekday,
    IsoWeek2,
    IsoWeekOrd,
    IsoWeek1,
    Quarter,
    Hour24x2,
    Hour24x1,
    Hour12x2,
    Hour12x1,
    Hour1to24x2,
    Hour1to24x1,
    Minute2,
    Minute1,
    Second2,
    Second1,
    /// Fraction of a second with this many digits (1..=9).
    Frac(u8),
    OffsetNoColon,
    OffsetColon,
    /// `z`/`zz`: moment prints nothing for a local time without moment-timezone.
    Nothing,
    AmPmUpper,
    AmPmLower,
    UnixSeconds,
    UnixMillis,
}

/// Patterns tried in this order at each position; longer before shorter of one family.
const PATTERNS: &[(&str, Field)] = &[
    ("YYYYYY", Field::Year6),
    ("YYYYY", Field::Year5),
    ("YYYY", Field::Year4),
    ("YY", Field::Year2),
    ("Y", Field::YearY),
    ("MMMM", Field::MonthLong),
    ("MMM", Field::MonthShort),
    ("MM", Field::Month2),
    ("Mo", Field::MonthOrd),
    ("M", Field::Month1),
    ("DDDD", Field::DayOfYear3),
    ("DDDo", Field::DayOfYearOrd),
    ("DDD", Field::DayOfYear1),
    ("DD", Field::Day2),
    ("Do", Field::DayOrd),
    ("D", Field::Day1),
    ("dddd", Field::WeekdayLong),
    ("ddd", Field::WeekdayShort),
    ("dd", Field::WeekdayMin),
    ("do", Field::WeekdayOrd),
    ("d", Field::Weekday),
    ("e", Field::Weekday),
    ("E", Field::IsoWeekday),
    ("WW", Field::IsoWeek2),
    ("Wo", Field::IsoWeekOrd),
    ("W", Field::IsoWeek1),
    ("Q", Field::Quarter),
    ("HH", Field::Hour24x2),
    ("H", Field::Hour24x1),
    ("hh", Field::Hour12x2),
    ("h", Field::Hour12x1),
    ("kk", Field::Hour1to24x2),
    ("k", Field::Hour1to24x1),
    ("mm", Field::Minute2),
    ("m", Field::Minute1),
    ("ss", Field::Second2),
    ("s", Field::Second1),
    ("ZZ", Field::OffsetNoColon),
    ("Z", Field::OffsetColon),
    ("zz", Field::Nothing),
    ("z", Field::Nothing),
    ("A", Field::AmPmUpper),
    ("a", Field::AmPmLower),
    ("X", Field::UnixSeconds),
    ("x", Field::UnixMillis),
];

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const WEEKDAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];

/// The token at the start of `s`, with its length in bytes.
fn match_token(s: &str) -> Option<(Field, usize)> {
    let run = s.bytes().take_while(|&b| b == b'S').count();
    if run > 0 {
        let n = run.min(9);
        return Some((Field::Frac(n as u8), n));
    }
    PATTERNS
        .iter()
        .find(|(p, _)| s.starts_with(p))
        .map(|&(p, f)| (f, p.len()))
}

impl DateFormat {
    /// Compiles a moment.js-style format. Fails only on formats that cannot make a
    /// sane line prefix: longer than 256 bytes, or containing a line break or NUL.
    pub fn parse(fmt: &str) -> Result<Self, String> {
        if fmt.len() > MAX_FORMAT_LEN {
            return Err(format!(
                "date format is {} bytes long; at most {MAX_FORMAT_LEN} are allowed",
                fmt.len()
            ));
        }
        if let Some(c) = fmt.chars().find(|c| matches!(c, '\n' | '\r' | '\0')) {
            return Err(format!(
                "date format {fmt:?} contains {c:?}; a line prefix cannot hold a line break"
            ));
        }
        let mut tokens: Vec<Token> = Vec::new();
        let mut lit: Vec<u8> = Vec::new();
        let mut rest = fmt;
        while let Some(c) = rest.chars().next() {
            if c == '[' {
                // moment: `\[[^\[]*\]`; an unclosed or nested `[` is a plain character.
                let after = &rest[1..];
                let close = after.find(']');
                let open = after.find('[');
                if let Some(end) = close.filter(|&e| open.is_none_or(|o| o > e)) {
                    lit.extend_from_slice(&after.as_bytes()[..end]);
                    rest = &after[end + 1..];
                    continue;
                }
                lit.push(b'[');
                rest = after;
                continue;
            }
            if c == '\\' {
                let after = &rest[1..];
                let skip = match match_token(after) {
                    Some((_, len)) => len,
                    None => after.chars().next().map_or(0, char::len_utf8),
                };
                lit.extend_from_slice(&after.as_bytes()[..skip]);
                rest = &after[skip..];
                continue;
            }
            if let Some((field, len)) = match_token(rest) {
                if !lit.is_empty() {
                    tokens.push(Token::Lit(std::mem::take(&mut lit).into_boxed_slice()));
                }
                if field != Field::Nothing {
                    tokens.push(Token::Field(field));
                }
                rest = &rest[len..];
                continue;
            }
            let len = c.len_utf8();
            lit.extend_from_slice(&rest.as_bytes()[..len]);
            rest = &rest[len..];
        }
        if !lit.is_empty() {
            tokens.push(Token::Lit(lit.into_boxed_slice()));
        }
        let subsecond = tokens.iter().any(|t| {
            matches!(
                t,
                Token::Field(Field::Frac(_)) | Token::Field(Field::UnixMillis)
            )
        });
        Ok(DateFormat { tokens, subsecond })
    }

    /// Whether the output changes within one second (`S…`, `x`): if not, a caller may
    /// reuse the output for every line of the same second.
    pub fn has_subsecond(&self) -> bool {
        self.subsecond
    }

    /// Formats `t` in its own offset.
    pub fn format<Tz: TimeZone>(&self, t: &DateTime<Tz>) -> String {
        let mut out = Vec::with_capacity(32);
        self.format_into(t, &mut out);
        // Literals come from a &str and fields are ASCII.
        String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into())
    }

    /// Formats the current local time, appending to `out`.
    pub fn format_now(&self, out: &mut Vec<u8>) {
        self.format_into(&Local::now(), out);
    }

    /// Formats `t` in its own offset, appending to `out`.
    pub fn format_into<Tz: TimeZone>(&self, t: &DateTime<Tz>, out: &mut Vec<u8>) {
        let offset = t.offset().fix().local_minus_utc();
        let local = t.naive_local();
        for token in &self.tokens {
            let field = match token {
                Token::Lit(s) => {
                    out.extend_from_slice(s);
                    continue;
                }
                Token::Field(f) => *f,
            };
            match field {
                Field::Year6 => {
                    let y = local.year();
                    out.push(if y < 0 { b'-' } else { b'+' });
                    push_uint(out, u64::from(y.unsigned_abs()), 6);
                }
                Field::Year5 => push_int(out, i64::from(local.year()), 5),
                Field::Year4 => push_int(out, i64::from(local.year()), 4),
                Field::YearY => {
                    let y = local.year();
                    if y > 9999 {
                        out.push(b'+');
                    }
                    push_int(out, i64::from(y), 4);
                }
                Field::Year2 => push_uint(out, local.year().rem_euclid(100) as u64, 2),
                Field::MonthLong => {
                    out.extend_from_slice(MONTHS[local.month0() as usize].as_bytes())
                }
                Field::MonthShort => {
                    out.extend_from_slice(&MONTHS[local.month0() as usize].as_bytes()[..3])
                }
                Field::Month2 => push_uint(out, local.month().into(), 2),
                Field::MonthOrd => push_ordinal(out, local.month()),
                Field::Month1 => push_uint(out, local.month().into(), 1),
                Field::DayOfYear3 => push_uint(out, local.ordinal().into(), 3),
                Field::DayOfYearOrd => push_ordinal(out, local.ordinal()),
                Field::DayOfYear1 => push_uint(out, local.ordinal().into(), 1),
                Field::Day2 => push_uint(out, local.day().into(), 2),
                Field::DayOrd => push_ordinal(out, local.day()),
                Field::Day1 => push_uint(out, local.day().into(), 1),
                Field::WeekdayLong | Field::WeekdayShort | Field::WeekdayMin => {
                    let name = WEEKDAYS[local.weekday().num_days_from_sunday() as usize];
                    let len = match field {
                        Field::WeekdayLong => name.len(),
                        Field::WeekdayShort => 3,
                        _ => 2,
                    };
                    out.extend_from_slice(&name.as_bytes()[..len]);
                }
                Field::WeekdayOrd => push_ordinal(out, local.weekday().num_days_from_sunday()),
                Field::Weekday => push_uint(out, local.weekday().num_days_from_sunday().into(), 1),
                Field::IsoWeekday => push_uint(out, local.weekday().number_from_monday().into(), 1),
                Field::IsoWeek2 => push_uint(out, local.iso_week().week().into(), 2),
                Field::IsoWeekOrd => push_ordinal(out, local.iso_week().week()),
                Field::IsoWeek1 => push_uint(out, local.iso_week().week().into(), 1),
                Field::Quarter => push_uint(out, (local.month0() / 3 + 1).into(), 1),
                Field::Hour24x2 => push_uint(out, local.hour().into(), 2),
                Field::Hour24x1 => push_uint(out, local.hour().into(), 1),
                Field::Hour12x2 | Field::Hour12x1 => {
                    let h = match local.hour() % 12 {
                        0 => 12,
                        h => h,
                    };
                    let width = if field == Field::Hour12x2 { 2 } else { 1 };
                    push_uint(out, h.into(), width);
                }
                Field::Hour1to24x2 | Field::Hour1to24x1 => {
                    let h = match local.hour() {
                        0 => 24,
                        h => h,
                    };
                    let width = if field == Field::Hour1to24x2 { 2 } else { 1 };
                    push_uint(out, h.into(), width);
                }
                Field::Minute2 => push_uint(out, local.minute().into(), 2),
                Field::Minute1 => push_uint(out, local.minute().into(), 1),
                Field::Second2 => push_uint(out, local.second().into(), 2),
                Field::Second1 => push_uint(out, local.second().into(), 1),
                Field::Frac(digits) => {
                    // A leap second shows as nanosecond >= 1e9; keep it within the field.
                    let nanos = local.nanosecond().min(999_999_999);
                    let div = 10u32.pow(9 - u32::from(digits));
                    push_uint(out, (nanos / div).into(), digits.into());
                }
                Field::OffsetColon | Field::OffsetNoColon => {
                    out.push(if offset < 0 { b'-' } else { b'+' });
                    let abs = offset.unsigned_abs() / 60;
                    push_uint(out, (abs / 60).into(), 2);
                    if field == Field::OffsetColon {
                        out.push(b':');
                    }
                    push_uint(out, (abs % 60).into(), 2);
                }
                Field::Nothing => {}
                Field::AmPmUpper => {
                    out.extend_from_slice(if local.hour() < 12 { b"AM" } else { b"PM" })
                }
                Field::AmPmLower => {
                    out.extend_from_slice(if local.hour() < 12 { b"am" } else { b"pm" })
                }
                Field::UnixSeconds => push_int(out, t.timestamp(), 1),
                Field::UnixMillis => push_int(out, t.timestamp_millis(), 1),
            }
        }
    }
}

/// Appends `v` in decimal, zero-padded to `width` digits.
fn push_uint(out: &mut Vec<u8>, mut v: u64, width: usize) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    let len = digits.len() - i;
    out.extend(std::iter::repeat_n(b'0', width.saturating_sub(len)));
    out.extend_from_slice(&digits[i..]);
}

fn push_int(out: &mut Vec<u8>, v: i64, width: usize) {
    if v < 0 {
        out.push(b'-');
    }
    push_uint(out, v.unsigned_abs(), width);
}

/// moment's English ordinal: 1st 2nd 3rd 4th … 11th 12th 13th … 21st.
fn push_ordinal(out: &mut Vec<u8>, n: u32) {
    push_uint(out, n.into(), 1);
    let suffix: &[u8] = if (n % 100) / 10 == 1 {
        b"th"
    } else {
        match n % 10 {
            1 => b"st",
            2 => b"nd",
            3 => b"rd",
            _ => b"th",
        }
    };
    out.extend_from_slice(suffix);
}

/// Formats "now" for each line, reusing the previous output while the second has not
/// changed (when the format has no sub-second field), so most lines cost one clock read.
#[derive(Debug)]
pub struct Stamper {
    format: DateFormat,
    cached_second: Option<i64>,
    cached: Vec<u8>,
}

impl Stamper {
    pub fn new(format: DateFormat) -> Self {
        Stamper {
            format,
            cached_second: None,
            cached: Vec::with_capacity(32),
        }
    }

    /// Appends the current local time, formatted, to `out`.
    pub fn stamp(&mut self, out: &mut Vec<u8>) {
        let now = Utc::now();
        if self.format.has_subsecond() {
            self.format.format_into(&now.with_timezone(&Local), out);
            return;
        }
        let second = now.timestamp();
        if self.cached_second != Some(second) {
            self.cached.clear();
            self.format
                .format_into(&now.with_timezone(&Local), &mut self.cached);
            self.cached_second = Some(second);
        }
        out.extend_from_slice(&self.cached);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::FixedOffset;

    fn at(offset_secs: i32, rfc3339: &str) -> DateTime<FixedOffset> {
        DateTime::parse_from_rfc3339(rfc3339)
            .unwrap()
            .with_timezone(&FixedOffset::east_opt(offset_secs).unwrap())
    }

    fn fmt(f: &str, t: &DateTime<FixedOffset>) -> String {
        DateFormat::parse(f).unwrap().format(t)
    }

    #[test]
    fn pm2_default_layout_utc_and_offset() {
        let utc = at(0, "2026-11-27T10:00:00Z");
        assert_eq!(
            fmt("YYYY-MM-DD HH:mm:ss Z", &utc),
            "2026-11-27 10:00:00 +00:00"
        );
        let ist = at(5 * 3600 + 1800, "2026-11-27T10:00:00Z");
        assert_eq!(
            fmt("YYYY-MM-DD HH:mm:ss Z", &ist),
            "2026-11-27 15:30:00 +05:30"
        );
        assert_eq!(fmt("ZZ", &ist), "+0530");
        let west = at(-(3 * 3600 + 1800), "2026-11-27T10:00:00Z");
        assert_eq!(fmt("HH:mm Z ZZ", &west), "06:30 -03:30 -0330");
        // Utc works too, not only FixedOffset.
        let u = DateTime::parse_from_rfc3339("2026-11-27T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            DateFormat::parse("YYYY-MM-DD HH:mm:ss Z")
                .unwrap()
                .format(&u),
            "2026-11-27 10:00:00 +00:00"
        );
    }

    #[test]
    fn token_table() {
        let t = at(0, "2026-03-01T09:05:07.123456789Z"); // a Sunday
        let cases: &[(&str, &str)] = &[
            ("YYYY-MM-DDTHH:mm:ss", "2026-03-01T09:05:07"),
            ("YY/M/D H:m:s", "26/3/1 9:5:7"),
            ("YYYYY|YYYYYY|Y", "02026|+002026|2026"),
            ("[Today is] dddd, MMMM Do", "Today is Sunday, March 1st"),
            ("[at] h:mm A", "at 9:05 AM"),
            ("ddd dd d e E", "Sun Su 0 0 7"),
            ("MMM Mo Q", "Mar 3rd 1"),
            ("DDD DDDD DDDo", "60 060 60th"),
            ("W WW Wo", "9 09 9th"),
            ("ss.SSS", "07.123"),
            ("S SS SSSSSS SSSSSSSSS", "1 12 123456 123456789"),
            ("SSSSSSSSSSS", "12345678912"), // 9 digits, then `SS`
            ("X", "1772355907"),
            ("x", "1772355907123"),
            ("[a] a [z]z", "a am z"),
            ("\\YYYY \\H \\[", "YYYY H ["),
            ("[nul", "[nul"), // unclosed: a plain `[`
            ("[[x]", "[x"),
            ("]", "]"),
            ("hh kk", "09 09"),
            ("", ""),
            ("é [ü]", "é ü"),
        ];
        for (f, want) in cases {
            assert_eq!(fmt(f, &t), *want, "format {f:?}");
        }
    }

    #[test]
    fn twelve_hour_clock() {
        let cases: &[(&str, &str)] = &[
            ("2026-01-02T00:00:00Z", "12:00 AM am 24"),
            ("2026-01-02T11:59:00Z", "11:59 AM am 11"),
            ("2026-01-02T12:00:00Z", "12:00 PM pm 12"),
            ("2026-01-02T13:30:00Z", "1:30 PM pm 13"),
            ("2026-01-02T23:59:00Z", "11:59 PM pm 23"),
        ];
        for (when, want) in cases {
            assert_eq!(fmt("h:mm A a k", &at(0, when)), *want, "at {when}");
        }
    }

    #[test]
    fn ordinals() {
        let mut out = Vec::new();
        for n in [1, 2, 3, 4, 11, 12, 13, 21, 22, 23, 101, 111, 112] {
            push_ordinal(&mut out, n);
            out.push(b' ');
        }
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "1st 2nd 3rd 4th 11th 12th 13th 21st 22nd 23rd 101st 111th 112th "
        );
    }

    #[test]
    fn rejects_line_breaks_and_long_formats() {
        assert!(DateFormat::parse("YYYY\nMM").is_err());
        assert!(DateFormat::parse(&"Y".repeat(300)).is_err());
        assert!(DateFormat::parse("YYYY-MM-DD HH:mm:ss Z").is_ok());
    }

    #[test]
    fn subsecond_detection_and_stamper() {
        assert!(!DateFormat::parse("YYYY ss").unwrap().has_subsecond());
        assert!(DateFormat::parse("ss.SSS").unwrap().has_subsecond());
        assert!(DateFormat::parse("x").unwrap().has_subsecond());
        let mut s = Stamper::new(DateFormat::parse("YYYY-MM-DD").unwrap());
        let mut a = Vec::new();
        s.stamp(&mut a);
        let mut b = Vec::new();
        s.stamp(&mut b);
        assert_eq!(a.len(), 10);
        assert_eq!(a[4], b'-');
        let _ = b; // the day may roll over between the two calls; only the shape matters
    }
}
