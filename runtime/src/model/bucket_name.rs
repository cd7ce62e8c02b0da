//! The one rule for bucket names, shared by storage (which creates buckets)
//! and storage triggers (which name them), so a trigger can never watch a
//! bucket that storage would refuse to create.

/// Which of S3's rules for general purpose buckets `name` breaks, if any:
/// 3 to 63 characters of `a-z`, `0-9`, `-` and `.`; starts and ends with a
/// letter or digit; no `..`; not an IP address; not `xn--...`,
/// `sthree-...`, `...-s3alias` or `...--ol-s3`.
pub(crate) fn bucket_name_problem(name: &str) -> Option<&'static str> {
    if !(3..=63).contains(&name.len()) {
        Some("it must be 3 to 63 characters long")
    } else if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
    {
        Some("it may only hold lowercase letters, digits, `-` and `.`")
    } else if !name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        || !name.ends_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
    {
        Some("it must start and end with a letter or a digit")
    } else if name.contains("..") {
        Some("it may not hold two adjacent periods")
    } else if name.parse::<std::net::Ipv4Addr>().is_ok() {
        Some("it may not look like an IP address")
    } else if name.starts_with("xn--") || name.starts_with("sthree-") {
        Some("it may not start with `xn--` or `sthree-`")
    } else if name.ends_with("-s3alias") || name.ends_with("--ol-s3") {
        Some("it may not end with `-s3alias` or `--ol-s3`")
    } else {
        None
    }
}
