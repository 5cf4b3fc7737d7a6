//! Sizes as people write them: `8GiB`, `24GB`, `512MiB`, `1.5 GiB`.

/// Parses a size. Binary units (KiB, MiB, GiB, TiB) are powers of 1024;
/// decimal ones (KB, MB, GB, TB; also K, M, G, T) powers of 1000; `B` is
/// bytes. A bare number is refused: `--vram 12` meant 12 GiB, not 12 bytes.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let number: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} does not start with a number"))?;
    let factor: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" => {
            return Err(format!(
            "{text:?} has no unit; write it with one, e.g. {t}GiB, {t}GB or {}MiB (B for bytes)",
            (number * 1024.0).round()
        ))
        }
        "b" => 1.0,
        "k" | "kb" => 1e3,
        "m" | "mb" => 1e6,
        "g" | "gb" => 1e9,
        "t" | "tb" => 1e12,
        "kib" => 1024.0,
        "mib" => 1024.0 * 1024.0,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        "tib" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        other => return Err(format!("unknown size unit {other:?} in {text:?}")),
    };
    let bytes = number * factor;
    if !bytes.is_finite() || !(1.0..=1e18).contains(&bytes) {
        return Err(format!("{text:?} is not a usable size"));
    }
    Ok(bytes.round() as u64)
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn binary_and_decimal_units() {
        assert_eq!(parse_size("8GiB"), Ok(8 << 30));
        assert_eq!(parse_size("24GB"), Ok(24_000_000_000));
        assert_eq!(parse_size("512 MiB"), Ok(512 << 20));
        assert_eq!(parse_size("1.5GiB"), Ok(3 << 29));
        assert_eq!(parse_size("4096B"), Ok(4096));
    }

    #[test]
    fn a_size_without_a_unit_says_the_accepted_forms() {
        let e = parse_size("12").unwrap_err();
        assert_eq!(
            e,
            "\"12\" has no unit; write it with one, e.g. 12GiB, 12GB or 12288MiB (B for bytes)"
        );
    }

    #[test]
    fn nonsense_is_rejected() {
        for bad in ["", "GiB", "8 parsecs", "0", "-1GiB", "1e30", "12"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }
}
