//! Gathering keypresses into a DTMF turn: digits pressed within [`DTMF_TURN_GAP`] of each other
//! form one turn, which is over when no key follows within that gap. Used by the engines that
//! do their own turn-taking. Plain state: instants are passed in, no clock is read.

use std::time::{Duration, Instant};

use crate::call::frames::DtmfKey;
use crate::call::summary::MAX_DTMF_DIGITS;

/// DTMF digits pressed within this long of each other form one turn.
pub const DTMF_TURN_GAP: Duration = Duration::from_millis(700);

#[derive(Debug, Default)]
pub struct DtmfTurn {
    digits: String,
    deadline: Option<Instant>,
}

impl DtmfTurn {
    /// A key was pressed at `now` (digits past [`MAX_DTMF_DIGITS`] are not kept).
    pub fn press(&mut self, key: DtmfKey, now: Instant) {
        if self.digits.len() < MAX_DTMF_DIGITS {
            self.digits.push(key.as_char());
        }
        self.deadline = Some(now + DTMF_TURN_GAP);
    }

    /// When the turn being gathered is over.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// The deadline passed: the digits of the turn (None if there were none).
    pub fn take(&mut self) -> Option<String> {
        self.deadline = None;
        Some(std::mem::take(&mut self.digits)).filter(|d| !d.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_gather_into_one_turn() {
        let mut t = DtmfTurn::default();
        let t0 = Instant::now();
        assert_eq!(t.deadline(), None);
        t.press(DtmfKey::Digit(4), t0);
        t.press(DtmfKey::Pound, t0 + Duration::from_millis(300));
        assert_eq!(t.deadline(), Some(t0 + Duration::from_millis(1000)));
        assert_eq!(t.take().as_deref(), Some("4#"));
        assert_eq!(t.take(), None);
        for _ in 0..100 {
            t.press(DtmfKey::Star, t0);
        }
        assert_eq!(t.take().map(|d| d.len()), Some(MAX_DTMF_DIGITS));
    }
}
