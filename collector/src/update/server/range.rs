//! Which bytes of a bundle a request gets (RFC 9110 14): one byte range
//! or the whole file. Multiple ranges are answered whole (a server may
//! ignore Range, RFC 9110 14.2; the agent asks for one), and so is a
//! Range this parser does not understand.

/// What to send of a file of `size` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Selection {
    /// 200 with the whole file.
    Whole,
    /// 206 with bytes `first..=last` (RFC 9110 15.3.7).
    Part { first: u64, last: u64 },
    /// 416 (RFC 9110 15.5.17): no byte of the range exists.
    Unsatisfiable,
}

/// The selection for a `Range` header value (RFC 9110 14.1.1, 14.1.2);
/// `None`: no Range.
pub fn select(range: Option<&str>, size: u64) -> Selection {
    let Some(spec) = range.and_then(|r| r.trim().strip_prefix("bytes=")) else {
        return Selection::Whole;
    };
    let spec = spec.trim();
    if spec.contains(',') {
        return Selection::Whole;
    }
    let Some((first, last)) = spec.split_once('-') else {
        return Selection::Whole;
    };
    let number = |s: &str| -> Option<u64> {
        // Digits only: `+5` or ` 5` is no range (u64::from_str takes `+`).
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    };
    match (first.is_empty(), last.is_empty()) {
        // `-N`: the last N bytes (a suffix range, 14.1.1).
        (true, false) => match number(last) {
            Some(0) => Selection::Unsatisfiable,
            Some(_) if size == 0 => Selection::Unsatisfiable,
            Some(n) => Selection::Part {
                first: size.saturating_sub(n),
                last: size - 1,
            },
            None => Selection::Whole,
        },
        (false, _) => {
            let Some(first) = number(first) else {
                return Selection::Whole;
            };
            let last = if last.is_empty() {
                None
            } else {
                match number(last) {
                    Some(l) if l >= first => Some(l),
                    // last < first: an invalid range-spec, ignored.
                    _ => return Selection::Whole,
                }
            };
            if first >= size {
                return Selection::Unsatisfiable;
            }
            Selection::Part {
                first,
                last: last.map_or(size - 1, |l| l.min(size - 1)),
            }
        }
        (true, true) => Selection::Whole,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(first: u64, last: u64) -> Selection {
        Selection::Part { first, last }
    }

    #[test]
    fn single_ranges_of_every_form() {
        assert_eq!(select(None, 100), Selection::Whole);
        assert_eq!(select(Some("bytes=0-9"), 100), part(0, 9));
        assert_eq!(select(Some("bytes=90-"), 100), part(90, 99));
        assert_eq!(select(Some("bytes=-10"), 100), part(90, 99));
        // Past the end: cut at the end (RFC 9110 14.1.2).
        assert_eq!(select(Some("bytes=95-500"), 100), part(95, 99));
        assert_eq!(select(Some("bytes=-500"), 100), part(0, 99));
        assert_eq!(select(Some("bytes=99-99"), 100), part(99, 99));
    }

    #[test]
    fn a_range_past_the_end_is_unsatisfiable() {
        assert_eq!(select(Some("bytes=100-"), 100), Selection::Unsatisfiable);
        assert_eq!(select(Some("bytes=100-200"), 100), Selection::Unsatisfiable);
        assert_eq!(select(Some("bytes=-0"), 100), Selection::Unsatisfiable);
        assert_eq!(select(Some("bytes=0-"), 0), Selection::Unsatisfiable);
        assert_eq!(select(Some("bytes=-5"), 0), Selection::Unsatisfiable);
    }

    #[test]
    fn what_is_not_one_understood_range_gets_the_whole_file() {
        for r in [
            "bytes=0-1,5-6",
            "items=0-5",
            "bytes=5-1",
            "bytes=-",
            "bytes=a-b",
            "bytes=+1-2",
            "bytes=99999999999999999999999-",
            "bytes=1",
        ] {
            assert_eq!(select(Some(r), 100), Selection::Whole, "{r}");
        }
    }
}
