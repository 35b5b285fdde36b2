//! The random strings and numbers SIP needs — branches, tags, Call-IDs, first CSeq numbers,
//! SDP session ids — drawn from a generator its owner seeds ([`Tokens`]).
//!
//! A sans-IO agent never asks the OS for randomness: whoever builds it gives the seed (fresh
//! randomness at every daemon start, a constant in a test harness), so two runs with the same
//! seed and the same inputs put out the same bytes.

use std::ops::Range;

use rand::distributions::Alphanumeric;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::transaction::MAGIC_COOKIE;

/// A seeded source of the random values of a SIP agent (see the module documentation).
#[derive(Debug)]
pub struct Tokens {
    rng: StdRng,
}

impl Tokens {
    /// Values drawn from `seed`.
    pub fn from_seed(seed: [u8; 32]) -> Tokens {
        Tokens {
            rng: StdRng::from_seed(seed),
        }
    }

    /// A seed for another generator (a part that draws on its own), taken from this one.
    pub fn seed(&mut self) -> [u8; 32] {
        self.rng.gen()
    }

    /// A new RFC 3261 branch: the magic cookie plus 16 random alphanumerics (~95 bits).
    pub fn branch(&mut self) -> String {
        let mut s = String::with_capacity(MAGIC_COOKIE.len() + 16);
        s.push_str(MAGIC_COOKIE);
        s.push_str(&self.alphanumeric(16));
        s
    }

    /// A To tag for responses the transaction endpoint builds itself (12 alphanumerics).
    pub fn tag(&mut self) -> String {
        self.alphanumeric(12)
    }

    /// `n` random ASCII letters and digits.
    pub fn alphanumeric(&mut self, n: usize) -> String {
        (&mut self.rng)
            .sample_iter(Alphanumeric)
            .take(n)
            .map(char::from)
            .collect()
    }

    /// `n` random lowercase letters and digits (tags, Call-IDs, leg ids, cnonces).
    pub fn lowercase(&mut self, n: usize) -> String {
        (0..n)
            .map(|_| {
                let v = self.rng.gen_range(0..36u8);
                char::from(if v < 10 { b'0' + v } else { b'a' + v - 10 })
            })
            .collect()
    }

    /// A number in `range` (a first CSeq, an SDP session id); `range` must not be empty.
    pub fn number(&mut self, range: Range<u64>) -> u64 {
        self.rng.gen_range(range)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_values_and_another_seed_others() {
        let draw = |seed| {
            let mut t = Tokens::from_seed(seed);
            (t.branch(), t.tag(), t.lowercase(10), t.number(1..10_000))
        };
        assert_eq!(draw([1; 32]), draw([1; 32]));
        assert_ne!(draw([1; 32]), draw([2; 32]));
    }

    #[test]
    fn branches_have_the_magic_cookie_and_differ() {
        let mut t = Tokens::from_seed([3; 32]);
        let (a, b) = (t.branch(), t.branch());
        assert!(a.starts_with(MAGIC_COOKIE) && a.len() == MAGIC_COOKIE.len() + 16);
        assert_ne!(a, b);
        let token = t.lowercase(24);
        assert_eq!(token.len(), 24);
        assert!(token
            .bytes()
            .all(|c| c.is_ascii_digit() || c.is_ascii_lowercase()));
    }
}
