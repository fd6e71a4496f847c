//! The rise/fall state machine of one backend: pure, synchronous, no runtime.
//!
//! The machine is either up or down and counts the observations that contradict its state:
//! while up it counts failures in a row, while down successes in a row. Any observation that
//! agrees with the state resets the count. When failures reach `fall` it goes down, when
//! successes reach `rise` it goes up, and the count restarts from zero. So one failed probe
//! (a "hiccup") among successes never takes a backend out, and one lucky probe of a dying
//! backend never brings it back.
//!
//! ```
//! use lb_core::health::{HealthState, Transition};
//!
//! let mut h = HealthState::new(2, 3, true);
//! assert_eq!(h.observe(false), None); // one hiccup: still up
//! assert_eq!(h.observe(true), None); // and forgotten
//! assert_eq!(h.observe(false), None);
//! assert_eq!(h.observe(false), None);
//! assert_eq!(h.observe(false), Some(Transition::Down)); // `fall` failures in a row
//! assert_eq!(h.observe(true), None);
//! assert_eq!(h.observe(true), Some(Transition::Up)); // `rise` successes in a row
//! assert!(h.is_up());
//! ```

/// A change of a backend's health.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Transition {
    /// `rise` successes in a row: the backend takes traffic again.
    Up,
    /// `fall` failures in a row: the backend leaves rotation.
    Down,
}

/// Consecutive-count health of one backend (see the [module docs](self)).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HealthState {
    rise: u32,
    fall: u32,
    up: bool,
    /// Observations in a row that contradict `up`.
    run: u32,
}

impl HealthState {
    /// A machine that needs `rise` successes to go up and `fall` failures to go down,
    /// starting up (`initial_up`) or down. A `rise` or `fall` of 0 counts as 1.
    pub fn new(rise: u32, fall: u32, initial_up: bool) -> HealthState {
        HealthState {
            rise: rise.max(1),
            fall: fall.max(1),
            up: initial_up,
            run: 0,
        }
    }

    /// Feeds one probe result; returns the transition it completes, if any.
    pub fn observe(&mut self, ok: bool) -> Option<Transition> {
        if ok == self.up {
            self.run = 0;
            return None;
        }
        self.run += 1;
        let needed = if self.up { self.fall } else { self.rise };
        if self.run < needed {
            return None;
        }
        self.run = 0;
        self.up = ok;
        Some(if ok { Transition::Up } else { Transition::Down })
    }

    /// The current view: true when up.
    pub fn is_up(&self) -> bool {
        self.up
    }

    /// Contradicting observations seen in a row so far (0 after any transition).
    pub fn pending(&self) -> u32 {
        self.run
    }

    /// Successes in a row needed to go up.
    pub fn rise(&self) -> u32 {
        self.rise
    }

    /// Failures in a row needed to go down.
    pub fn fall(&self) -> u32 {
        self.fall
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn goes_down_after_fall_failures() {
        let mut h = HealthState::new(2, 3, true);
        assert_eq!(h.observe(false), None);
        assert_eq!(h.observe(false), None);
        assert_eq!(h.pending(), 2);
        assert_eq!(h.observe(false), Some(Transition::Down));
        assert!(!h.is_up());
        assert_eq!(h.pending(), 0);
        // Further failures change nothing.
        assert_eq!(h.observe(false), None);
        assert!(!h.is_up());
    }

    #[test]
    fn comes_up_after_rise_successes() {
        let mut h = HealthState::new(2, 3, false);
        assert_eq!(h.observe(true), None);
        assert_eq!(h.observe(true), Some(Transition::Up));
        assert!(h.is_up());
        assert_eq!(h.observe(true), None);
    }

    #[test]
    fn a_hiccup_never_flaps() {
        let mut h = HealthState::new(2, 3, true);
        for _ in 0..10 {
            assert_eq!(h.observe(true), None);
            assert_eq!(h.observe(false), None);
            assert_eq!(h.observe(false), None);
        }
        assert!(h.is_up());
        let mut h = HealthState::new(2, 3, false);
        for _ in 0..10 {
            assert_eq!(h.observe(false), None);
            assert_eq!(h.observe(true), None);
        }
        assert!(!h.is_up());
    }

    #[test]
    fn zero_thresholds_count_as_one() {
        let mut h = HealthState::new(0, 0, true);
        assert_eq!((h.rise(), h.fall()), (1, 1));
        assert_eq!(h.observe(false), Some(Transition::Down));
        assert_eq!(h.observe(true), Some(Transition::Up));
    }

    /// An independent model: the state is the kind of the last run that reached its
    /// threshold (a streak of successes reaching `rise`, of failures reaching `fall`),
    /// or the initial state when no run did.
    fn model(rise: u32, fall: u32, initial: bool, seq: &[bool]) -> bool {
        let mut state = initial;
        for end in 0..seq.len() {
            let v = seq[end];
            let streak = seq[..=end].iter().rev().take_while(|&&x| x == v).count() as u32;
            let needed = if v { rise } else { fall };
            if streak == needed {
                state = v;
            }
        }
        state
    }

    proptest! {
        #[test]
        fn state_is_the_last_completed_run(
            rise in 1u32..6,
            fall in 1u32..6,
            initial: bool,
            seq in proptest::collection::vec(any::<bool>(), 0..200),
        ) {
            let mut h = HealthState::new(rise, fall, initial);
            for (i, &ok) in seq.iter().enumerate() {
                let before = h.is_up();
                let t = h.observe(ok);
                prop_assert_eq!(h.is_up(), model(rise, fall, initial, &seq[..=i]));
                match t {
                    Some(Transition::Up) => {
                        prop_assert!(!before && h.is_up());
                        let n = rise as usize;
                        prop_assert!(i + 1 >= n && seq[i + 1 - n..=i].iter().all(|&x| x));
                    }
                    Some(Transition::Down) => {
                        prop_assert!(before && !h.is_up());
                        let n = fall as usize;
                        prop_assert!(i + 1 >= n && seq[i + 1 - n..=i].iter().all(|&x| !x));
                    }
                    None => prop_assert_eq!(before, h.is_up()),
                }
            }
        }

        #[test]
        fn no_transition_without_a_full_run(
            rise in 2u32..6,
            fall in 2u32..6,
            initial: bool,
            first: bool,
            runs in proptest::collection::vec(0u32..100, 0..60),
        ) {
            // Alternating runs, each one short of its threshold: nothing ever changes.
            let mut h = HealthState::new(rise, fall, initial);
            let mut ok = first;
            for r in runs {
                let limit = if ok { rise } else { fall };
                let len = 1 + r % (limit - 1);
                for _ in 0..len {
                    prop_assert_eq!(h.observe(ok), None);
                    prop_assert_eq!(h.is_up(), initial);
                }
                ok = !ok;
            }
        }
    }
}
