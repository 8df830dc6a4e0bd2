//! Billing cycles: the calendar month in UTC, or monthly from a per-user anchor. The service
//! reads the time from a `common::clock::Clock`, so that tests can cross a cycle boundary.

use chrono::{DateTime, Datelike, Months, Utc};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cycle {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

/// No cycle is longer: a month has at most 31 days, and an anchor on a day a month lacks
/// falls on that month's last day.
pub const LONGEST_CYCLE_DAYS: i64 = 31;

/// The cycle that contains `now`. With an anchor, cycle k starts at `anchor + k months` (a
/// 31st clamps to the month's last day, and the next month returns to the 31st). Without one,
/// the calendar month in UTC: the cycles anchored at the Unix epoch, 1970-01-01T00:00:00Z.
pub fn cycle_at(anchor: Option<DateTime<Utc>>, now: DateTime<Utc>) -> Cycle {
    let anchor = anchor.unwrap_or(DateTime::UNIX_EPOCH);
    let shift = |months: i64| -> DateTime<Utc> {
        let magnitude = Months::new(u32::try_from(months.unsigned_abs()).unwrap_or(u32::MAX));
        if months >= 0 {
            anchor
                .checked_add_months(magnitude)
                .unwrap_or(DateTime::<Utc>::MAX_UTC)
        } else {
            anchor
                .checked_sub_months(magnitude)
                .unwrap_or(DateTime::<Utc>::MIN_UTC)
        }
    };
    let mut months = i64::from(now.year() - anchor.year()) * 12 + i64::from(now.month())
        - i64::from(anchor.month());
    while shift(months) > now {
        months -= 1;
    }
    while shift(months + 1) <= now {
        months += 1;
    }
    Cycle {
        start: shift(months),
        end: shift(months + 1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeDelta, TimeZone};

    fn at(y: i32, m: u32, d: u32, h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, h, 0, 0).unwrap()
    }

    #[test]
    fn calendar_months_in_utc() {
        let cycle = cycle_at(None, at(2026, 11, 23, 10));
        assert_eq!(
            (cycle.start, cycle.end),
            (at(2026, 11, 1, 0), at(2026, 12, 1, 0))
        );
        let december = cycle_at(None, at(2026, 12, 31, 23));
        assert_eq!(december.end, at(2027, 1, 1, 0));
    }

    #[test]
    fn anchored_cycles_keep_the_anchor_day_and_time() {
        let anchor = Some(at(2026, 1, 15, 12));
        let cycle = cycle_at(anchor, at(2026, 3, 20, 0));
        assert_eq!(
            (cycle.start, cycle.end),
            (at(2026, 3, 15, 12), at(2026, 4, 15, 12))
        );
        let before_the_hour = cycle_at(anchor, at(2026, 3, 15, 11));
        assert_eq!(before_the_hour.start, at(2026, 2, 15, 12));
        let before_the_anchor = cycle_at(anchor, at(2025, 12, 20, 0));
        assert_eq!(before_the_anchor.start, at(2025, 12, 15, 12));
    }

    #[test]
    fn an_anchor_on_the_31st_clamps_and_returns() {
        let anchor = Some(at(2026, 1, 31, 0));
        let february = cycle_at(anchor, at(2026, 3, 1, 0));
        assert_eq!(
            (february.start, february.end),
            (at(2026, 2, 28, 0), at(2026, 3, 31, 0))
        );
    }

    #[test]
    fn no_cycle_is_longer_than_the_longest() {
        let anchors = [
            at(2024, 1, 31, 23),
            at(2023, 5, 30, 0),
            at(2024, 2, 29, 12),
            at(2025, 8, 1, 0),
        ];
        for anchor in anchors {
            let mut now = anchor;
            for _ in 0..800 {
                let cycle = cycle_at(Some(anchor), now);
                assert!(cycle.start <= now && now < cycle.end, "{anchor} {now}");
                assert!(cycle.end - cycle.start <= TimeDelta::days(LONGEST_CYCLE_DAYS));
                now += TimeDelta::hours(13);
            }
        }
    }
}
