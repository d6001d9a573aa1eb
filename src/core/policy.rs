//! The offline payment policy: what the machine may approve on its own when the authoriser
//! cannot be reached or does not answer in time.
//!
//! Each rule bounds the operator's risk: a floor limit per transaction, a cap on the value
//! approved offline and not yet uploaded, a number of uses per credential per day, and the
//! deny list (which applies online too).

use super::record::{DeclineReason, PaymentMethod};
use super::state::{day_of, State};
use super::Millis;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// Limits of the offline policy (from configuration).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyConfig {
    /// Largest amount approved offline in one transaction, minor units.
    pub floor_limit: i64,
    /// Largest value of offline approvals awaiting upload, minor units.
    pub max_offline_total: i64,
    /// Approvals per credential per local day (online and offline count).
    pub max_uses_per_day: u32,
    /// Methods that may be approved offline (pay codes usually need the network).
    pub offline_methods: BTreeSet<PaymentMethod>,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        PolicyConfig {
            floor_limit: 2000,
            max_offline_total: 20_000,
            max_uses_per_day: 5,
            offline_methods: [
                PaymentMethod::TestCard,
                PaymentMethod::Card,
                PaymentMethod::Face,
            ]
            .into_iter()
            .collect(),
        }
    }
}

/// The deny list applies whatever the link state.
pub fn deny_check(state: &State, credential: &str) -> Result<(), DeclineReason> {
    if state.deny.contains(credential) {
        Err(DeclineReason::DenyListed)
    } else {
        Ok(())
    }
}

/// Decides a payment offline.
///
/// # Errors
/// The first rule the payment breaks, as a [`DeclineReason`].
pub fn decide_offline(
    cfg: &PolicyConfig,
    state: &State,
    now: Millis,
    method: PaymentMethod,
    credential: &str,
    amount: i64,
) -> Result<(), DeclineReason> {
    deny_check(state, credential)?;
    if !cfg.offline_methods.contains(&method) {
        return Err(DeclineReason::NeedsOnline);
    }
    if amount > cfg.floor_limit {
        return Err(DeclineReason::OverFloorLimit {
            limit: cfg.floor_limit,
        });
    }
    if state.ledger.unsettled_offline + amount > cfg.max_offline_total {
        return Err(DeclineReason::OfflineTotalExceeded {
            cap: cfg.max_offline_total,
        });
    }
    let today = day_of(now, state.day_offset_s);
    let used = match state.ledger.uses.get(credential) {
        Some((day, n)) if *day == today => *n,
        _ => 0,
    };
    if used >= cfg.max_uses_per_day {
        return Err(DeclineReason::DailyUsesExceeded {
            limit: cfg.max_uses_per_day,
        });
    }
    Ok(())
}
