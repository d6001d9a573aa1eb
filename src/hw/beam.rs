//! Counting items from drop-beam edges.
//!
//! The drop sensor is an IR beam across the delivery chute. Its source (rppal interrupts on
//! the Pi, the physics timeline in the simulator) records timestamped edges; this module turns
//! those edges into a number of items. Working on timestamps rather than polled levels means a
//! descheduled driver thread cannot miss or shorten an item.
//!
//! Rule: breaks separated by a gap shorter than the debounce are merged (a bouncing item is
//! one item), then every merged break lasting at least the debounce counts once (shorter
//! breaks are glitches). A break still open at query time counts if it has already lasted
//! the debounce.

use std::time::Duration;

/// One change of the beam, timestamped by the edge source.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BeamEdge {
    /// When the change happened, in the source's time base.
    pub at: Duration,
    /// `true` when the beam became broken, `false` when it was restored.
    pub broken: bool,
}

/// Count debounced items in `edges` (sorted by time).
///
/// `initially_broken` is the beam state when watching started; a break already in progress
/// then is not counted (it began before this vend). `now` is the current time in the same
/// time base, used to judge a break that is still open; `None` never counts an open break.
pub fn count_items(
    edges: &[BeamEdge],
    initially_broken: bool,
    debounce: Duration,
    now: Option<Duration>,
) -> u32 {
    // Collapse the edge stream into closed-open intervals of "broken".
    let mut breaks: Vec<(Duration, Option<Duration>, bool)> = Vec::new(); // (start, end, counts)
    let mut open: Option<(Duration, bool)> = if initially_broken {
        Some((Duration::ZERO, false))
    } else {
        None
    };
    for e in edges {
        match (e.broken, open) {
            (true, None) => open = Some((e.at, true)),
            (false, Some((start, counts))) => {
                breaks.push((start, Some(e.at), counts));
                open = None;
            }
            // Repeated edges of the same direction (a lost edge) are ignored.
            _ => {}
        }
    }
    if let Some((start, counts)) = open {
        breaks.push((start, None, counts));
    }

    // Merge breaks separated by gaps shorter than the debounce.
    let mut merged: Vec<(Duration, Option<Duration>, bool)> = Vec::new();
    for b in breaks {
        if let Some(last) = merged.last_mut() {
            if let Some(end) = last.1 {
                if b.0.saturating_sub(end) < debounce {
                    last.1 = b.1;
                    // An item that started before arming stays uncounted even if it bounces.
                    last.2 &= b.2;
                    continue;
                }
            }
        }
        merged.push(b);
    }

    let mut items = 0;
    for (start, end, counts) in merged {
        if !counts {
            continue;
        }
        let long_enough = match (end, now) {
            (Some(end), _) => end.saturating_sub(start) >= debounce,
            (None, Some(now)) => now.saturating_sub(start) >= debounce,
            (None, None) => false,
        };
        if long_enough {
            items += 1;
        }
    }
    items
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    fn pulse(edges: &mut Vec<BeamEdge>, start_us: u64, len_us: u64) {
        edges.push(BeamEdge {
            at: Duration::from_micros(start_us),
            broken: true,
        });
        edges.push(BeamEdge {
            at: Duration::from_micros(start_us + len_us),
            broken: false,
        });
    }

    #[test]
    fn one_long_break_is_one_item() {
        let mut e = vec![];
        pulse(&mut e, 100_000, 40_000);
        assert_eq!(count_items(&e, false, ms(10), None), 1);
    }

    #[test]
    fn a_glitch_shorter_than_the_debounce_is_not_an_item() {
        let mut e = vec![];
        pulse(&mut e, 100_000, 3_000);
        assert_eq!(count_items(&e, false, ms(10), Some(ms(500))), 0);
    }

    #[test]
    fn a_break_that_bounces_in_the_middle_is_still_one_item() {
        let mut e = vec![];
        pulse(&mut e, 100_000, 15_000);
        pulse(&mut e, 116_000, 20_000); // 1 ms gap
        assert_eq!(count_items(&e, false, ms(10), None), 1);
    }

    #[test]
    fn two_breaks_separated_by_more_than_the_debounce_are_two_items() {
        let mut e = vec![];
        pulse(&mut e, 100_000, 30_000);
        pulse(&mut e, 180_000, 30_000);
        assert_eq!(count_items(&e, false, ms(10), None), 2);
    }

    #[test]
    fn an_open_break_counts_only_once_it_has_lasted_the_debounce() {
        let e = vec![BeamEdge {
            at: ms(100),
            broken: true,
        }];
        assert_eq!(count_items(&e, false, ms(10), Some(ms(105))), 0);
        assert_eq!(count_items(&e, false, ms(10), Some(ms(110))), 1);
        assert_eq!(count_items(&e, false, ms(10), None), 0);
    }

    #[test]
    fn a_break_in_progress_when_watching_started_is_not_counted() {
        let e = vec![BeamEdge {
            at: ms(50),
            broken: false,
        }];
        assert_eq!(count_items(&e, true, ms(10), None), 0);
    }

    proptest! {
        #[test]
        fn glitches_around_real_items_never_add_items(
            items in 0usize..4,
            glitches in proptest::collection::vec((0u64..2_500, 200u64..4_000), 0..6),
        ) {
            // Items 30 ms long, 100 ms apart; glitches (< 4 ms) placed just before each item
            // or far away from everything.
            let mut e = vec![];
            for i in 0..items as u64 {
                let start = 1_000_000 + i * 100_000;
                for (g_off, g_len) in &glitches {
                    let g_start = start - 9_000 + g_off; // ends before the item starts
                    let g_len = (*g_len).min(start - g_start - 100);
                    pulse(&mut e, g_start, g_len);
                }
                pulse(&mut e, start, 30_000);
            }
            for (k, (_, g_len)) in glitches.iter().enumerate() {
                pulse(&mut e, 10_000 + k as u64 * 50_000, *g_len);
            }
            e.sort_by_key(|x| x.at);
            prop_assert_eq!(count_items(&e, false, ms(10), None), items as u32);
        }
    }
}
