//! `EXT-X-PROGRAM-DATE-TIME` values without a date library.

/// Unix µs as ISO 8601 UTC with milliseconds, e.g. `2023-11-14T22:13:20.250Z`.
pub fn iso8601_ms(unix_us: u64) -> String {
    let ms_total = unix_us / 1000;
    let ms = ms_total % 1000;
    let secs = ms_total / 1000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{ms:03}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to (year, month, day): Howard Hinnant's algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_dates() {
        assert_eq!(iso8601_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            iso8601_ms(1_700_000_000_250_000),
            "2023-11-14T22:13:20.250Z"
        );
        // Leap day.
        assert_eq!(iso8601_ms(951_782_400_000_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(
            iso8601_ms(4_102_444_799_999_999),
            "2099-12-31T23:59:59.999Z"
        );
    }
}
