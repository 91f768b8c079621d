//! Civil time for list files, without a date crate: Unix seconds from TOML dates and back to
//! text. The calendar is the proleptic Gregorian one, every day has 86,400 seconds (Unix time,
//! no leap seconds), and everything is UTC.

use toml::value::{Datetime, Offset};

const SECS_PER_DAY: i64 = 86_400;
/// Days from 0000-03-01 to 1970-01-01 in the proleptic Gregorian calendar.
const DAYS_TO_EPOCH: i64 = 719_468;
/// Days in a 400-year Gregorian cycle.
const DAYS_PER_ERA: i64 = 146_097;

/// The current time, in Unix seconds. A clock before 1970 gives a negative value.
pub fn now() -> i64 {
    let now = std::time::SystemTime::now();
    match now.duration_since(std::time::UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => i64::try_from(e.duration().as_secs()).map_or(i64::MIN, |s| -s),
    }
}

/// Whether `year` has a 29 February.
pub fn is_leap_year(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

/// Number of days in `month` (1 to 12) of `year`; 0 for a month out of range.
pub fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap_year(year) => 29,
        2 => 28,
        _ => 0,
    }
}

/// Days since 1970-01-01 of a valid date (`month` 1 to 12, `day` 1 to the month's length).
///
/// Years are counted from 1 March, so that the leap day is the last day of its year; a
/// 400-year era then always has the same number of days.
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let (month, day) = (i64::from(month), i64::from(day));
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year.rem_euclid(400);
    // Month counted from March (0) to February (11).
    let month_from_march = (month + 9) % 12;
    let day_of_year = (153 * month_from_march + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * DAYS_PER_ERA + day_of_era - DAYS_TO_EPOCH
}

/// The date (year, month, day) `days` days after 1970-01-01; the inverse of
/// [`days_from_civil`].
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let days = days + DAYS_TO_EPOCH;
    let era = days.div_euclid(DAYS_PER_ERA);
    let day_of_era = days.rem_euclid(DAYS_PER_ERA);
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 { month_from_march + 3 } else { month_from_march - 9 };
    let year = era * 400 + year_of_era + i64::from(month <= 2);
    // Both are in range by construction (1..=31 and 1..=12).
    (year, u32::try_from(month).unwrap_or(1), u32::try_from(day).unwrap_or(1))
}

/// Unix seconds of a TOML date or date-time.
///
/// - a local date (`2013-12-10`) is 00:00:00 UTC that day;
/// - an offset date-time (`2013-12-10T08:30:00+01:00`) is converted to UTC;
/// - a local date-time (`2013-12-10T08:30:00`) is taken as UTC;
/// - a time of day alone (`08:30:00`) is refused: it is not a point in time.
///
/// Fractions of a second are dropped.
pub fn parse_toml_datetime(dt: &Datetime) -> Result<i64, String> {
    let Some(date) = dt.date else {
        return Err(format!("{dt} is a time of day without a date"));
    };
    let (year, month, day) = (i64::from(date.year), u32::from(date.month), u32::from(date.day));
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return Err(format!("{dt} is not a calendar date"));
    }
    let mut secs = days_from_civil(year, month, day) * SECS_PER_DAY;
    if let Some(time) = dt.time {
        let second = time.second.unwrap_or(0);
        // 60 is a leap second, which Unix time folds into the next one.
        if time.hour > 23 || time.minute > 59 || second > 60 {
            return Err(format!("{dt} is not a time of day"));
        }
        secs += i64::from(time.hour) * 3600 + i64::from(time.minute) * 60 + i64::from(second);
    }
    match dt.offset {
        None | Some(Offset::Z) => {}
        Some(Offset::Custom { minutes }) => secs -= i64::from(minutes) * 60,
    }
    Ok(secs)
}

/// RFC 3339 text of Unix seconds, in UTC: `2013-12-10T00:00:00Z`.
pub fn rfc3339(secs: i64) -> String {
    let (days, of_day) = (secs.div_euclid(SECS_PER_DAY), secs.rem_euclid(SECS_PER_DAY));
    let (hour, minute, second) = (of_day / 3600, of_day % 3600 / 60, of_day % 60);
    format!("{}T{hour:02}:{minute:02}:{second:02}Z", day_text(days))
}

/// The UTC date of Unix seconds: `2013-12-10`.
pub fn date(secs: i64) -> String {
    day_text(secs.div_euclid(SECS_PER_DAY))
}

fn day_text(days: i64) -> String {
    let (year, month, day) = civil_from_days(days);
    format!("{year:04}-{month:02}-{day:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toml_dt(s: &str) -> Datetime {
        s.parse().unwrap()
    }

    fn secs(s: &str) -> i64 {
        parse_toml_datetime(&toml_dt(s)).unwrap()
    }

    #[test]
    fn epoch() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(secs("1970-01-01"), 0);
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(date(0), "1970-01-01");
    }

    #[test]
    fn known_dates() {
        // Values from `date -u -d DATE +%s`.
        for (text, unix) in [
            ("2013-11-28", 1_385_596_800),
            ("2013-12-10", 1_386_633_600),
            ("2014-11-28", 1_417_132_800),
            ("2000-02-29", 951_782_400),
            ("2000-03-01", 951_868_800),
            ("2024-02-29", 1_709_164_800),
            ("2100-03-01", 4_107_542_400),
            ("1900-03-01", -2_203_891_200),
        ] {
            assert_eq!(secs(text), unix, "{text}");
            assert_eq!(date(unix), text);
            assert_eq!(rfc3339(unix), format!("{text}T00:00:00Z"));
        }
        assert_eq!(rfc3339(253_402_300_799), "9999-12-31T23:59:59Z");
        assert_eq!(rfc3339(-1), "1969-12-31T23:59:59Z");
    }

    #[test]
    fn leap_years() {
        assert!(is_leap_year(2000) && is_leap_year(2024) && is_leap_year(1600));
        assert!(!is_leap_year(1900) && !is_leap_year(2100) && !is_leap_year(2023));
        assert_eq!(days_in_month(2000, 2), 29);
        assert_eq!(days_in_month(1900, 2), 28);
        assert_eq!(days_in_month(2023, 13), 0);
        // 2000-02-29 is followed by 2000-03-01; 1900 and 2100 have no 29 February.
        assert_eq!(days_from_civil(2000, 3, 1) - days_from_civil(2000, 2, 29), 1);
        assert_eq!(days_from_civil(1900, 3, 1) - days_from_civil(1900, 2, 28), 1);
        assert_eq!(days_from_civil(2101, 1, 1) - days_from_civil(2100, 1, 1), 365);
        assert_eq!(days_from_civil(2001, 1, 1) - days_from_civil(2000, 1, 1), 366);
    }

    #[test]
    fn every_day_round_trips() {
        // 0000-03-01 to 2400-12-31: every day maps to the next one.
        let mut days = days_from_civil(0, 3, 1);
        for year in 0..=2400i64 {
            for month in 1..=12 {
                if year == 0 && month < 3 {
                    continue;
                }
                for day in 1..=days_in_month(year, month) {
                    assert_eq!(days_from_civil(year, month, day), days, "{year}-{month}-{day}");
                    assert_eq!(civil_from_days(days), (year, month, day));
                    days += 1;
                }
            }
        }
    }

    #[test]
    fn date_times_and_offsets() {
        assert_eq!(secs("2013-12-10T08:30:00Z"), 1_386_664_200);
        assert_eq!(secs("2013-12-10T08:30:00"), 1_386_664_200, "a local date-time is UTC");
        assert_eq!(secs("2013-12-10T08:30:00+01:00"), 1_386_660_600);
        assert_eq!(secs("2013-12-10T08:30:00-05:30"), 1_386_664_200 + 5 * 3600 + 1800);
        assert_eq!(secs("2013-12-10T08:30:00.999Z"), 1_386_664_200, "fractions are dropped");
        assert_eq!(rfc3339(1_386_664_201), "2013-12-10T08:30:01Z");
    }

    #[test]
    fn refusals() {
        assert!(parse_toml_datetime(&toml_dt("08:30:00")).unwrap_err().contains("without a date"));
        let mut bad = toml_dt("2013-12-10");
        if let Some(d) = bad.date.as_mut() {
            d.month = 2;
            d.day = 30;
        }
        assert!(parse_toml_datetime(&bad).unwrap_err().contains("not a calendar date"));
    }

    #[test]
    fn extremes_do_not_panic() {
        for s in [i64::MIN, i64::MIN + 1, -1, i64::MAX - 1, i64::MAX] {
            let text = rfc3339(s);
            assert!(text.ends_with('Z'), "{text}");
            assert!(!date(s).is_empty());
        }
        let _ = now();
    }
}
