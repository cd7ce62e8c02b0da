//! HTTP header names Kumo sends or reads, lowercase as HTTP/2 writes them.

/// The hop count of an event: how many function writes led to it (0 for a
/// client's upload, a file or a timer). A function that writes to a bucket
/// while handling an event sends it on with the same value, and the
/// resulting event has one hop more, so a loop of functions triggering
/// each other stops.
pub const HOPS: &str = "kumo-event-hops";

/// The delivery attempt's number, 1 for the first. Attempts refused by
/// backpressure do not count; an attempt cut short by a crash of the host
/// is not recorded, so its retry carries the same number again.
pub const ATTEMPT: &str = "kumo-attempt";

/// The request id of an invocation, on every answer of the gateway.
pub const REQUEST_ID: &str = "x-kumo-request-id";

/// The id of an asynchronous invocation: on the `202 Accepted` answer, and
/// on every attempt's request to the function.
pub const INVOCATION_ID: &str = "x-kumo-invocation-id";

/// Kumo's invocation-type header: `Event` queues the call and answers
/// `202 Accepted` at once; `RequestResponse` (or no header) runs it while
/// the caller waits.
pub const INVOCATION_TYPE: &str = "x-kumo-invocation-type";
/// Function Compute's spelling: `Async` or `Sync`.
pub const FC_INVOCATION_TYPE: &str = "x-fc-invocation-type";
/// Lambda's spelling: `Event` or `RequestResponse`.
pub const AMZ_INVOCATION_TYPE: &str = "x-amz-invocation-type";

/// How a caller asks a call to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvocationType {
    /// The caller waits for the function's answer (the default).
    Sync,
    /// The call is queued and answered `202 Accepted` at once.
    Async,
}

/// The invocation type one header asks for: `None` when `name` is none of
/// the three invocation-type headers, `Some(Err(accepted))` when its value
/// is not one this header takes (`accepted` lists them). Names and values
/// are compared ignoring ASCII case.
pub fn invocation_type(name: &str, value: &str) -> Option<Result<InvocationType, &'static str>> {
    let (asynchronous, synchronous, accepted) = if name.eq_ignore_ascii_case(INVOCATION_TYPE)
        || name.eq_ignore_ascii_case(AMZ_INVOCATION_TYPE)
    {
        ("Event", "RequestResponse", "Event or RequestResponse")
    } else if name.eq_ignore_ascii_case(FC_INVOCATION_TYPE) {
        ("Async", "Sync", "Async or Sync")
    } else {
        return None;
    };
    let value = value.trim();
    Some(if value.eq_ignore_ascii_case(asynchronous) {
        Ok(InvocationType::Async)
    } else if value.eq_ignore_ascii_case(synchronous) {
        Ok(InvocationType::Sync)
    } else {
        Err(accepted)
    })
}

/// CloudEvents' `specversion` attribute (binary mode).
pub const CE_SPECVERSION: &str = "ce-specversion";
/// CloudEvents' `id` attribute: the same for every attempt of one event.
pub const CE_ID: &str = "ce-id";
/// CloudEvents' `source` attribute.
pub const CE_SOURCE: &str = "ce-source";
/// CloudEvents' `type` attribute.
pub const CE_TYPE: &str = "ce-type";
/// CloudEvents' `time` attribute, RFC 3339.
pub const CE_TIME: &str = "ce-time";
/// CloudEvents' `subject` attribute, percent-encoded
/// ([`encode_value`]).
pub const CE_SUBJECT: &str = "ce-subject";

/// A header value for an attribute that may hold any character (an object
/// key): printable ASCII stays, `%`, `"` and every other byte become `%XX`
/// (CloudEvents' HTTP binding encodes attribute values this way).
pub fn encode_value(value: &str) -> String {
    let mut encoded = String::with_capacity(value.len());
    for byte in value.bytes() {
        if (0x20..0x7f).contains(&byte) && byte != b'%' && byte != b'"' {
            encoded.push(char::from(byte));
        } else {
            push_escape(&mut encoded, byte);
        }
    }
    encoded
}

/// The inverse of [`encode_value`]: `%XX` escapes decoded; an invalid
/// escape or byte sequence is kept as it is.
pub fn decode_value(value: &str) -> String {
    percent_decode(value, false)
}

pub(crate) fn push_escape(out: &mut String, byte: u8) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    out.push('%');
    out.push(char::from(HEX[usize::from(byte >> 4)]));
    out.push(char::from(HEX[usize::from(byte & 0xf)]));
}

/// Decodes `%XX` escapes (and `+` as a space when `plus_is_space`); an
/// invalid escape is kept, and so is the whole text when the result is not
/// UTF-8.
pub(crate) fn percent_decode(text: &str, plus_is_space: bool) -> String {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let byte = bytes[index];
        let hex = |offset: usize| {
            bytes
                .get(index + offset)
                .and_then(|&b| char::from(b).to_digit(16))
        };
        match byte {
            b'%' => {
                if let (Some(high), Some(low)) = (hex(1), hex(2)) {
                    // Two hex digits make at most 0xff.
                    decoded.push(u8::try_from(high * 16 + low).unwrap_or(byte));
                    index += 3;
                    continue;
                }
                decoded.push(byte);
            }
            b'+' if plus_is_space => decoded.push(b' '),
            _ => decoded.push(byte),
        }
        index += 1;
    }
    String::from_utf8(decoded).unwrap_or_else(|_| text.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_keep_printable_ascii_and_escape_the_rest() {
        let cases = [
            ("in/a.png", "in/a.png"),
            ("a b", "a b"),
            ("100%", "100%25"),
            ("é", "%C3%A9"),
            ("a\nb", "a%0Ab"),
            ("\"q\"", "%22q%22"),
        ];
        for (value, expected) in cases {
            assert_eq!(encode_value(value), expected);
            assert_eq!(decode_value(expected), value, "round trip of {value:?}");
        }
    }

    #[test]
    fn the_three_invocation_type_spellings() {
        use InvocationType::{Async, Sync};
        let cases = [
            ("X-Kumo-Invocation-Type", "Event", Some(Ok(Async))),
            ("x-kumo-invocation-type", "requestresponse", Some(Ok(Sync))),
            ("X-Fc-Invocation-Type", "Async", Some(Ok(Async))),
            ("x-fc-invocation-type", " sync ", Some(Ok(Sync))),
            ("X-Amz-Invocation-Type", "Event", Some(Ok(Async))),
            (
                "X-Amz-Invocation-Type",
                "DryRun",
                Some(Err("Event or RequestResponse")),
            ),
            ("x-fc-invocation-type", "Event", Some(Err("Async or Sync"))),
            ("content-type", "Event", None),
        ];
        for (name, value, expected) in cases {
            assert_eq!(invocation_type(name, value), expected, "{name}: {value}");
        }
    }

    #[test]
    fn percent_decoding() {
        let cases = [
            ("a+b", true, "a b"),
            ("a+b", false, "a+b"),
            ("%41%2f", false, "A/"),
            ("100%", false, "100%"),
            ("%zz", false, "%zz"),
            ("%C3%A9", false, "é"),
            ("%FF", false, "%FF"),
        ];
        for (text, plus, expected) in cases {
            assert_eq!(percent_decode(text, plus), expected, "{text}");
        }
    }
}
