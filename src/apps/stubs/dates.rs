//! Dates as WireMock's template helpers write and read them: Java's
//! `SimpleDateFormat` patterns (`yyyy-MM-dd'T'HH:mm:ssXXX`), `epoch`
//! (milliseconds) and `unix` (seconds), offsets such as `3 days` or `-2
//! hours`, and time zones named as Java names them (`Australia/Sydney`,
//! `UTC`, `GMT+02:00`). Calendar arithmetic and the zone database come from
//! chrono and chrono-tz; only the pattern language is ours, since no crate
//! reads Java's.

use chrono::{DateTime, Datelike, FixedOffset, Months, NaiveDate, NaiveDateTime, TimeDelta, TimeZone, Timelike, Utc};

/// An instant in a zone, with the zone's short name for `z`.
#[derive(Clone, Debug)]
pub struct Zoned {
    pub at: DateTime<FixedOffset>,
    pub zone: String,
}

impl Zoned {
    pub fn utc(at: DateTime<Utc>) -> Zoned {
        Zoned { at: at.fixed_offset(), zone: "UTC".into() }
    }

    /// The same instant in the zone `name`.
    pub fn in_zone(&self, name: &str) -> Result<Zoned, String> {
        let utc = self.at.with_timezone(&Utc);
        if let Some(fixed) = fixed_zone(name) {
            return Ok(Zoned { at: utc.with_timezone(&fixed), zone: name.to_string() });
        }
        let tz: chrono_tz::Tz = name.parse().map_err(|_| format!("unknown time zone `{name}`"))?;
        let there = utc.with_timezone(&tz);
        Ok(Zoned { at: there.fixed_offset(), zone: there.format("%Z").to_string() })
    }

    /// This instant moved by an offset such as `3 days`, `-2 hours` or
    /// `1 months` (WireMock's units, singular or plural).
    pub fn offset(&self, text: &str) -> Result<Zoned, String> {
        let bad = || format!("bad date offset `{text}`: write an amount and a unit, such as `3 days` or `-2 hours`");
        let mut words = text.split_whitespace();
        let (Some(amount), Some(unit), None) = (words.next(), words.next(), words.next()) else { return Err(bad()) };
        let n: i64 = amount.trim_start_matches('+').parse().map_err(|_| bad())?;
        let unit = unit.to_ascii_lowercase();
        let at = match unit.trim_end_matches('s') {
            "millisecond" => self.at.checked_add_signed(TimeDelta::milliseconds(n)),
            "second" => self.at.checked_add_signed(TimeDelta::seconds(n)),
            "minute" => self.at.checked_add_signed(TimeDelta::minutes(n)),
            "hour" => self.at.checked_add_signed(TimeDelta::hours(n)),
            "day" => self.at.checked_add_signed(TimeDelta::days(n)),
            "week" => self.at.checked_add_signed(TimeDelta::weeks(n)),
            "month" => add_months(self.at, n),
            "year" => n.checked_mul(12).and_then(|m| add_months(self.at, m)),
            _ => return Err(bad()),
        };
        Ok(Zoned { at: at.ok_or_else(|| format!("date offset `{text}` leaves the calendar"))?, zone: self.zone.clone() })
    }

    /// `format` applied: a Java pattern, `epoch` or `unix`.
    pub fn format(&self, pattern: &str) -> String {
        match pattern {
            "epoch" => self.at.timestamp_millis().to_string(),
            "unix" => self.at.timestamp().to_string(),
            _ => java_format(self, pattern),
        }
    }

    /// As WireMock writes a date with no format: ISO 8601 to the second.
    pub fn iso(&self) -> String {
        java_format(self, "yyyy-MM-dd'T'HH:mm:ssXXX")
    }

    /// To the millisecond, as one helper hands a date to the next.
    pub fn precise(&self) -> String {
        java_format(self, "yyyy-MM-dd'T'HH:mm:ss.SSSXXX")
    }
}

fn add_months(at: DateTime<FixedOffset>, n: i64) -> Option<DateTime<FixedOffset>> {
    let months = Months::new(u32::try_from(n.unsigned_abs()).ok()?);
    if n >= 0 { at.checked_add_months(months) } else { at.checked_sub_months(months) }
}

/// `GMT+02:00`, `UTC-5`, `+0530`: a zone that is only an offset.
fn fixed_zone(name: &str) -> Option<FixedOffset> {
    let rest = name.strip_prefix("GMT").or_else(|| name.strip_prefix("UTC")).unwrap_or(name);
    if rest.is_empty() {
        return FixedOffset::east_opt(0);
    }
    let (sign, digits) = match rest.as_bytes()[0] {
        b'+' => (1, &rest[1..]),
        b'-' => (-1, &rest[1..]),
        _ => return None,
    };
    let digits: String = digits.chars().filter(|c| *c != ':').collect();
    if digits.is_empty() || digits.len() > 4 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (h, m) = if digits.len() <= 2 { (digits.as_str(), "0") } else { digits.split_at(digits.len() - 2) };
    let seconds = h.parse::<i32>().ok()? * 3600 + m.parse::<i32>().ok()? * 60;
    FixedOffset::east_opt(sign * seconds)
}

/// The pattern's parts: runs of one letter, and literal text.
fn pieces(pattern: &str) -> Vec<(Option<char>, String)> {
    let mut out: Vec<(Option<char>, String)> = Vec::new();
    let mut chars = pattern.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\'' {
            let mut text = String::new();
            if chars.peek() == Some(&'\'') {
                chars.next();
                text.push('\'');
            } else {
                while let Some(q) = chars.next() {
                    if q == '\'' {
                        if chars.peek() == Some(&'\'') {
                            chars.next();
                            text.push('\'');
                            continue;
                        }
                        break;
                    }
                    text.push(q);
                }
            }
            out.push((None, text));
        } else if c.is_ascii_alphabetic() {
            match out.last_mut() {
                Some((Some(l), run)) if *l == c => run.push(c),
                _ => out.push((Some(c), c.to_string())),
            }
        } else {
            match out.last_mut() {
                Some((None, text)) => text.push(c),
                _ => out.push((None, c.to_string())),
            }
        }
    }
    out
}

const MONTHS: [&str; 12] =
    ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"];
const DAYS: [&str; 7] = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"];

fn java_format(z: &Zoned, pattern: &str) -> String {
    let at = z.at;
    let mut out = String::new();
    for (letter, run) in pieces(pattern) {
        let n = run.chars().count();
        let num = |v: i64| format!("{v:0n$}");
        let offset = at.offset().local_minus_utc();
        let text = match letter {
            None => run,
            Some('G') => "AD".into(),
            Some('y' | 'u' | 'Y') if n == 2 => format!("{:02}", at.year().rem_euclid(100)),
            Some('y' | 'Y') => num(at.year().into()),
            Some('M' | 'L') if n >= 4 => MONTHS[at.month0() as usize].into(),
            Some('M' | 'L') if n == 3 => MONTHS[at.month0() as usize][..3].into(),
            Some('M' | 'L') => num(at.month().into()),
            Some('d') => num(at.day().into()),
            Some('D') => num(at.ordinal().into()),
            Some('E') if n >= 4 => DAYS[at.weekday().num_days_from_monday() as usize].into(),
            Some('E') => DAYS[at.weekday().num_days_from_monday() as usize][..3].into(),
            Some('u') => num(at.weekday().number_from_monday().into()),
            Some('a') => if at.hour() < 12 { "AM" } else { "PM" }.into(),
            Some('H') => num(at.hour().into()),
            Some('k') => num(if at.hour() == 0 { 24 } else { at.hour().into() }),
            Some('K') => num((at.hour() % 12).into()),
            Some('h') => num(if at.hour().is_multiple_of(12) { 12 } else { (at.hour() % 12).into() }),
            Some('m') => num(at.minute().into()),
            Some('s') => num(at.second().into()),
            Some('S') => {
                let nanos = format!("{:09}", at.nanosecond() % 1_000_000_000);
                if n <= 9 { nanos[..n].to_string() } else { format!("{nanos:0<n$}") }
            }
            Some('z') => z.zone.clone(),
            Some('Z') => zone_offset(offset, false, false),
            Some('X') if offset == 0 => "Z".into(),
            Some('X') if n == 1 => zone_offset(offset, false, true),
            Some('X') => zone_offset(offset, n >= 3, false),
            Some('x') if n == 1 => zone_offset(offset, false, true),
            Some('x') => zone_offset(offset, n >= 3, false),
            Some(_) => run,
        };
        out.push_str(&text);
    }
    out
}

fn zone_offset(seconds: i32, colon: bool, hours_only: bool) -> String {
    let sign = if seconds < 0 { '-' } else { '+' };
    let (h, m) = (seconds.abs() / 3600, seconds.abs() % 3600 / 60);
    match (hours_only, colon) {
        (true, _) => format!("{sign}{h:02}"),
        (false, true) => format!("{sign}{h:02}:{m:02}"),
        (false, false) => format!("{sign}{h:02}{m:02}"),
    }
}

/// The date `text` holds, read with `format` (a Java pattern, `epoch` or
/// `unix`), else as ISO 8601 or an HTTP date.
pub fn parse(text: &str, format: Option<&str>) -> Result<Zoned, String> {
    let bad = || match format {
        Some(f) => format!("`{text}` is not a date in the format `{f}`"),
        None => format!("`{text}` is not an ISO 8601 date (give parseDate a format)"),
    };
    let number = |scale: i64| text.trim().parse::<i64>().ok().and_then(|n| n.checked_mul(scale)).and_then(DateTime::from_timestamp_millis);
    match format {
        Some("epoch") => number(1).map(Zoned::utc).ok_or_else(bad),
        Some("unix") => number(1000).map(Zoned::utc).ok_or_else(bad),
        Some(pattern) => java_parse(text, pattern).ok_or_else(bad),
        None => DateTime::parse_from_rfc3339(text)
            .or_else(|_| DateTime::parse_from_rfc2822(text))
            .map(|at| Zoned {
                zone: if at.offset().local_minus_utc() == 0 {
                    "UTC".into()
                } else {
                    zone_offset(at.offset().local_minus_utc(), true, false)
                },
                at,
            })
            .map_err(|_| bad()),
    }
}

/// A Java pattern read through chrono's parser: each letter run becomes
/// the strftime field that reads it.
fn java_parse(text: &str, pattern: &str) -> Option<Zoned> {
    let mut spec = String::new();
    for (letter, run) in pieces(pattern) {
        let n = run.chars().count();
        spec.push_str(match letter {
            None => {
                spec.push_str(&run.replace('%', "%%"));
                continue;
            }
            Some('y' | 'Y') if n == 2 => "%y",
            Some('y' | 'Y' | 'u') => "%Y",
            Some('M' | 'L') if n >= 4 => "%B",
            Some('M' | 'L') if n == 3 => "%b",
            Some('M' | 'L') => "%m",
            Some('d') => "%d",
            Some('D') => "%j",
            Some('E') if n >= 4 => "%A",
            Some('E') => "%a",
            Some('a') => "%p",
            Some('H' | 'k') => "%H",
            Some('h' | 'K') => "%I",
            Some('m') => "%M",
            Some('s') => "%S",
            Some('S') => "%f",
            Some('z') => "%Z",
            Some('Z' | 'X' | 'x') => "%z",
            Some(_) => return None,
        });
    }
    let text = if text.ends_with('Z') && pattern.ends_with('X') { format!("{}+0000", &text[..text.len() - 1]) } else { text.to_string() };
    if let Ok(at) = DateTime::parse_from_str(&text, &spec) {
        return Some(Zoned { at, zone: zone_offset(at.offset().local_minus_utc(), true, false) });
    }
    let naive = NaiveDateTime::parse_from_str(&text, &spec)
        .ok()
        .or_else(|| NaiveDate::parse_from_str(&text, &spec).ok().and_then(|d| d.and_hms_opt(0, 0, 0)))?;
    Some(Zoned::utc(Utc.from_utc_datetime(&naive)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Zoned {
        parse(text, None).unwrap()
    }

    #[test]
    fn java_patterns_write_as_wiremock_does() {
        let d = at("2026-12-02T18:09:48.538Z");
        assert_eq!(d.iso(), "2026-12-02T18:09:48Z");
        assert_eq!(d.format("yyyy-MM-dd'T'HH:mm:ss.SSSXXX"), "2026-12-02T18:09:48.538Z");
        assert_eq!(d.format("EEE, dd MMM yyyy HH:mm:ss z"), "Wed, 02 Dec 2026 18:09:48 UTC");
        assert_eq!(d.format("epoch"), "1796234988538");
        assert_eq!(d.format("unix"), "1796234988");
        assert_eq!(d.format("h:mm a, 'o''clock' D"), "6:09 PM, o'clock 336");
        let sydney = d.in_zone("Australia/Sydney").unwrap();
        assert_eq!(sydney.format("yyyy-MM-dd HH:mm:ssZ z"), "2026-12-03 05:09:48+1100 AEDT");
        assert_eq!(d.in_zone("GMT+02:00").unwrap().format("HH XXX"), "20 +02:00");
        assert!(d.in_zone("Mars/Olympus").is_err());
    }

    #[test]
    fn offsets_move_by_calendar_units() {
        let d = at("2021-01-31T00:00:00Z");
        assert_eq!(d.offset("3 days").unwrap().iso(), "2021-02-03T00:00:00Z");
        assert_eq!(d.offset("1 months").unwrap().iso(), "2021-02-28T00:00:00Z");
        assert_eq!(d.offset("-2 hours").unwrap().iso(), "2021-01-30T22:00:00Z");
        assert_eq!(d.offset("1 year").unwrap().iso(), "2022-01-31T00:00:00Z");
        assert!(d.offset("soon").is_err() && d.offset("3 fortnights").is_err());
    }

    #[test]
    fn dates_are_read_in_java_patterns_epochs_and_iso() {
        assert_eq!(parse("14/06/2021", Some("dd/MM/yyyy")).unwrap().iso(), "2021-06-14T00:00:00Z");
        assert_eq!(parse("1623628800", Some("unix")).unwrap().iso(), "2021-06-14T00:00:00Z");
        assert_eq!(parse("1623628800000", Some("epoch")).unwrap().iso(), "2021-06-14T00:00:00Z");
        assert_eq!(parse("2021-06-14 10:00:00+0200", Some("yyyy-MM-dd HH:mm:ssZ")).unwrap().at.timestamp(), 1623657600);
        assert_eq!(at("Mon, 14 Jun 2021 00:00:00 GMT").iso(), "2021-06-14T00:00:00Z");
        assert!(parse("2021-06-14", None).is_err());
        assert!(parse("yesterday", Some("dd/MM/yyyy")).is_err());
    }
}
