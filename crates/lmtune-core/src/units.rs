//! Sizes as people write them: `8GiB`, `24GB`, `512MiB`, `1.5 GiB`.

/// Why a size could not be read; each message quotes the text as given.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SizeError {
    #[error("{text:?} does not start with a number")]
    NoNumber { text: String },
    #[error("{text:?} has no unit; write it with one, e.g. {trimmed}GiB, {trimmed}GB or {mib}MiB (B for bytes)")]
    NoUnit {
        text: String,
        trimmed: String,
        mib: f64,
    },
    #[error("unknown size unit {unit:?} in {text:?}")]
    UnknownUnit { unit: String, text: String },
    #[error("{text:?} is not a usable size")]
    Unusable { text: String },
}

/// Parses a size. Binary units (KiB, MiB, GiB, TiB) are powers of 1024;
/// decimal ones (KB, MB, GB, TB; also K, M, G, T) powers of 1000; `B` is
/// bytes. A bare number is refused: `--vram 12` meant 12 GiB, not 12 bytes.
pub fn parse_size(text: &str) -> Result<u64, SizeError> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let number: f64 = number.parse().map_err(|_| SizeError::NoNumber {
        text: text.to_string(),
    })?;
    let factor: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" => {
            return Err(SizeError::NoUnit {
                text: text.to_string(),
                trimmed: t.to_string(),
                mib: (number * 1024.0).round(),
            })
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
        other => {
            return Err(SizeError::UnknownUnit {
                unit: other.to_string(),
                text: text.to_string(),
            })
        }
    };
    let bytes = number * factor;
    if !bytes.is_finite() || !(1.0..=1e18).contains(&bytes) {
        return Err(SizeError::Unusable {
            text: text.to_string(),
        });
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
            e.to_string(),
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
