//! Sizes written by people (`5GB`, `500MB`, `2GiB`, `1000`): shard sizes and the limits
//! counted in bytes.

use crate::error::{Error, Result};

/// Parses a size: `5GB`, `500MB`, `4KB`, `1.5GB` (decimal units, as Hugging Face
/// reads them), `2GiB`/`512MiB` (binary), or a number of bytes (`1000`, `1000B`).
pub fn parse_size(text: &str) -> Result<u64> {
    let trimmed = text.trim();
    let split = trimmed
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(split);
    let multiplier: u64 = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 1,
        "KB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        "TB" => 1_000_000_000_000,
        "KIB" => 1 << 10,
        "MIB" => 1 << 20,
        "GIB" => 1 << 30,
        "TIB" => 1 << 40,
        _ => return Err(bad_size(text)),
    };
    let size = if number.contains('.') {
        let value: f64 = number.parse().map_err(|_| bad_size(text))?;
        let bytes = value * multiplier as f64;
        if !bytes.is_finite() || bytes >= u64::MAX as f64 {
            return Err(bad_size(text));
        }
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // checked above
        let bytes = bytes as u64; // truncates like Python's int()
        bytes
    } else {
        let value: u64 = number.parse().map_err(|_| bad_size(text))?;
        value
            .checked_mul(multiplier)
            .ok_or_else(|| bad_size(text))?
    };
    if size == 0 {
        return Err(bad_size(text));
    }
    Ok(size)
}

fn bad_size(text: &str) -> Error {
    Error::invalid(format!("`{text}` is not a size"))
        .with_hint("write a size such as 5GB, 500MB, 4KB or 2GiB")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_as_people_write_them() {
        assert_eq!(parse_size("5GB").unwrap(), 5_000_000_000);
        assert_eq!(parse_size("2GiB").unwrap(), 2 << 30);
        assert_eq!(parse_size("1000").unwrap(), 1000);
        let error = parse_size("5XB").unwrap_err();
        assert!(error.message().contains("is not a size"), "{error}");
    }
}
