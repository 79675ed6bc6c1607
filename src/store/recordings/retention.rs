//! Retention: delete recordings by age, and find raw files that a crash left uncompacted.
//!
//! Files live in `DIR/YYYY/MM/DD/` by the UTC day their call started, so expiry removes whole
//! day directories whose day is more than `retention_days` before today. Anything in the tree
//! that is not a day directory of that shape is left alone. This module only walks and deletes;
//! the compaction worker decides when to sweep.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::{RAW_SUFFIX, RECORDINGS_DELETED, RecordingError, RecordingStore};

/// A raw file untouched for this long belongs to no running call (calls write every 250 ms).
pub const ORPHAN_AGE: Duration = Duration::from_secs(300);

/// What one sweep did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SweepReport {
    /// Day directories deleted.
    pub days_deleted: u32,
    /// Recording files in them.
    pub files_deleted: u64,
    /// Raw files no call is writing any more and nobody compacted (after a crash).
    pub orphans: Vec<PathBuf>,
}

/// (year, month, day) of a count of days since 1970-01-01 (proleptic Gregorian).
pub fn civil_date(days: i64) -> (i64, u32, u32) {
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Days since 1970-01-01 of a civil date (inverse of [`civil_date`]).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

impl RecordingStore {
    /// Delete day directories past retention and list orphaned raw files, as of `now`.
    pub fn sweep(&self, now: SystemTime) -> Result<SweepReport, RecordingError> {
        let mut report = SweepReport::default();
        let today = now
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() / 86_400) as i64;
        let cutoff = (self.retention_days > 0).then(|| today - i64::from(self.retention_days));
        for (y, year_dir) in numbered(self.dir())? {
            for (m, month_dir) in numbered(&year_dir)? {
                for (d, day_dir) in numbered(&month_dir)? {
                    let valid = (1..=12).contains(&m) && (1..=31).contains(&d);
                    let day = days_from_civil(y, m as u32, d as u32);
                    if valid && cutoff.is_some_and(|c| day < c) {
                        report.files_deleted += self.remove_day(&day_dir)?;
                        report.days_deleted += 1;
                    } else if valid {
                        self.collect_orphans(&day_dir, now, &mut report.orphans)?;
                    }
                }
                remove_if_empty(&month_dir);
            }
            remove_if_empty(&year_dir);
        }
        if report.files_deleted > 0 {
            metrics::counter!(RECORDINGS_DELETED, "reason" => "retention")
                .increment(report.files_deleted);
        }
        Ok(report)
    }

    fn remove_day(&self, day_dir: &Path) -> Result<u64, RecordingError> {
        let io = |source| RecordingError::Io {
            path: day_dir.to_owned(),
            source,
        };
        let _guard = self
            .swap
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let files = std::fs::read_dir(day_dir).map_err(io)?.count() as u64;
        std::fs::remove_dir_all(day_dir).map_err(io)?;
        Ok(files)
    }

    fn collect_orphans(
        &self,
        day_dir: &Path,
        now: SystemTime,
        out: &mut Vec<PathBuf>,
    ) -> Result<(), RecordingError> {
        let io = |source| RecordingError::Io {
            path: day_dir.to_owned(),
            source,
        };
        for entry in std::fs::read_dir(day_dir).map_err(io)? {
            let entry = entry.map_err(io)?;
            let name = entry.file_name();
            if !name.to_str().is_some_and(|n| n.ends_with(RAW_SUFFIX)) {
                continue;
            }
            let Ok(meta) = entry.metadata() else { continue };
            let idle = meta
                .modified()
                .ok()
                .and_then(|m| now.duration_since(m).ok())
                .unwrap_or_default();
            if meta.is_file() && idle >= ORPHAN_AGE {
                out.push(entry.path());
            }
        }
        Ok(())
    }
}

/// Sub-directories of `dir` whose names are all digits, with their numbers (none if `dir` is
/// missing).
fn numbered(dir: &Path) -> Result<Vec<(i64, PathBuf)>, RecordingError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(RecordingError::Io {
                path: dir.to_owned(),
                source,
            });
        }
    };
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(n) = name
            .to_str()
            .filter(|s| (1..=4).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|s| s.parse::<i64>().ok())
        else {
            continue;
        };
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            out.push((n, entry.path()));
        }
    }
    out.sort();
    Ok(out)
}

fn remove_if_empty(dir: &Path) {
    // Fails harmlessly when the directory still has entries.
    let _ = std::fs::remove_dir(dir);
}

#[cfg(test)]
mod tests {
    use super::super::Format;
    use super::*;

    #[test]
    fn civil_dates_round_trip() {
        assert_eq!(civil_date(0), (1970, 1, 1));
        assert_eq!(civil_date(19_782), (2024, 2, 29));
        assert_eq!(civil_date(-1), (1969, 12, 31));
        for days in (-800_000..800_000).step_by(997) {
            let (y, m, d) = civil_date(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }

    #[test]
    fn sweep_deletes_expired_days_and_finds_orphans() {
        let dir = std::env::temp_dir().join(format!("voxbridge-sweep-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = RecordingStore::with_format(dir.clone(), 7, Format::Wav);
        let now = SystemTime::now();
        let day = Duration::from_secs(86_400);
        let old = store.raw_path("CAold", now - day * 8).unwrap();
        let edge = store.raw_path("CAedge", now - day * 7).unwrap();
        let fresh = store.raw_path("CAfresh", now).unwrap();
        for p in [&old, &edge, &fresh] {
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, b"x").unwrap();
        }
        let stray = dir.join("notes");
        std::fs::create_dir_all(&stray).unwrap();
        // Nothing has been written for 10 minutes: every raw file is an orphan, except one
        // written just now.
        for p in [&old, &edge, &fresh] {
            let f = std::fs::File::options().write(true).open(p).unwrap();
            f.set_modified(now - ORPHAN_AGE * 2).unwrap();
        }
        let live = store.raw_path("CAlive", now).unwrap();
        std::fs::write(&live, b"x").unwrap();
        let report = store.sweep(now).unwrap();
        assert_eq!((report.days_deleted, report.files_deleted), (1, 1));
        assert!(!old.exists() && edge.exists() && fresh.exists() && stray.exists());
        let mut orphans = report.orphans.clone();
        orphans.sort();
        let mut expected = vec![edge.clone(), fresh.clone()];
        expected.sort();
        assert_eq!(orphans, expected);
        // retention_days = 0 keeps everything.
        let forever = RecordingStore::with_format(dir.clone(), 0, Format::Wav);
        assert_eq!(forever.sweep(now + day * 3650).unwrap().days_deleted, 0);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
