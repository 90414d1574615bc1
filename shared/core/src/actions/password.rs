//! Temporary passwords for a reset: random from the operating system's source, long enough and
//! mixed enough for Entra ID's complexity rule (three of upper, lower, digit, symbol; here all
//! four), without characters people confuse when reading it out (0/O, 1/l/I).

use rand::TryRngCore;
use rand::rngs::OsRng;

use crate::ports::Secret;

const UPPER: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ";
const LOWER: &[u8] = b"abcdefghijkmnopqrstuvwxyz";
const DIGIT: &[u8] = b"23456789";
const SYMBOL: &[u8] = b"!#$%*+-=?@_";

/// Length of a temporary password.
pub const LENGTH: usize = 20;

/// Why no password could be made: the OS random source failed (nothing to retry around).
#[derive(Debug, thiserror::Error)]
#[error("the operating system's random source failed")]
pub struct RandomUnavailable;

/// A new temporary password: [`LENGTH`] characters with at least one of each class.
pub fn temporary_password() -> Result<Secret, RandomUnavailable> {
    let mut rng = OsRng;
    // Rejection sampling keeps every value in 0..n equally likely.
    let mut below = |n: usize| -> Result<usize, RandomUnavailable> {
        let n = n as u32;
        let zone = u32::MAX - (u32::MAX % n);
        loop {
            let v = rng.try_next_u32().map_err(|_| RandomUnavailable)?;
            if v < zone {
                return Ok((v % n) as usize);
            }
        }
    };
    let all: Vec<u8> = [UPPER, LOWER, DIGIT, SYMBOL].concat();
    let mut chars = Vec::with_capacity(LENGTH);
    for set in [UPPER, LOWER, DIGIT, SYMBOL] {
        chars.push(set[below(set.len())?]);
    }
    while chars.len() < LENGTH {
        chars.push(all[below(all.len())?]);
    }
    // Shuffle (Fisher-Yates) so the four guaranteed classes are not always first.
    for i in (1..chars.len()).rev() {
        chars.swap(i, below(i + 1)?);
    }
    Ok(Secret::new(String::from_utf8_lossy(&chars).into_owned()))
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn passwords_are_long_mixed_and_different() {
        let mut seen = HashSet::new();
        for _ in 0..200 {
            let p = temporary_password().unwrap();
            let s = p.expose();
            assert_eq!(s.len(), LENGTH);
            assert!(s.bytes().any(|b| UPPER.contains(&b)), "{s}");
            assert!(s.bytes().any(|b| LOWER.contains(&b)), "{s}");
            assert!(s.bytes().any(|b| DIGIT.contains(&b)), "{s}");
            assert!(s.bytes().any(|b| SYMBOL.contains(&b)), "{s}");
            assert!(seen.insert(s.to_string()), "repeated password");
            assert_eq!(format!("{p:?}"), "Secret(***)");
        }
    }
}
