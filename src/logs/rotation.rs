//! Rotated log files: their names, when the next daily rotation is due, and the tidying
//! (gzip, retention) that the hub's archiver thread does off the writers' path.
//!
//! A log file `dir/api-out.log` is rotated by renaming it, between two lines, to
//! `dir/api-out__2024-05-01_13-45-10.log` (pm2-logrotate's names: the local time of the
//! rotation, `YYYY-MM-DD_HH-mm-ss`), then `.gz` is added when it is compressed. Two
//! rotations within one second get `_1`, `_2`… after the time. The names sort by
//! time, never change once given (log shippers and backups see each file once), and a
//! `*.log` glob still matches them, as pm2-logrotate's do.

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Days, LocalResult, NaiveDate, TimeZone};

/// chrono's spelling of pm2-logrotate's `YYYY-MM-DD_HH-mm-ss`.
const STAMP: &str = "%Y-%m-%d_%H-%M-%S";
/// Length of a formatted [`STAMP`] (four-digit years).
const STAMP_LEN: usize = 19;
const GZ: &str = ".gz";
/// A gzip being written: `<rotated>.gz.tmp`, renamed to `.gz` once complete.
const TMP: &str = ".tmp";

/// The stamp of a rotation at `at`.
pub(crate) fn stamp<Tz: TimeZone>(at: &DateTime<Tz>) -> String
where
    Tz::Offset: std::fmt::Display,
{
    at.format(STAMP).to_string()
}

/// `dir/<stem>__<stamp>[_<seq>][.<ext>]` for `base` = `dir/<stem>[.<ext>]`.
pub(crate) fn rotated_path(base: &Path, stamp: &str, seq: u32) -> PathBuf {
    let (stem, ext) = split_name(base);
    let mut name = stem;
    name.push_str("__");
    name.push_str(stamp);
    if seq > 0 {
        name.push_str(&format!("_{seq}"));
    }
    if let Some(ext) = ext {
        name.push('.');
        name.push_str(&ext);
    }
    base.with_file_name(name)
}

/// The file name of `base` as (stem, extension), as [`Path::file_stem`] splits it.
fn split_name(base: &Path) -> (String, Option<String>) {
    let stem = base
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let ext = base.extension().map(|e| e.to_string_lossy().into_owned());
    (stem, ext)
}

/// One rotated file of a log file, as found on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Rotated {
    pub path: PathBuf,
    pub stamp: String,
    pub seq: u32,
    pub gz: bool,
}

/// What a file name in the log's directory is to the log `base`.
#[derive(Debug, PartialEq, Eq)]
enum Kind {
    Rotated {
        stamp: String,
        seq: u32,
        gz: bool,
    },
    /// An unfinished gzip (`….gz.tmp`).
    Partial,
}

/// Reads `name` as a rotated file of the log whose stem and extension are given.
fn classify(stem: &str, ext: Option<&str>, name: &str) -> Option<Kind> {
    let rest = name.strip_prefix(stem)?.strip_prefix("__")?;
    let stamp = rest.get(..STAMP_LEN)?;
    let stamp_ok = stamp.bytes().enumerate().all(|(i, b)| match i {
        4 | 7 | 13 | 16 => b == b'-',
        10 => b == b'_',
        _ => b.is_ascii_digit(),
    });
    if !stamp_ok {
        return None;
    }
    let mut rest = &rest[STAMP_LEN..];
    let mut seq = 0;
    if let Some(after) = rest.strip_prefix('_') {
        let digits = after.bytes().take_while(u8::is_ascii_digit).count();
        seq = after[..digits].parse().ok().filter(|n| *n > 0)?;
        rest = &after[digits..];
    }
    if let Some(ext) = ext {
        rest = rest.strip_prefix('.')?.strip_prefix(ext)?;
    }
    let kind = match rest {
        "" => Kind::Rotated {
            stamp: stamp.to_owned(),
            seq,
            gz: false,
        },
        GZ => Kind::Rotated {
            stamp: stamp.to_owned(),
            seq,
            gz: true,
        },
        r if r.strip_prefix(GZ) == Some(TMP) => Kind::Partial,
        _ => return None,
    };
    Some(kind)
}

/// The rotated files of `base`, oldest first, and the unfinished gzips beside them. A
/// missing directory has none.
fn scan(base: &Path) -> io::Result<(Vec<Rotated>, Vec<PathBuf>)> {
    let (stem, ext) = split_name(base);
    let dir = match base.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((Vec::new(), Vec::new())),
        Err(e) => return Err(e),
    };
    let mut rotated = Vec::new();
    let mut partial = Vec::new();
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        // Only regular files: a link or directory of that name is not ours to delete.
        if !entry.file_type().is_ok_and(|t| t.is_file()) {
            continue;
        }
        match classify(&stem, ext.as_deref(), name) {
            Some(Kind::Rotated { stamp, seq, gz }) => rotated.push(Rotated {
                path: entry.path(),
                stamp,
                seq,
                gz,
            }),
            Some(Kind::Partial) => partial.push(entry.path()),
            None => {}
        }
    }
    rotated.sort_by(|a, b| (&a.stamp, a.seq, a.gz).cmp(&(&b.stamp, b.seq, b.gz)));
    Ok((rotated, partial))
}

/// The rotated files of `base`, oldest first.
pub(crate) fn list(base: &Path) -> io::Result<Vec<Rotated>> {
    scan(base).map(|(rotated, _)| rotated)
}

/// The rotated files of `base`, newest first (what `drover logs` reads back through
/// when the current file holds too few lines); none when they cannot be listed.
pub fn rotated_newest_first(base: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = list(base)
        .unwrap_or_default()
        .into_iter()
        .map(|r| r.path)
        .collect();
    files.reverse();
    files
}

/// Whether a rotated file is gzipped (by its name).
pub fn is_gzip(path: &Path) -> bool {
    path.to_str().is_some_and(|p| p.ends_with(GZ))
}

/// The last `n` lines (without their `\n`) of a gzipped log file, decompressed as it
/// is read: a rotated file is at most log_max_size, so reading it whole is bounded.
pub fn tail_gzip(path: &Path, n: usize) -> io::Result<Vec<Vec<u8>>> {
    let reader = BufReader::new(flate2::read::MultiGzDecoder::new(File::open(path)?));
    let mut last = std::collections::VecDeque::with_capacity(n.min(4096));
    for line in reader.split(b'\n') {
        let line = line?;
        if last.len() == n {
            last.pop_front();
        }
        if n > 0 {
            last.push_back(line);
        }
    }
    Ok(last.into())
}

/// Removes every rotated file of `base` (and unfinished gzips are left to the archiver,
/// which is writing them); returns how many were removed. A file the archiver gzips
/// meanwhile is caught by it (see [`gzip`]).
pub(crate) fn remove_all(base: &Path) -> io::Result<usize> {
    let mut removed = 0;
    for r in list(base)? {
        match std::fs::remove_file(&r.path) {
            Ok(()) => removed += 1,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        if !r.gz {
            // Gzipped by the archiver between the listing and now.
            let _ = std::fs::remove_file(gz_path(&r.path));
        }
    }
    Ok(removed)
}

fn gz_path(path: &Path) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(GZ);
    p.into()
}

/// Keeps the newest `retain` rotated files of `base`, deleting older ones, then, with
/// `compress`, gzips those kept that are not yet. Runs on the archiver thread, the only
/// writer of `.gz.tmp` files, so any found are left from a crash and are removed. Files
/// about to be deleted are never compressed first, so a burst that rotates faster than
/// gzip keeps up costs no CPU for files that go anyway.
pub(crate) fn tidy(base: &Path, retain: u32, compress: bool) -> io::Result<()> {
    let (mut rotated, partial) = scan(base)?;
    for p in partial {
        let _ = std::fs::remove_file(p);
    }
    // Both `x` and `x.gz` (a crash between the gzip's rename and the removal): the gzip
    // is complete, since it is renamed into place only after its fsync.
    let mut i = 0;
    while i + 1 < rotated.len() {
        let (a, b) = (&rotated[i], &rotated[i + 1]);
        if a.stamp == b.stamp && a.seq == b.seq && !a.gz && b.gz {
            let _ = std::fs::remove_file(&a.path);
            rotated.remove(i);
        } else {
            i += 1;
        }
    }
    let excess = rotated.len().saturating_sub(retain as usize);
    for old in rotated.drain(..excess) {
        if let Err(e) = std::fs::remove_file(&old.path)
            && e.kind() != io::ErrorKind::NotFound
        {
            tracing::warn!(path = %old.path.display(), error = %e, "cannot delete a rotated log file");
        }
    }
    if compress {
        for r in rotated.iter().filter(|r| !r.gz) {
            if let Err(e) = gzip(&r.path) {
                tracing::warn!(path = %r.path.display(), error = %e, "cannot gzip a rotated log file");
            }
        }
    }
    Ok(())
}

/// `path` → `path.gz`: written to `path.gz.tmp` (created new, never through a link),
/// fsynced, renamed into place, then `path` is removed. If `path` was removed meanwhile
/// (`drover flush`), the gzip goes too.
fn gzip(path: &Path) -> io::Result<()> {
    let gz = gz_path(path);
    let mut tmp = gz.clone().into_os_string();
    tmp.push(TMP);
    let tmp = PathBuf::from(tmp);
    let mut src = File::open(path)?;
    let out = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o640)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&tmp)?;
    let written = (|| {
        let mut enc = flate2::write::GzEncoder::new(
            BufWriter::with_capacity(64 * 1024, out),
            flate2::Compression::default(),
        );
        io::copy(&mut src, &mut enc)?;
        let out = enc.finish()?.into_inner().map_err(|e| e.into_error())?;
        out.sync_all()?;
        std::fs::rename(&tmp, &gz)
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let _ = std::fs::remove_file(&gz);
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// The first instant after `after` that is a local midnight: the start of the next day.
/// Where a clock change skips midnight (a zone that springs forward at 00:00), the first
/// local time that exists that day; where midnight happens twice, the first of them.
pub fn next_midnight<Tz: TimeZone>(after: &DateTime<Tz>) -> DateTime<Tz> {
    let tz = after.timezone();
    let next_day = after
        .date_naive()
        .checked_add_days(Days::new(1))
        .and_then(|day| start_of_day(&tz, day));
    match next_day {
        Some(t) if t > *after => t,
        // Only at the end of chrono's calendar, or in a zone that makes no sense.
        _ => after.clone() + chrono::TimeDelta::days(1),
    }
}

fn start_of_day<Tz: TimeZone>(tz: &Tz, day: NaiveDate) -> Option<DateTime<Tz>> {
    let midnight = day.and_hms_opt(0, 0, 0)?;
    match tz.from_local_datetime(&midnight) {
        LocalResult::Single(t) => Some(t),
        LocalResult::Ambiguous(first, _) => Some(first),
        // Skipped: gaps are whole minutes, at most a few hours.
        LocalResult::None => (1..=24 * 60).find_map(|m| {
            tz.from_local_datetime(&(midnight + chrono::TimeDelta::minutes(m)))
                .earliest()
        }),
    }
}

/// Writes `bytes` whole to `file`, retrying short writes; on failure, how many bytes
/// made it.
pub(crate) fn write_all_counted(
    file: &mut impl Write,
    bytes: &[u8],
) -> Result<(), (usize, io::Error)> {
    let mut written = 0;
    while written < bytes.len() {
        match file.write(&bytes[written..]) {
            Ok(0) => return Err((written, io::Error::from(io::ErrorKind::WriteZero))),
            Ok(n) => written += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err((written, e)),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{FixedOffset, NaiveDateTime, Offset};

    fn at(tz: FixedOffset, text: &str) -> DateTime<FixedOffset> {
        let naive = NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S").unwrap();
        tz.from_local_datetime(&naive).single().unwrap()
    }

    #[test]
    fn the_next_midnight_in_fixed_zones() {
        for hours in [-12, -3, 0, 1, 5, 14] {
            let tz = FixedOffset::east_opt(hours * 3600).unwrap();
            let cases = [
                ("2024-05-01 13:45:10", "2024-05-02 00:00:00"),
                ("2024-05-01 00:00:00", "2024-05-02 00:00:00"),
                ("2024-05-01 23:59:59", "2024-05-02 00:00:00"),
                ("2024-02-28 12:00:00", "2024-02-29 00:00:00"),
                ("2024-02-29 12:00:00", "2024-03-01 00:00:00"),
                ("2023-12-31 23:00:00", "2024-01-01 00:00:00"),
            ];
            for (now, want) in cases {
                assert_eq!(
                    next_midnight(&at(tz, now)),
                    at(tz, want),
                    "{now} UTC{hours:+}"
                );
            }
        }
        // +05:30: half-hour zones count from their own midnight.
        let india = FixedOffset::east_opt(5 * 3600 + 1800).unwrap();
        let t = next_midnight(&at(india, "2024-05-01 23:30:00"));
        assert_eq!(t.naive_utc().to_string(), "2024-05-01 18:30:00");
    }

    /// A zone whose clocks spring forward at midnight (as São Paulo's did): on
    /// 2024-11-03, 00:00 local does not exist; the day starts at 01:00.
    #[derive(Debug, Clone, Copy)]
    struct SpringsAtMidnight;

    impl SpringsAtMidnight {
        fn switch() -> NaiveDateTime {
            NaiveDate::from_ymd_opt(2024, 11, 3)
                .unwrap()
                .and_hms_opt(3, 0, 0)
                .unwrap()
        }
    }

    impl TimeZone for SpringsAtMidnight {
        type Offset = FixedOffset;
        fn from_offset(_: &FixedOffset) -> Self {
            SpringsAtMidnight
        }
        fn offset_from_local_date(&self, _: &NaiveDate) -> LocalResult<FixedOffset> {
            unreachable!("not used by next_midnight")
        }
        fn offset_from_local_datetime(&self, local: &NaiveDateTime) -> LocalResult<FixedOffset> {
            let before = FixedOffset::west_opt(3 * 3600).unwrap();
            let after = FixedOffset::west_opt(2 * 3600).unwrap();
            // Local times from 00:00 to 00:59 on the day of the switch do not exist.
            let gap_start = Self::switch() - chrono::TimeDelta::hours(3);
            let gap_end = gap_start + chrono::TimeDelta::hours(1);
            if *local < gap_start {
                LocalResult::Single(before)
            } else if *local < gap_end {
                LocalResult::None
            } else {
                LocalResult::Single(after)
            }
        }
        fn offset_from_utc_date(&self, _: &NaiveDate) -> FixedOffset {
            unreachable!("not used by next_midnight")
        }
        fn offset_from_utc_datetime(&self, utc: &NaiveDateTime) -> FixedOffset {
            if *utc < Self::switch() {
                FixedOffset::west_opt(3 * 3600).unwrap()
            } else {
                FixedOffset::west_opt(2 * 3600).unwrap()
            }
        }
    }

    #[test]
    fn a_skipped_midnight_starts_the_day_at_the_first_time_that_exists() {
        let tz = SpringsAtMidnight;
        let evening = tz
            .from_local_datetime(
                &NaiveDate::from_ymd_opt(2024, 11, 2)
                    .unwrap()
                    .and_hms_opt(22, 0, 0)
                    .unwrap(),
            )
            .single()
            .unwrap();
        let next = next_midnight(&evening);
        assert_eq!(next.naive_local().to_string(), "2024-11-03 01:00:00");
        assert_eq!(
            next.offset().fix(),
            FixedOffset::west_opt(2 * 3600).unwrap()
        );
        // Two hours after 22:00 -03:00, not three.
        assert_eq!((next - evening).num_hours(), 2);
        // And the day after is an ordinary midnight.
        assert_eq!(
            next_midnight(&next).naive_local().to_string(),
            "2024-11-04 00:00:00"
        );
    }

    #[test]
    fn rotated_names_and_what_is_one() {
        let base = Path::new("/l/api-out-0.log");
        assert_eq!(
            rotated_path(base, "2024-05-01_13-45-10", 0),
            Path::new("/l/api-out-0__2024-05-01_13-45-10.log")
        );
        assert_eq!(
            rotated_path(base, "2024-05-01_13-45-10", 2),
            Path::new("/l/api-out-0__2024-05-01_13-45-10_2.log")
        );
        assert_eq!(
            rotated_path(Path::new("/l/api"), "2024-05-01_13-45-10", 0),
            Path::new("/l/api__2024-05-01_13-45-10")
        );
        let kind = |stem: &str, ext: Option<&str>, name: &str| classify(stem, ext, name);
        let rotated = |stamp: &str, seq, gz| {
            Some(Kind::Rotated {
                stamp: stamp.into(),
                seq,
                gz,
            })
        };
        let s = "2024-05-01_13-45-10";
        let log = Some("log");
        assert_eq!(
            kind("api-out", log, &format!("api-out__{s}.log")),
            rotated(s, 0, false)
        );
        assert_eq!(
            kind("api-out", log, &format!("api-out__{s}_3.log.gz")),
            rotated(s, 3, true)
        );
        assert_eq!(
            kind("api-out", log, &format!("api-out__{s}.log.gz.tmp")),
            Some(Kind::Partial)
        );
        assert_eq!(
            kind("api", None, &format!("api__{s}")),
            rotated(s, 0, false)
        );
        for not in [
            "api-out.log".to_owned(),
            format!("api-out__{s}.txt"),
            format!("api-out-0__{s}.log"),
            format!("api-out__{s}_0.log"),
            format!("api-out__{s}_.log"),
            format!("api-out__{s}.log.bak"),
            "api-out__2024-05-01_13-45-1x.log".to_owned(),
            "api-out__2024-05-01.log".to_owned(),
            format!("xapi-out__{s}.log"),
        ] {
            assert_eq!(kind("api-out", log, &not), None, "{not}");
        }
    }

    #[test]
    fn tidy_keeps_the_newest_and_gzips_them_whole() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("api-out.log");
        std::fs::write(&base, "current\n").unwrap();
        // Out of order on purpose: the listing sorts by stamp, then sequence.
        let stamps = [
            ("2024-05-01_10-00-00", 2),
            ("2024-05-01_10-00-00", 0),
            ("2024-04-30_23-59-59", 0),
            ("2024-05-01_10-00-00", 1),
            ("2024-05-02_00-00-00", 0),
        ];
        for (stamp, seq) in stamps {
            let p = rotated_path(&base, stamp, seq);
            std::fs::write(&p, format!("{stamp} {seq}\n").repeat(1000)).unwrap();
        }
        // Leftovers: an unfinished gzip, and another app's file that looks alike.
        std::fs::write(
            dir.path().join("api-out__2024-05-01_10-00-00.log.gz.tmp"),
            "x",
        )
        .unwrap();
        std::fs::write(dir.path().join("api-out-1__2024-05-01_10-00-00.log"), "x").unwrap();
        let order: Vec<_> = list(&base)
            .unwrap()
            .into_iter()
            .map(|r| (r.stamp, r.seq))
            .collect();
        assert_eq!(
            order,
            [
                ("2024-04-30_23-59-59".to_owned(), 0),
                ("2024-05-01_10-00-00".to_owned(), 0),
                ("2024-05-01_10-00-00".to_owned(), 1),
                ("2024-05-01_10-00-00".to_owned(), 2),
                ("2024-05-02_00-00-00".to_owned(), 0),
            ]
        );
        tidy(&base, 3, true).unwrap();
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(
            names,
            [
                "api-out-1__2024-05-01_10-00-00.log",
                "api-out.log",
                "api-out__2024-05-01_10-00-00_1.log.gz",
                "api-out__2024-05-01_10-00-00_2.log.gz",
                "api-out__2024-05-02_00-00-00.log.gz",
            ]
        );
        let newest = rotated_newest_first(&base).remove(0);
        assert!(is_gzip(&newest));
        let lines = tail_gzip(&newest, 2).unwrap();
        assert_eq!(
            lines,
            [
                b"2024-05-02_00-00-00 0".to_vec(),
                b"2024-05-02_00-00-00 0".to_vec()
            ]
        );
        assert_eq!(tail_gzip(&newest, 5000).unwrap().len(), 1000);
        assert!(tail_gzip(&newest, 0).unwrap().is_empty());
        // Retention shrinks; nothing is gzipped twice.
        tidy(&base, 1, true).unwrap();
        assert_eq!(list(&base).unwrap().len(), 1);
        assert_eq!(remove_all(&base).unwrap(), 1);
        assert!(list(&base).unwrap().is_empty());
        assert_eq!(std::fs::read_to_string(&base).unwrap(), "current\n");
    }
}
