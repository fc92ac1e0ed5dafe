//! Calendar periods: labels (`2026-03-15`, `2026-W05`, `2026-03`, `2026-Q1`,
//! `2026`), their start and end dates. Weeks are ISO weeks (Monday start).
//! Periods are half-open `[start, end)`.

use chrono::{Datelike, Duration, Months, NaiveDate, Weekday};

use super::types::Grain;

/// Start of the period of `grain` containing `date`.
pub fn period_start(grain: Grain, date: NaiveDate) -> NaiveDate {
    match grain {
        Grain::Day => date,
        Grain::Week => date - Duration::days(date.weekday().num_days_from_monday() as i64),
        Grain::Month => date.with_day(1).unwrap_or(date),
        Grain::Quarter => {
            let month = (date.month0() / 3) * 3 + 1;
            NaiveDate::from_ymd_opt(date.year(), month, 1).unwrap_or(date)
        }
        Grain::Year => NaiveDate::from_ymd_opt(date.year(), 1, 1).unwrap_or(date),
    }
}

/// End (exclusive) of the period starting at `start`.
pub fn period_end(grain: Grain, start: NaiveDate) -> NaiveDate {
    match grain {
        Grain::Day => start + Duration::days(1),
        Grain::Week => start + Duration::days(7),
        Grain::Month => start + Months::new(1),
        Grain::Quarter => start + Months::new(3),
        Grain::Year => start + Months::new(12),
    }
}

/// Start of the period before the one starting at `start`.
pub fn previous_start(grain: Grain, start: NaiveDate) -> Option<NaiveDate> {
    start.pred_opt().map(|d| period_start(grain, d))
}

/// Start of the same period a year before the one starting at `start`:
/// week W of the previous ISO year (none when that year has no week W),
/// otherwise 12 months earlier.
pub fn same_period_last_year(grain: Grain, start: NaiveDate) -> Option<NaiveDate> {
    match grain {
        Grain::Week => {
            let w = start.iso_week();
            NaiveDate::from_isoywd_opt(w.year() - 1, w.week(), Weekday::Mon)
        }
        Grain::Day => start.checked_sub_months(Months::new(12)),
        _ => start
            .checked_sub_months(Months::new(12))
            .map(|d| period_start(grain, d)),
    }
}

/// The label of the period starting at `start`.
pub fn label(grain: Grain, start: NaiveDate) -> String {
    match grain {
        Grain::Day => start.format("%Y-%m-%d").to_string(),
        Grain::Week => {
            let w = start.iso_week();
            format!("{}-W{:02}", w.year(), w.week())
        }
        Grain::Month => start.format("%Y-%m").to_string(),
        Grain::Quarter => format!("{}-Q{}", start.year(), start.month0() / 3 + 1),
        Grain::Year => format!("{}", start.year()),
    }
}

/// Parses a period label; returns its grain and start date.
pub fn parse_label(text: &str) -> Option<(Grain, NaiveDate)> {
    let t = text.trim();
    let year_of = |s: &str| -> Option<i32> {
        (s.len() == 4 && s.chars().all(|c| c.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    };
    if let Some(y) = year_of(t) {
        return NaiveDate::from_ymd_opt(y, 1, 1).map(|d| (Grain::Year, d));
    }
    let (y, rest) = t.split_once('-')?;
    let y = year_of(y)?;
    if let Some(q) = rest.strip_prefix('Q') {
        let q: u32 = (q.len() == 1).then(|| q.parse().ok()).flatten()?;
        if !(1..=4).contains(&q) {
            return None;
        }
        return NaiveDate::from_ymd_opt(y, (q - 1) * 3 + 1, 1).map(|d| (Grain::Quarter, d));
    }
    if let Some(w) = rest.strip_prefix('W') {
        let w: u32 = (w.len() == 2).then(|| w.parse().ok()).flatten()?;
        return NaiveDate::from_isoywd_opt(y, w, Weekday::Mon).map(|d| (Grain::Week, d));
    }
    if rest.len() == 2 {
        let m: u32 = rest.parse().ok()?;
        return NaiveDate::from_ymd_opt(y, m, 1).map(|d| (Grain::Month, d));
    }
    if rest.len() == 5 {
        return NaiveDate::parse_from_str(t, "%Y-%m-%d")
            .ok()
            .map(|d| (Grain::Day, d));
    }
    None
}

/// An example label of a grain, for help texts.
pub fn example_label(grain: Grain) -> &'static str {
    match grain {
        Grain::Day => "2026-03-15",
        Grain::Week => "2026-W05",
        Grain::Month => "2026-03",
        Grain::Quarter => "2026-Q1",
        Grain::Year => "2026",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn labels_round_trip() {
        for (text, grain, start) in [
            ("2026-03-15", Grain::Day, "2026-03-15"),
            ("2026-W05", Grain::Week, "2026-01-26"),
            ("2020-W53", Grain::Week, "2020-12-28"),
            ("2026-W01", Grain::Week, "2025-12-29"),
            ("2026-03", Grain::Month, "2026-03-01"),
            ("2026-Q2", Grain::Quarter, "2026-04-01"),
            ("2026", Grain::Year, "2026-01-01"),
        ] {
            assert_eq!(parse_label(text), Some((grain, d(start))), "{text}");
            assert_eq!(label(grain, d(start)), text);
        }
        assert_eq!(parse_label("2021-W53"), None, "2021 has 52 ISO weeks");
        assert_eq!(parse_label("2026-13"), None);
        assert_eq!(parse_label("2026-Q5"), None);
    }

    #[test]
    fn starts_and_ends() {
        assert_eq!(period_start(Grain::Week, d("2021-01-03")), d("2020-12-28"));
        assert_eq!(
            period_start(Grain::Quarter, d("2026-05-20")),
            d("2026-04-01")
        );
        assert_eq!(period_end(Grain::Month, d("2024-02-01")), d("2024-03-01"));
        assert_eq!(period_end(Grain::Quarter, d("2026-10-01")), d("2027-01-01"));
    }
}
