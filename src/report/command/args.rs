//! The commands an operator can send, their arguments, and the checks that make a command
//! all-or-nothing: every argument is validated before any part of it is used.

use super::CommandError;
use crate::core::{Catalog, EraseBy, Input, SessionId, SlotId};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeSet;

/// Highest price or money amount a command may carry, minor units (1,000,000.00 in a
/// two-decimal currency): a typo guard, far above anything a vending machine sells.
pub const MAX_AMOUNT: i64 = 100_000_000;

/// Most entries in one `set_prices` or `restock` list, and most slots in a planogram.
pub const MAX_ENTRIES: usize = 200;

/// Highest stock count a `restock` entry may set (a typo guard; the core also checks the
/// slot's capacity).
pub const MAX_STOCK_COUNT: u32 = 10_000;

/// Longest door unlock, seconds.
pub const MAX_UNLOCK_SECONDS: u32 = 300;

/// Most credential hashes one `deny_list` command may add and remove together.
pub const MAX_DENY_ENTRIES: usize = 1_000;

/// Every command name, as used in the envelope's `name` and the topic `cmd/<name>`.
pub const COMMAND_NAMES: [&str; 14] = [
    "set_prices",
    "set_planogram",
    "restock",
    "set_slot_enabled",
    "refund",
    "void",
    "unlock_door",
    "deny_list",
    "audit_export",
    "reload_config",
    "clear_fault",
    "reset_counters",
    "erase_face",
    "doctor",
];

/// One `set_prices` entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriceEntry {
    /// Slot.
    pub slot: SlotId,
    /// New price, minor units, `0..=MAX_AMOUNT`.
    pub price: i64,
}

/// One `restock` entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StockEntry {
    /// Slot.
    pub slot: SlotId,
    /// New stock count, `0..=MAX_STOCK_COUNT`.
    pub count: u32,
}

/// A validated operator command. Serialises as `{"name": …, "args": {…}}`, the same shape
/// as in the envelope.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "name", content = "args", rename_all = "snake_case")]
pub enum RemoteCommand {
    /// Set the prices of some slots (one [`Input::SetPrice`] each).
    SetPrices {
        /// 1..=[`MAX_ENTRIES`] entries, each slot at most once.
        prices: Vec<PriceEntry>,
    },
    /// Replace the whole planogram. Handled by the runtime (journal a
    /// `Record::Planogram` with the command id as its source).
    SetPlanogram {
        /// The new catalog; non-empty, consistent ([`Catalog::problems`] is empty). A slot
        /// may leave out `stock`: it then keeps its count if it keeps its product.
        catalog: Catalog,
        /// Slots whose `stock` the command gives (read from the arguments; not a field of
        /// the envelope).
        #[serde(skip)]
        stock_given: Vec<SlotId>,
    },
    /// Set stock counts after a restock (one [`Input::Restock`] each).
    Restock {
        /// 1..=[`MAX_ENTRIES`] entries, each slot at most once.
        counts: Vec<StockEntry>,
    },
    /// Enable or disable a slot ([`Input::SetEnabled`]).
    SetSlotEnabled {
        /// Slot.
        slot: SlotId,
        /// Sellable again (true) or taken out of sale.
        enabled: bool,
    },
    /// Refund a settled session, whole or in part. Handled by the runtime's payment
    /// adapter (idempotency key from the command id).
    Refund {
        /// Session, from 1.
        sid: SessionId,
        /// Amount in minor units, `1..=MAX_AMOUNT`; `None` refunds what was captured.
        amount: Option<i64>,
    },
    /// Void (release) a session's hold. Handled by the runtime's payment adapter.
    Void {
        /// Session, from 1.
        sid: SessionId,
    },
    /// Open the door lock for a while. Handled by the runtime (lock solenoid).
    UnlockDoor {
        /// 1..=[`MAX_UNLOCK_SECONDS`].
        seconds: u32,
    },
    /// Add and remove credential hashes on the deny list (one [`Input::Deny`] each).
    DenyList {
        /// Hashes to add: 64 hex characters each, stored lower-case.
        add: Vec<String>,
        /// Hashes to remove.
        remove: Vec<String>,
    },
    /// Export the audit data (DEX). Handled by the runtime (journal export).
    AuditExport {},
    /// Re-read the configuration file. Handled by the runtime.
    ReloadConfig {},
    /// Clear a slot's fault ([`Input::ClearFault`]).
    ClearFault {
        /// Slot.
        slot: SlotId,
    },
    /// Reset the since-reset audit counters ([`Input::ResetCounters`]).
    ResetCounters {},
    /// Run the `vendd doctor` checks on the running daemon and publish them on `doctor`.
    /// Handled by the link.
    Doctor {},
    /// Erase an account's face enrolment ([`Input::FaceErased`], by the operator).
    EraseFace {
        /// The account: the credential hash the face is linked to (64 hex characters).
        account: String,
    },
}

impl RemoteCommand {
    /// The command's name, e.g. `set_prices`.
    pub fn name(&self) -> &'static str {
        match self {
            RemoteCommand::SetPrices { .. } => "set_prices",
            RemoteCommand::SetPlanogram { .. } => "set_planogram",
            RemoteCommand::Restock { .. } => "restock",
            RemoteCommand::SetSlotEnabled { .. } => "set_slot_enabled",
            RemoteCommand::Refund { .. } => "refund",
            RemoteCommand::Void { .. } => "void",
            RemoteCommand::UnlockDoor { .. } => "unlock_door",
            RemoteCommand::DenyList { .. } => "deny_list",
            RemoteCommand::AuditExport {} => "audit_export",
            RemoteCommand::ReloadConfig {} => "reload_config",
            RemoteCommand::ClearFault { .. } => "clear_fault",
            RemoteCommand::ResetCounters {} => "reset_counters",
            RemoteCommand::EraseFace { .. } => "erase_face",
            RemoteCommand::Doctor {} => "doctor",
        }
    }

    /// The command's arguments as JSON (what [`sign`](super::sign) takes).
    pub fn args(&self) -> Value {
        match serde_json::to_value(self) {
            Ok(Value::Object(mut map)) => map.remove("args").unwrap_or(Value::Null),
            _ => Value::Null,
        }
    }

    /// The core inputs that carry command `id` out on a `rows`×`cols` machine, in order;
    /// apply them all or none. Empty for `audit_export` (the link publishes the counters)
    /// and `reload_config` (not supported).
    pub fn inputs_for(&self, id: &str, rows: u8, cols: u8) -> Vec<Input> {
        match self {
            RemoteCommand::SetPlanogram {
                catalog,
                stock_given,
            } => vec![Input::SetPlanogram {
                catalog: catalog.clone(),
                source: format!("cmd:{id}"),
                rows,
                cols,
                stock_given: stock_given.clone(),
            }],
            RemoteCommand::Refund { sid, amount } => vec![Input::Refund {
                sid: *sid,
                amount: *amount,
                key: format!("{sid}:refund:{id}"),
            }],
            RemoteCommand::Void { sid } => vec![Input::VoidSession { sid: *sid }],
            RemoteCommand::UnlockDoor { seconds } => vec![Input::UnlockDoor { seconds: *seconds }],
            other => other.to_inputs(),
        }
    }

    /// The core inputs of the commands that need no command id or machine size, in order;
    /// apply them all or none.
    ///
    /// Empty for `set_planogram`, `refund`, `void` and `unlock_door` (see
    /// [`RemoteCommand::inputs_for`]) and for `audit_export` and `reload_config`.
    pub fn to_inputs(&self) -> Vec<Input> {
        match self {
            RemoteCommand::SetPrices { prices } => prices
                .iter()
                .map(|p| Input::SetPrice {
                    slot: p.slot.clone(),
                    price: p.price,
                })
                .collect(),
            RemoteCommand::Restock { counts } => counts
                .iter()
                .map(|c| Input::Restock {
                    slot: c.slot.clone(),
                    count: c.count,
                })
                .collect(),
            RemoteCommand::SetSlotEnabled { slot, enabled } => vec![Input::SetEnabled {
                slot: slot.clone(),
                enabled: *enabled,
            }],
            RemoteCommand::ClearFault { slot } => vec![Input::ClearFault { slot: slot.clone() }],
            RemoteCommand::ResetCounters {} => vec![Input::ResetCounters],
            RemoteCommand::EraseFace { account } => vec![Input::FaceErased {
                account: account.clone(),
                by: EraseBy::Operator,
            }],
            RemoteCommand::DenyList { add, remove } => add
                .iter()
                .map(|h| Input::Deny {
                    credential: h.clone(),
                    add: true,
                })
                .chain(remove.iter().map(|h| Input::Deny {
                    credential: h.clone(),
                    add: false,
                }))
                .collect(),
            RemoteCommand::SetPlanogram { .. }
            | RemoteCommand::Refund { .. }
            | RemoteCommand::Void { .. }
            | RemoteCommand::UnlockDoor { .. }
            | RemoteCommand::AuditExport {}
            | RemoteCommand::Doctor {}
            | RemoteCommand::ReloadConfig {} => Vec::new(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SetPricesArgs {
    #[serde(default)]
    prices: Option<Vec<Value>>,
    /// An EVA-DTS price list: `PC1*<selection>*<price>` segments (a bare list, or a whole
    /// DEX file whose G85 CRC must then verify).
    #[serde(default)]
    price_list: Option<String>,
}

/// The prices of an EVA-DTS price list (PC1 segments: PC101 the selection = slot name,
/// PC102 the price in minor units). Other segments are ignored; a file with a G85 must
/// pass its CRC and segment count.
fn price_list(text: &str) -> Result<Vec<PriceEntry>, String> {
    if text.contains("G85*") {
        let f = crate::dex::parse(text).map_err(|e| format!("price_list: {e}"))?;
        f.verify().map_err(|e| format!("price_list: {e}"))?;
    }
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        let Some(rest) = line.strip_prefix("PC1*") else {
            continue;
        };
        let mut el = rest.split('*');
        let (sel, price) = (el.next().unwrap_or(""), el.next().unwrap_or(""));
        let slot = SlotId::parse(sel.trim()).map_err(|_| {
            format!(
                "price_list line {}: PC101 `{sel}` is not a slot name (A1…)",
                i + 1
            )
        })?;
        let price: i64 = price.trim().parse().map_err(|_| {
            format!(
                "price_list line {}: PC102 `{price}` is not a price in minor units",
                i + 1
            )
        })?;
        out.push(PriceEntry { slot, price });
    }
    if out.is_empty() {
        return Err("price_list has no PC1 segment".into());
    }
    Ok(out)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PlanogramArgs {
    catalog: Catalog,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RestockArgs {
    counts: Vec<Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SlotEnabledArgs {
    slot: SlotId,
    enabled: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RefundArgs {
    sid: SessionId,
    #[serde(default)]
    amount: Option<i64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SidArgs {
    sid: SessionId,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UnlockArgs {
    seconds: u32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EraseFaceArgs {
    account: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DenyArgs {
    #[serde(default)]
    add: Vec<String>,
    #[serde(default)]
    remove: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SlotArgs {
    slot: SlotId,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NoArgs {}

/// Parses and validates the arguments of command `name`. Used by the verifier after the
/// signature checks out, and by the operator tool before it signs.
///
/// # Errors
/// [`CommandError::UnknownCommand`] for a name not in [`COMMAND_NAMES`];
/// [`CommandError::InvalidArgs`] naming the first problem found.
pub fn parse_args(name: &str, args: &Value) -> Result<RemoteCommand, CommandError> {
    if !COMMAND_NAMES.contains(&name) {
        return Err(CommandError::UnknownCommand(name.to_string()));
    }
    let bad = |reason: String| CommandError::InvalidArgs {
        name: name.to_string(),
        reason,
    };
    if !args.is_object() {
        return Err(bad(format!(
            "args must be a JSON object, not {}",
            kind_of(args)
        )));
    }
    let cmd = match name {
        "set_prices" => {
            let a: SetPricesArgs = from_args(args).map_err(bad)?;
            let prices: Vec<PriceEntry> = match (&a.prices, &a.price_list) {
                (Some(p), None) => entries("prices", p).map_err(bad)?,
                (None, Some(t)) => price_list(t).map_err(bad)?,
                _ => {
                    return Err(bad(
                        "give either prices (a list) or price_list (EVA-DTS PC1 segments)"
                            .to_string(),
                    ))
                }
            };
            check_list("prices", prices.iter().map(|p| &p.slot)).map_err(bad)?;
            for p in &prices {
                check_amount(&format!("price of {}", p.slot), p.price, 0).map_err(bad)?;
            }
            RemoteCommand::SetPrices { prices }
        }
        "set_planogram" => {
            let a: PlanogramArgs = from_args(args).map_err(bad)?;
            check_catalog(&a.catalog).map_err(bad)?;
            let stock_given = a
                .catalog
                .slots
                .keys()
                .filter(|id| {
                    args["catalog"]["slots"]
                        .as_object()
                        .and_then(|m| {
                            m.iter()
                                .find(|(k, _)| SlotId::parse(k).ok().as_ref() == Some(*id))
                        })
                        .is_some_and(|(_, v)| v.get("stock").is_some())
                })
                .cloned()
                .collect();
            RemoteCommand::SetPlanogram {
                catalog: a.catalog,
                stock_given,
            }
        }
        "restock" => {
            let a: RestockArgs = from_args(args).map_err(bad)?;
            let counts: Vec<StockEntry> = entries("counts", &a.counts).map_err(bad)?;
            check_list("counts", counts.iter().map(|c| &c.slot)).map_err(bad)?;
            if let Some(c) = counts.iter().find(|c| c.count > MAX_STOCK_COUNT) {
                return Err(bad(format!(
                    "count {} for slot {} is above {MAX_STOCK_COUNT}: send the number of items in the slot",
                    c.count, c.slot
                )));
            }
            RemoteCommand::Restock { counts }
        }
        "set_slot_enabled" => {
            let a: SlotEnabledArgs = from_args(args).map_err(bad)?;
            RemoteCommand::SetSlotEnabled {
                slot: a.slot,
                enabled: a.enabled,
            }
        }
        "refund" => {
            let a: RefundArgs = from_args(args).map_err(bad)?;
            check_sid(a.sid).map_err(bad)?;
            if let Some(amount) = a.amount {
                check_amount("refund amount", amount, 1).map_err(bad)?;
            }
            RemoteCommand::Refund {
                sid: a.sid,
                amount: a.amount,
            }
        }
        "void" => {
            let a: SidArgs = from_args(args).map_err(bad)?;
            check_sid(a.sid).map_err(bad)?;
            RemoteCommand::Void { sid: a.sid }
        }
        "unlock_door" => {
            let a: UnlockArgs = from_args(args).map_err(bad)?;
            if !(1..=MAX_UNLOCK_SECONDS).contains(&a.seconds) {
                return Err(bad(format!(
                    "seconds is {} but must be 1..={MAX_UNLOCK_SECONDS}",
                    a.seconds
                )));
            }
            RemoteCommand::UnlockDoor { seconds: a.seconds }
        }
        "deny_list" => {
            let a: DenyArgs = from_args(args).map_err(bad)?;
            let (add, remove) = check_deny(a.add, a.remove).map_err(bad)?;
            RemoteCommand::DenyList { add, remove }
        }
        "erase_face" => {
            let a: EraseFaceArgs = from_args(args).map_err(bad)?;
            let (mut add, _) = check_deny(vec![a.account], Vec::new())
                .map_err(|e| bad(e.replace("add[0]", "account")))?;
            RemoteCommand::EraseFace {
                account: add.remove(0),
            }
        }
        "clear_fault" => {
            let a: SlotArgs = from_args(args).map_err(bad)?;
            RemoteCommand::ClearFault { slot: a.slot }
        }
        "audit_export" | "reload_config" | "reset_counters" | "doctor" => {
            let NoArgs {} =
                from_args(args).map_err(|e| bad(format!("{e} (send \"args\":{{}})")))?;
            match name {
                "audit_export" => RemoteCommand::AuditExport {},
                "reload_config" => RemoteCommand::ReloadConfig {},
                "doctor" => RemoteCommand::Doctor {},
                _ => RemoteCommand::ResetCounters {},
            }
        }
        _ => return Err(CommandError::UnknownCommand(name.to_string())),
    };
    Ok(cmd)
}

fn from_args<T: DeserializeOwned>(args: &Value) -> Result<T, String> {
    T::deserialize(args).map_err(|e| e.to_string())
}

/// Each list entry must be a JSON object of the entry's shape.
fn entries<T: DeserializeOwned>(list: &str, items: &[Value]) -> Result<Vec<T>, String> {
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            if !item.is_object() {
                return Err(format!(
                    "{list}[{i}] must be an object, not {}",
                    kind_of(item)
                ));
            }
            T::deserialize(item).map_err(|e| format!("{list}[{i}]: {e}"))
        })
        .collect()
}

fn check_list<'a>(
    list: &str,
    slots: impl ExactSizeIterator<Item = &'a SlotId>,
) -> Result<(), String> {
    let n = slots.len();
    if n == 0 {
        return Err(format!("{list} is empty: list at least one slot"));
    }
    if n > MAX_ENTRIES {
        return Err(format!(
            "{list} has {n} entries, more than {MAX_ENTRIES}: split it into several commands"
        ));
    }
    let mut seen = BTreeSet::new();
    for slot in slots {
        if !seen.insert(slot) {
            return Err(format!(
                "slot {slot} appears twice in {list}: list each slot once"
            ));
        }
    }
    Ok(())
}

fn check_amount(what: &str, amount: i64, min: i64) -> Result<(), String> {
    if (min..=MAX_AMOUNT).contains(&amount) {
        Ok(())
    } else {
        Err(format!(
            "{what} is {amount} but must be {min}..={MAX_AMOUNT} minor units (cents, not a decimal amount)"
        ))
    }
}

fn check_sid(sid: SessionId) -> Result<(), String> {
    if sid == 0 {
        Err("sid is 0 but session numbers start at 1".to_string())
    } else {
        Ok(())
    }
}

fn check_catalog(catalog: &Catalog) -> Result<(), String> {
    if catalog.slots.is_empty() || catalog.products.is_empty() {
        return Err("catalog has no slots or no products: send the whole planogram".to_string());
    }
    if catalog.slots.len() > MAX_ENTRIES {
        return Err(format!(
            "catalog has {} slots, more than {MAX_ENTRIES}",
            catalog.slots.len()
        ));
    }
    for (code, product) in &catalog.products {
        if *code != product.id {
            return Err(format!(
                "product listed as `{code}` says its id is `{}`: make them equal",
                product.id
            ));
        }
    }
    for (id, slot) in &catalog.slots {
        if *id != slot.id {
            return Err(format!(
                "slot listed as {id} says its id is {}: make them equal",
                slot.id
            ));
        }
        if slot.price > MAX_AMOUNT {
            return Err(format!(
                "slot {id} has price {} above {MAX_AMOUNT} minor units",
                slot.price
            ));
        }
    }
    let problems = catalog.problems();
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!("catalog is inconsistent: {}", problems.join("; ")))
    }
}

fn check_deny(add: Vec<String>, remove: Vec<String>) -> Result<(Vec<String>, Vec<String>), String> {
    let total = add.len() + remove.len();
    if total == 0 {
        return Err("add and remove are both empty: list at least one credential hash".into());
    }
    if total > MAX_DENY_ENTRIES {
        return Err(format!(
            "{total} hashes in one command, more than {MAX_DENY_ENTRIES}: split it"
        ));
    }
    let mut seen = BTreeSet::new();
    let mut norm = |list: &str, hashes: Vec<String>| -> Result<Vec<String>, String> {
        hashes
            .into_iter()
            .enumerate()
            .map(|(i, h)| {
                // The entry is not echoed: it might be a raw card number sent by mistake.
                if h.len() != 64 || !h.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(format!(
                        "{list}[{i}] is not a credential hash: send the 64 hex characters \
                         of the keyed hash (as vendd reports it), never a raw card number"
                    ));
                }
                let h = h.to_ascii_lowercase();
                if !seen.insert(h.clone()) {
                    return Err(format!(
                        "hash {h} is listed twice: list it once, in add or remove"
                    ));
                }
                Ok(h)
            })
            .collect()
    };
    let add = norm("add", add)?;
    let remove = norm("remove", remove)?;
    Ok((add, remove))
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
