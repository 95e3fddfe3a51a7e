//! The spool on real files: round trips, power-cut tails, damage, a full
//! disk, the bounds, and reopening.

use super::*;
use std::os::unix::fs::symlink;
use tempfile::TempDir;

const SEC: i64 = 1_000_000_000;
/// 2026-01-01, the fake clock's start.
const T0: i64 = 1_767_225_600 * SEC;

fn at(ns: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_nanos(u64::try_from(ns).unwrap_or(0))
}

fn options(dir: &Path) -> SpoolOptions {
    SpoolOptions {
        dir: dir.to_owned(),
        max_bytes: 64 << 20,
        max_age: Duration::from_secs(7 * 86_400),
    }
}

/// One packet of 10 samples × 3 channels starting at second `s`.
fn run(s: i64) -> Record {
    Record::Samples(SampleRun {
        stream: 0xfeed,
        first_ns: T0 + s * SEC,
        spacing_ns: 100_000_000,
        channels: 3,
        values: (0..30).map(|i| 2100 + (s as i32 + i) % 7).collect(),
    })
}

fn fill(spool: &mut Spool, seconds: std::ops::Range<i64>) {
    for s in seconds {
        spool.append(&run(s), at(T0 + s * SEC));
    }
    spool.sync();
}

fn firsts(spool: &Spool, from: i64) -> Vec<i64> {
    spool.read_from(from).map(|r| r.span().0).collect()
}

fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .expect("dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    v.sort();
    v
}

#[test]
fn records_come_back_bit_exact_after_a_reopen() {
    let dir = TempDir::new().expect("tempdir");
    let mut spool = Spool::open(&options(dir.path()), at(T0)).expect("open");
    fill(&mut spool, 0..50);
    let edge = GpioEdge {
        at_ns: T0 + 25 * SEC + 5,
        input: 1,
        level: true,
    };
    spool.append(&Record::Edge(edge), at(T0 + 26 * SEC));
    spool.sync();
    drop(spool);
    let spool = Spool::open(&options(dir.path()), at(T0 + 60 * SEC)).expect("reopen");
    let back: Vec<Record> = spool.read_from(i64::MIN).collect();
    assert_eq!(back.len(), 51);
    assert_eq!(back[0], run(0));
    assert_eq!(back[49], run(48), "the edge sorts between its neighbours");
    assert_eq!(back[26], Record::Edge(edge));
    assert_eq!(spool.oldest(), Some(T0));
    assert_eq!(spool.newest(), Some(T0 + 49 * SEC + 900_000_000));
}

#[test]
fn read_from_skips_what_ends_before_the_instant_across_segments() {
    let dir = TempDir::new().expect("tempdir");
    let mut o = options(dir.path());
    // 64 KiB segments (the smallest): ~1,000 records make several.
    o.max_bytes = 2 << 20;
    let mut spool = Spool::open(&o, at(T0)).expect("open");
    fill(&mut spool, 0..3000);
    assert!(spool.stats().segments >= 3, "{:?}", spool.stats());
    let got = firsts(&spool, T0 + 1000 * SEC + 950_000_000);
    assert_eq!(got.first(), Some(&(T0 + 1001 * SEC)));
    assert_eq!(got.len(), 1999);
    assert!(got.windows(2).all(|w| w[0] < w[1]));
}

#[test]
fn edges_written_late_are_ordered_across_a_segment_boundary() {
    let dir = TempDir::new().expect("tempdir");
    let mut o = options(dir.path());
    o.max_bytes = 2 << 20;
    let mut spool = Spool::open(&o, at(T0)).expect("open");
    let mut edges = 0;
    for s in 0..3000 {
        spool.append(&run(s), at(T0 + s * SEC));
        // An edge from the middle of the previous packet, written after it.
        let e = GpioEdge {
            at_ns: T0 + (s - 1) * SEC + 500_000_000,
            input: 0,
            level: s % 2 == 0,
        };
        spool.append(&Record::Edge(e), at(T0 + s * SEC));
        edges += 1;
    }
    let got = firsts(&spool, i64::MIN);
    assert_eq!(got.len(), 3000 + edges);
    assert!(got.windows(2).all(|w| w[0] <= w[1]), "in instant order");
}

#[test]
fn torn_tails_are_cut_at_open_and_the_good_records_kept() {
    let tails: [(&str, Vec<u8>); 3] = [
        ("a record cut mid-way", {
            let mut p = [0u8; MAX_PAYLOAD];
            let n = match &run(99) {
                Record::Samples(s) => format::encode_samples(&mut p, &s.borrowed()),
                Record::Edge(_) => None,
            }
            .expect("fits");
            let mut v = format::frame(&p[..n]).to_vec();
            v.extend_from_slice(&p[..n / 2]);
            v
        }),
        ("a zero-filled tail (ext4 after a power cut)", vec![0; 8192]),
        (
            "garbage",
            b"\x10\0\0\0\xde\xad\xbe\xefnot a record at all".to_vec(),
        ),
    ];
    for (what, tail) in tails {
        let dir = TempDir::new().expect("tempdir");
        let mut spool = Spool::open(&options(dir.path()), at(T0)).expect("open");
        fill(&mut spool, 0..20);
        drop(spool);
        let path = segment_files(dir.path()).pop().expect("a segment");
        let good_len = fs::metadata(&path).expect("meta").len();
        let mut f = OpenOptions::new()
            .append(true)
            .open(&path)
            .expect("open seg");
        f.write_all(&tail).expect("write tail");
        drop(f);
        let mut spool = Spool::open(&options(dir.path()), at(T0 + 30 * SEC)).expect(what);
        assert_eq!(fs::metadata(&path).expect("meta").len(), good_len, "{what}");
        assert_eq!(firsts(&spool, i64::MIN).len(), 20, "{what}");
        // Appending goes on right after the last good record.
        fill(&mut spool, 20..21);
        drop(spool);
        let spool = Spool::open(&options(dir.path()), at(T0 + 30 * SEC)).expect(what);
        assert_eq!(firsts(&spool, i64::MIN).len(), 21, "{what}");
    }
}

#[test]
fn damage_inside_a_sealed_segment_skips_the_rest_of_it_only() {
    let dir = TempDir::new().expect("tempdir");
    let mut o = options(dir.path());
    o.max_bytes = 2 << 20;
    let mut spool = Spool::open(&o, at(T0)).expect("open");
    fill(&mut spool, 0..3000);
    drop(spool);
    let files = segment_files(dir.path());
    assert!(files.len() >= 3);
    let middle = &files[1];
    let mut bytes = fs::read(middle).expect("read");
    let cut = bytes.len() / 2;
    bytes[cut..cut + 64].fill(0xff);
    fs::write(middle, &bytes).expect("write");
    let spool = Spool::open(&o, at(T0 + 3000 * SEC)).expect("open with damage");
    let got = firsts(&spool, i64::MIN);
    assert!(got.len() < 3000 && got.len() > 2000, "{}", got.len());
    assert!(got.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(got.last(), Some(&(T0 + 2999 * SEC)));
}

#[test]
fn a_segment_with_a_damaged_header_is_skipped_at_open() {
    let dir = TempDir::new().expect("tempdir");
    let mut o = options(dir.path());
    o.max_bytes = 2 << 20;
    let mut spool = Spool::open(&o, at(T0)).expect("open");
    fill(&mut spool, 0..3000);
    drop(spool);
    let files = segment_files(dir.path());
    let mut bytes = fs::read(&files[1]).expect("read");
    bytes[20] ^= 0x40;
    fs::write(&files[1], &bytes).expect("write");
    let spool = Spool::open(&o, at(T0 + 3000 * SEC)).expect("open with damage");
    assert!(!files[1].exists());
    let got = firsts(&spool, i64::MIN);
    assert!(got.len() < 3000 && got.len() > 1000, "{}", got.len());
}

#[test]
fn a_format_from_the_future_is_refused_with_its_version() {
    let dir = TempDir::new().expect("tempdir");
    let mut spool = Spool::open(&options(dir.path()), at(T0)).expect("open");
    fill(&mut spool, 0..5);
    drop(spool);
    let path = segment_files(dir.path()).pop().expect("segment");
    let mut bytes = fs::read(&path).expect("read");
    bytes[4..6].copy_from_slice(&(format::VERSION + 1).to_le_bytes());
    fs::write(&path, &bytes).expect("write");
    let err = Spool::open(&options(dir.path()), at(T0)).expect_err("refused");
    let text = err.to_string();
    assert!(
        text.contains(&format!("format version {}", format::VERSION + 1)),
        "{text}"
    );
    assert!(path.exists(), "a newer agent's data is left alone");
}

#[test]
fn a_full_disk_loses_records_not_the_stream_and_recovers() {
    let dir = TempDir::new().expect("tempdir");
    let mut o = options(dir.path());
    o.max_bytes = 2 << 20;
    let mut spool = Spool::open(&o, at(T0)).expect("open");
    // The next segment is /dev/full: every write to it fails with ENOSPC.
    let next = segment_path(dir.path(), 2);
    symlink("/dev/full", &next).expect("symlink");
    fill(&mut spool, 0..2000);
    let s = spool.stats();
    assert!(s.records_lost > 0, "{s:?}");
    assert!(s.write_errors >= s.records_lost, "{s:?}");
    assert!(spool.failing);
    // Space again: appends resume in a new segment.
    fs::remove_file(&next).expect("unlink");
    fill(&mut spool, 2000..2010);
    assert!(!spool.failing);
    let got = firsts(&spool, T0 + 2000 * SEC);
    assert_eq!(got.len(), 10);
}

#[test]
fn over_max_bytes_the_oldest_go_first() {
    let dir = TempDir::new().expect("tempdir");
    let mut o = options(dir.path());
    o.max_bytes = 1 << 20;
    let mut spool = Spool::open(&o, at(T0)).expect("open");
    fill(&mut spool, 0..30_000);
    let s = spool.stats();
    let on_disk: u64 = segment_files(dir.path())
        .iter()
        .map(|p| fs::metadata(p).expect("meta").len())
        .sum();
    assert_eq!(s.bytes_on_disk, on_disk);
    assert!(on_disk <= o.max_bytes, "{on_disk}");
    assert!(spool.oldest() > Some(T0 + 10_000 * SEC));
    assert_eq!(spool.read_from(i64::MIN).last(), Some(run(29_999)));
}

#[test]
fn older_than_max_age_is_dropped_at_open_with_a_fake_clock() {
    let dir = TempDir::new().expect("tempdir");
    let mut o = options(dir.path());
    o.max_bytes = 2 << 20;
    o.max_age = Duration::from_secs(3600);
    let mut spool = Spool::open(&o, at(T0)).expect("open");
    fill(&mut spool, 0..3000);
    let before = spool.stats().segments;
    drop(spool);
    // 2 h later every sealed segment is older than an hour.
    let spool = Spool::open(&o, at(T0 + 7200 * SEC)).expect("reopen");
    assert!(before > 1);
    assert_eq!(spool.stats().segments, 1);
    assert_eq!(segment_files(dir.path()).len(), 1);
}

#[test]
fn the_release_mark_frees_segments_and_survives_a_reopen() {
    let dir = TempDir::new().expect("tempdir");
    let mut o = options(dir.path());
    o.max_bytes = 2 << 20;
    let mut spool = Spool::open(&o, at(T0)).expect("open");
    fill(&mut spool, 0..3000);
    let before = spool.stats().segments;
    let mark = T0 + 2000 * SEC;
    spool.release_through(mark, at(T0 + 3000 * SEC));
    spool.sync();
    assert!(spool.stats().segments < before);
    assert!(spool.oldest() > Some(T0));
    drop(spool);
    let spool = Spool::open(&o, at(T0 + 3000 * SEC)).expect("reopen");
    assert_eq!(spool.released(), mark);
    // A mark that goes back is ignored.
    let mut spool = spool;
    spool.release_through(mark - SEC, at(T0 + 3000 * SEC));
    assert_eq!(spool.released(), mark);
}

#[test]
fn the_mark_written_before_a_rotation_is_kept_in_the_next_header() {
    let dir = TempDir::new().expect("tempdir");
    let mut o = options(dir.path());
    o.max_bytes = 2 << 20;
    let mut spool = Spool::open(&o, at(T0)).expect("open");
    fill(&mut spool, 0..10);
    spool.release_through(T0 + 5 * SEC, at(T0 + 10 * SEC));
    // Enough to seal the segment holding the mark's record.
    fill(&mut spool, 10..3000);
    drop(spool);
    let spool = Spool::open(&o, at(T0 + 3000 * SEC)).expect("reopen");
    assert_eq!(spool.released(), T0 + 5 * SEC);
}

#[test]
fn reopening_reads_only_the_newest_segment() {
    let dir = TempDir::new().expect("tempdir");
    let mut o = options(dir.path());
    o.max_bytes = 2 << 20;
    let mut spool = Spool::open(&o, at(T0)).expect("open");
    fill(&mut spool, 0..3000);
    let (oldest, newest) = (spool.oldest(), spool.newest());
    drop(spool);
    // Garbage in the body of every sealed segment would be found by a
    // full scan; the bounds must come from the headers alone.
    let files = segment_files(dir.path());
    for f in &files[..files.len() - 1] {
        let mut bytes = fs::read(f).expect("read");
        let n = bytes.len();
        bytes[HEADER_LEN..n].fill(0xee);
        fs::write(f, &bytes).expect("write");
    }
    let spool = Spool::open(&o, at(T0 + 3000 * SEC)).expect("reopen");
    assert_eq!((spool.oldest(), spool.newest()), (oldest, newest));
}

#[test]
fn a_segment_whose_header_never_reached_the_disk_is_removed() {
    let dir = TempDir::new().expect("tempdir");
    let mut spool = Spool::open(&options(dir.path()), at(T0)).expect("open");
    fill(&mut spool, 0..20);
    drop(spool);
    // A power cut right after creating segment 2: its size allocated,
    // its bytes zeros.
    let next = segment_path(dir.path(), 2);
    fs::write(&next, [0u8; 4096]).expect("write");
    let mut spool = Spool::open(&options(dir.path()), at(T0 + 20 * SEC)).expect("open");
    assert!(!next.exists());
    assert_eq!(firsts(&spool, i64::MIN).len(), 20);
    fill(&mut spool, 20..25);
    assert_eq!(firsts(&spool, i64::MIN).len(), 25);
}

#[test]
fn a_release_mark_is_not_an_instant_the_spool_holds() {
    let dir = TempDir::new().expect("tempdir");
    let mut spool = Spool::open(&options(dir.path()), at(T0)).expect("open");
    spool.release_through(T0 - 100 * SEC, at(T0));
    assert_eq!((spool.oldest(), spool.newest()), (None, None));
    fill(&mut spool, 0..3);
    spool.release_through(T0 + SEC, at(T0 + 3 * SEC));
    assert_eq!(spool.oldest(), Some(T0));
    assert_eq!(spool.newest(), Some(T0 + 2 * SEC + 900_000_000));
}

#[test]
fn what_was_dropped_is_known_and_survives_a_reopen() {
    let dir = TempDir::new().expect("tempdir");
    let mut o = options(dir.path());
    o.max_bytes = 1 << 20;
    let mut spool = Spool::open(&o, at(T0)).expect("open");
    fill(&mut spool, 0..100);
    assert_eq!(spool.dropped_through(), None, "nothing dropped yet");
    fill(&mut spool, 100..30_000);
    let oldest = spool.oldest().expect("holds some");
    let dropped = spool.dropped_through().expect("the oldest went");
    // Everything up to the oldest kept instant went, nothing after it.
    assert!(dropped < oldest && dropped > T0, "{dropped} {oldest}");
    drop(spool);
    let spool = Spool::open(&o, at(T0 + 30_000 * SEC)).expect("reopen");
    assert_eq!(spool.dropped_through(), Some(dropped), "from the header");
}

#[test]
fn layouts_are_remembered_once_and_across_a_reopen() {
    let dir = TempDir::new().expect("tempdir");
    let channels = vec![LayoutChannel {
        name: "temperature".into(),
        unit: "Cel".into(),
        scale: -2,
    }];
    let mut spool = Spool::open(&options(dir.path()), at(T0)).expect("open");
    spool.remember_layout(0xfeed, &channels);
    spool.remember_layout(0xfeed, &channels);
    let file = fs::read_to_string(dir.path().join("layouts")).expect("layouts");
    assert_eq!(file.lines().count(), 1, "{file}");
    drop(spool);
    let spool = Spool::open(&options(dir.path()), at(T0)).expect("reopen");
    assert_eq!(spool.layouts().get(&0xfeed), Some(&channels));
    assert!(
        segment_files(dir.path())
            .iter()
            .all(|p| !p.ends_with("layouts"))
    );
}

#[test]
fn a_sync_with_nothing_appended_since_the_last_is_no_fsync() {
    let dir = TempDir::new().expect("tempdir");
    let mut spool = Spool::open(&options(dir.path()), at(T0)).expect("open");
    // Opened, nothing written: the writer's sync at an idle interval.
    spool.sync();
    assert_eq!(spool.stats().fsyncs, 0);
    fill(&mut spool, 0..3);
    assert_eq!(spool.stats().fsyncs, 1);
    spool.sync();
    spool.sync();
    assert_eq!(spool.stats().fsyncs, 1, "nothing new: no fsync");
    // A release mark is a record too: it needs its sync.
    spool.release_through(T0 + SEC, at(T0 + 3 * SEC));
    spool.sync();
    assert_eq!(spool.stats().fsyncs, 2);
}
