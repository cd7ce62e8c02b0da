//! Request ids: what ties an invocation's answer (`x-kumo-request-id`), its
//! `REPORT` line, its metering record and its guest's log lines together.
//!
//! An id is 32 lowercase hexadecimal digits: a random 64-bit prefix drawn
//! once per process, then a 64-bit sequence number counting the process's
//! invocations. Two processes clash only if they draw the same prefix (a
//! chance of 1 in 2^64 per pair), so ids stay unique across restarts, as
//! UUIDs would. Unlike random UUIDs they are cheap to store: consecutive
//! ids of one process differ only in their sequence, so a metering batch
//! stores the difference from the previous record's id (a byte or two)
//! instead of 32 characters, which were half of every stored record.
//!
//! Ids are opaque to callers: nothing may rely on their structure but
//! [`parse`], which the metering store uses to pack them.

use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

/// The response header carrying the invocation's request id, on the
/// gateway's and the admin API's answers.
pub(crate) use kumo_protocol::header::REQUEST_ID as REQUEST_ID_HEADER;

/// [`REQUEST_ID_HEADER`] as a header name made once: inserting it by its
/// text would parse the name again on every answer.
pub(crate) const REQUEST_ID_HEADER_NAME: http::HeaderName =
    http::HeaderName::from_static(REQUEST_ID_HEADER);

/// This process's prefix, as a number and as its 16 digits.
static PREFIX: OnceLock<(u64, [u8; 16])> = OnceLock::new();

/// The next request id of this process.
pub(crate) fn next() -> Arc<str> {
    static SEQUENCE: AtomicU64 = AtomicU64::new(0);
    let (prefix, _) = *PREFIX.get_or_init(|| {
        // The OS-seeded generator behind `uuid`'s v4.
        let prefix = uuid::Uuid::new_v4().as_u64_pair().0;
        let mut digits = [0u8; 16];
        write_hex(prefix, &mut digits);
        (prefix, digits)
    });
    let sequence = SEQUENCE.fetch_add(1, Ordering::Relaxed) + 1;
    format(prefix, sequence)
}

/// The id of `prefix` and `sequence`: both as 16 lowercase hex digits.
pub(crate) fn format(prefix: u64, sequence: u64) -> Arc<str> {
    let mut text = [0u8; 32];
    let (high, low) = text.split_at_mut(16);
    write_hex(prefix, high);
    write_hex(sequence, low);
    Arc::from(std::str::from_utf8(&text).expect("hex digits are ASCII"))
}

/// Writes `value` as 16 lowercase hex digits into `digits` (16 bytes).
fn write_hex(value: u64, digits: &mut [u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for (index, digit) in digits.iter_mut().enumerate() {
        *digit = DIGITS[((value >> (60 - 4 * index)) & 0xf) as usize];
    }
}

/// The prefix and sequence of an id shaped as [`next`] makes them, so that
/// `format(prefix, sequence)` gives `id` back exactly; `None` for any other
/// text (uppercase digits included).
pub(crate) fn parse(id: &str) -> Option<(u64, u64)> {
    let bytes = id.as_bytes();
    if bytes.len() != 32 {
        return None;
    }
    let (prefix, sequence) = bytes.split_at(16);
    // Nearly every id is this process's: its prefix is known already.
    let prefix = match PREFIX.get() {
        Some((number, digits)) if prefix == digits => *number,
        _ => read_hex(prefix)?,
    };
    Some((prefix, read_hex(sequence)?))
}

/// What each byte is worth as a lowercase hex digit; [`NOT_A_DIGIT`] for
/// every other byte.
const HEX_VALUES: [u8; 256] = {
    let mut values = [NOT_A_DIGIT; 256];
    let mut digit = 0;
    while digit < 10 {
        values[b'0' as usize + digit] = digit as u8;
        digit += 1;
    }
    let mut letter = 0;
    while letter < 6 {
        values[b'a' as usize + letter] = 10 + letter as u8;
        letter += 1;
    }
    values
};
const NOT_A_DIGIT: u8 = 0xff;

/// `digits` (lowercase hex) as a number; `None` if any byte is not a
/// digit. Without a branch per digit (the metering store parses every
/// invocation's id): a byte that is no digit sets the high bits of `seen`.
fn read_hex(digits: &[u8]) -> Option<u64> {
    let mut value = 0u64;
    let mut seen = 0u8;
    for &digit in digits {
        let nibble = HEX_VALUES[usize::from(digit)];
        seen |= nibble;
        value = value << 4 | u64::from(nibble & 0xf);
    }
    (seen < 16).then_some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_distinct_and_share_the_process_prefix() {
        let first = next();
        let second = next();
        assert_ne!(first, second);
        let (prefix_a, sequence_a) = parse(&first).unwrap();
        let (prefix_b, sequence_b) = parse(&second).unwrap();
        assert_eq!(prefix_a, prefix_b);
        assert!(sequence_b > sequence_a);
    }

    #[test]
    fn parse_takes_back_exactly_what_format_makes() {
        let cases: &[(&str, Option<(u64, u64)>)] = &[
            (
                "0123456789abcdef0000000000000001",
                Some((0x0123_4567_89ab_cdef, 1)),
            ),
            (
                "ffffffffffffffffffffffffffffffff",
                Some((u64::MAX, u64::MAX)),
            ),
            ("00000000000000000000000000000000", Some((0, 0))),
            // Uppercase would not format back to the same text.
            ("0123456789ABCDEF0000000000000001", None),
            ("0123456789abcdef000000000000001", None),
            ("0123456789abcdef00000000000000012", None),
            ("+123456789abcdef0000000000000001", None),
            ("6f1c0d5e-9a8b-4c3d-2e1f-0a9b8c7d", None),
            ("", None),
            ("é123456789abcdef000000000000001", None),
        ];
        for (text, expected) in cases {
            assert_eq!(parse(text), *expected, "{text:?}");
            if let Some((prefix, sequence)) = expected {
                assert_eq!(&*format(*prefix, *sequence), *text);
            }
        }
    }
}

/// Property tests: any text, no panic, and only what `format` makes parses.
/// `PROPTEST_CASES=N` runs N cases (`bench/fuzz.sh`).
#[cfg(test)]
mod proptests {
    use super::*;

    proptest::proptest! {
        /// Any text: no panic; what parses formats back to the same text.
        #[test]
        fn any_text_parses_only_as_what_format_makes(text in proptest::prelude::any::<String>()) {
            if let Some((prefix, sequence)) = parse(&text) {
                proptest::prop_assert_eq!(&*format(prefix, sequence), text.as_str());
            }
        }

        /// Hex-like text of the right length, where the cases are dense.
        #[test]
        fn hex_like_text_parses_exactly_when_lowercase_hex(text in "[0-9a-fA-Fg+-]{30,34}") {
            let lowercase_hex = text.len() == 32 && text.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
            proptest::prop_assert_eq!(parse(&text).is_some(), lowercase_hex);
        }

        #[test]
        fn formatted_ids_parse_back(prefix: u64, sequence: u64) {
            proptest::prop_assert_eq!(parse(&format(prefix, sequence)), Some((prefix, sequence)));
        }
    }
}
