//! Calling windows: whether a moment is inside a campaign's local calling hours in a given
//! time zone, and if not, when the window next opens (so the contact waits, not the dialer).
//!
//! Pure time arithmetic (chrono-tz); no I/O, no clock of its own.

use chrono::{DateTime, Datelike, Duration, NaiveTime, TimeZone, Utc, Weekday};
use chrono_tz::Tz;

use super::model::CallingWindow;

/// A parsed [`CallingWindow`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    start: NaiveTime,
    end: NaiveTime,
    /// Bit `n` set: weekday `n` (Monday = 0) allowed.
    days: u8,
}

const DAY_NAMES: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

impl Window {
    pub fn parse(w: &CallingWindow) -> Result<Self, String> {
        let time = |s: &str| {
            NaiveTime::parse_from_str(s, "%H:%M").map_err(|_| format!("{s:?} is not HH:MM"))
        };
        let (start, end) = (time(&w.start)?, time(&w.end)?);
        if start == end {
            return Err("start and end are equal (use 00:00–23:59 for all day)".into());
        }
        let mut days = 0u8;
        for d in &w.days {
            let lower = d.trim().to_ascii_lowercase();
            let Some(i) = DAY_NAMES.iter().position(|n| lower.starts_with(n)) else {
                return Err(format!("unknown day {d:?} (mon … sun)"));
            };
            days |= 1 << i;
        }
        if days == 0 {
            days = 0x7f;
        }
        Ok(Self { start, end, days })
    }

    fn day_allowed(&self, day: Weekday) -> bool {
        self.days & (1 << day.num_days_from_monday()) != 0
    }

    /// Whether `at` is inside the window in `tz`. A window past midnight belongs to the day
    /// it opened on.
    pub fn contains(&self, tz: Tz, at: DateTime<Utc>) -> bool {
        let local = at.with_timezone(&tz);
        let t = local.time();
        if self.start < self.end {
            self.day_allowed(local.weekday()) && t >= self.start && t < self.end
        } else if t >= self.start {
            self.day_allowed(local.weekday())
        } else {
            t < self.end && self.day_allowed(local.weekday().pred())
        }
    }

    /// `at` if inside the window, else when it next opens (within 8 days; `None` if never).
    pub fn next_open(&self, tz: Tz, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        if self.contains(tz, at) {
            return Some(at);
        }
        let today = at.with_timezone(&tz).date_naive();
        (0..8).find_map(|n| {
            let day = today + Duration::days(n);
            if !self.day_allowed(day.weekday()) {
                return None;
            }
            // A gap in local time (DST) has no opening then: take the first valid instant.
            let open = tz
                .from_local_datetime(&day.and_time(self.start))
                .earliest()
                .or_else(|| {
                    tz.from_local_datetime(&(day.and_time(self.start) + Duration::hours(1)))
                        .earliest()
                })?
                .with_timezone(&Utc);
            (open > at).then_some(open)
        })
    }
}

/// A time zone by IANA name.
pub fn zone(name: &str) -> Option<Tz> {
    name.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(start: &str, end: &str, days: &[&str]) -> Window {
        Window::parse(&CallingWindow {
            start: start.into(),
            end: end.into(),
            days: days.iter().map(|d| d.to_string()).collect(),
        })
        .unwrap()
    }

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn inside_and_next_opening_in_the_contacts_zone() {
        let ny: Tz = "America/New_York".parse().unwrap();
        let win = w("09:00", "21:00", &["mon", "tue", "wed", "thu", "fri"]);
        // Wed 2026-01-07 15:00 UTC = 10:00 in New York: inside.
        assert!(win.contains(ny, utc("2026-01-07T15:00:00Z")));
        // 03:00 UTC = 22:00 the day before in New York: outside; opens 09:00 local = 14:00 UTC.
        let at = utc("2026-01-08T03:00:00Z");
        assert!(!win.contains(ny, at));
        assert_eq!(win.next_open(ny, at), Some(utc("2026-01-08T14:00:00Z")));
        // Saturday: next opening is Monday 09:00.
        let sat = utc("2026-01-10T15:00:00Z");
        assert!(!win.contains(ny, sat));
        assert_eq!(win.next_open(ny, sat), Some(utc("2026-01-12T14:00:00Z")));
        // The same instant is inside in Tokyo's morning only if the window says so.
        let tokyo: Tz = "Asia/Tokyo".parse().unwrap();
        assert!(!win.contains(tokyo, utc("2026-01-07T15:00:00Z"))); // 00:00 Thu in Tokyo
    }

    #[test]
    fn past_midnight_and_bad_input() {
        let night = w("22:00", "02:00", &["fri"]);
        let tz = chrono_tz::UTC;
        assert!(night.contains(tz, utc("2026-01-09T23:00:00Z"))); // Fri 23:00
        assert!(night.contains(tz, utc("2026-01-10T01:00:00Z"))); // Sat 01:00, Friday's window
        assert!(!night.contains(tz, utc("2026-01-11T01:00:00Z"))); // Sun 01:00
        let bad = |s: &str, e: &str, d: &[&str]| {
            Window::parse(&CallingWindow {
                start: s.into(),
                end: e.into(),
                days: d.iter().map(|x| x.to_string()).collect(),
            })
            .is_err()
        };
        assert!(bad("9", "21:00", &[]));
        assert!(bad("09:00", "09:00", &[]));
        assert!(bad("09:00", "21:00", &["someday"]));
    }
}
