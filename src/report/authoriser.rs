//! The reference authoriser: a small operator-side service that approves payments against
//! an accounts file, so the whole online loop runs locally (tests, the simulated kiosk, a
//! pilot site). `vendctl authorise` runs it; production operators replace it with their
//! payment back end speaking the same topics.
//!
//! Topics, under each machine's root `vend/v1/<site>/<machine>`:
//! - `auth/request` → it answers on the request's `reply_to` (`auth/response/<id>`) with
//!   `{"id","sid","approved","amount","auth_ref","reason"}`, holding the amount;
//! - `payments/capture` and `payments/void` → it settles holds (or, for an offline
//!   approval, debits the account named by the credential hash), each idempotency key once;
//! - `payments/refund` → it credits the account whose capture the refund names (by
//!   `auth_ref`), each idempotency key once.
//!
//! Dynamic merchant QR (`"method": "merchant-qr"`, the credential is the session reference
//! shown in tag 62): the request is held until the payment provider reports the code paid
//! on [`PSP_PAID_TOPIC`] (`{"reference","terminal","amount","currency","txid"}`), then
//! approved when reference, terminal, amount and currency all match, declined otherwise.
//! A notification nobody waits for is logged (a real back end would refund it).

use rumqttc::v5::mqttbytes::v5::Packet;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, Event, MqttOptions};
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use tokio::sync::watch;
use tracing::{info, warn};

/// One account: a credential hash (as the machine computes it) and a balance.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Account {
    /// Keyed hash of the credential (see README "credential tokens").
    pub credential: String,
    /// Holder's name (for logs).
    pub name: String,
    /// Balance in minor units.
    pub balance: i64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AccountsFile {
    account: Vec<Account>,
}

/// Where the payment provider (or `vendctl pay-qr`, playing the shopper's phone) reports
/// a merchant QR code paid.
pub const PSP_PAID_TOPIC: &str = "vendpsp/v1/paid";

/// A merchant-QR request waiting for its payment.
#[derive(Debug, Clone)]
struct QrWait {
    request: Value,
}

#[derive(Debug, Clone)]
struct Hold {
    credential: String,
    amount: i64,
}

/// Accounts, holds and the idempotency keys already applied.
#[derive(Debug, Default)]
pub struct Accounts {
    balances: BTreeMap<String, (String, i64)>,
    holds: BTreeMap<String, Hold>,
    applied: BTreeSet<String>,
    /// Account of every authorisation that captured money, for refunds.
    settled: BTreeMap<String, String>,
    next_ref: u64,
    /// Merchant-QR requests by reference.
    qr_waiting: BTreeMap<String, QrWait>,
}

impl Accounts {
    /// Reads `[[account]]` tables (`credential`, `name`, `balance`).
    ///
    /// # Errors
    /// The TOML error, with its line.
    pub fn from_toml(text: &str) -> Result<Accounts, String> {
        let f: AccountsFile = toml::from_str(text).map_err(|e| e.to_string())?;
        let mut a = Accounts::default();
        for acc in f.account {
            a.balances.insert(acc.credential, (acc.name, acc.balance));
        }
        Ok(a)
    }

    /// The balance of a credential's account.
    pub fn balance(&self, credential: &str) -> Option<i64> {
        self.balances.get(credential).map(|(_, b)| *b)
    }

    fn held(&self, credential: &str) -> i64 {
        self.holds
            .values()
            .filter(|h| h.credential == credential)
            .map(|h| h.amount)
            .sum()
    }

    /// Handles an `auth/request`: the response payload, or None for a merchant-QR request,
    /// which waits for [`Accounts::qr_paid`].
    pub fn request(&mut self, req: &Value) -> Option<Value> {
        if req["method"] == "merchant-qr" {
            if let Some(reference) = req["credential"].as_str().filter(|r| !r.is_empty()) {
                self.qr_waiting.insert(
                    reference.to_string(),
                    QrWait {
                        request: req.clone(),
                    },
                );
                return None;
            }
        }
        Some(self.decide(req))
    }

    /// Is a merchant-QR request with this reference waiting for its payment?
    pub fn qr_waiting(&self, reference: &str) -> bool {
        self.qr_waiting.contains_key(reference)
    }

    /// A payment provider's notification that a merchant QR code was paid: the request it
    /// answers and the answer, or None when no request waits for that reference.
    pub fn qr_paid(&mut self, note: &Value) -> Option<(Value, Value)> {
        let reference = note["reference"].as_str()?;
        let wait = self.qr_waiting.remove(reference)?;
        let req = wait.request;
        let id = req["id"].as_str().unwrap_or_default();
        let amount = req["amount"].as_i64().unwrap_or(-1);
        let terminal_ok = note["terminal"].is_null() || note["terminal"] == req["machine"];
        let ok = terminal_ok
            && note["amount"].as_i64() == Some(amount)
            && note["currency"] == req["currency"];
        let txid = note["txid"].as_str().unwrap_or("psp");
        let auth_ref = if ok {
            self.next_ref += 1;
            let r = format!("qr-{}-{txid}", self.next_ref);
            self.holds.insert(
                r.clone(),
                Hold {
                    credential: format!("merchant_qr:{reference}"),
                    amount,
                },
            );
            info!(%reference, amount, auth_ref = %r, "merchant QR paid");
            r
        } else {
            warn!(%reference, "a merchant QR payment that does not match its request");
            String::new()
        };
        let reason = if ok {
            "paid"
        } else {
            "the payment does not match the code shown"
        };
        let answer = json!({"v": 1, "id": id, "sid": req["sid"], "approved": ok, "amount": amount, "auth_ref": auth_ref, "reason": reason});
        Some((req, answer))
    }

    /// Decides an `auth/request` for an account credential; returns the response payload.
    pub fn decide(&mut self, req: &Value) -> Value {
        let id = req["id"].as_str().unwrap_or_default();
        let sid = req["sid"].as_u64();
        let amount = req["amount"].as_i64().unwrap_or(-1);
        let credential = req["credential"].as_str().unwrap_or_default();
        let answer = |approved: bool, auth_ref: &str, reason: &str| json!({"v": 1, "id": id, "sid": sid, "approved": approved, "amount": amount, "auth_ref": auth_ref, "reason": reason});
        if amount <= 0 {
            return answer(false, "", "malformed request");
        }
        let Some((name, balance)) = self.balances.get(credential).cloned() else {
            return answer(false, "", "unknown account");
        };
        if balance - self.held(credential) < amount {
            return answer(false, "", "insufficient funds");
        }
        self.next_ref += 1;
        let auth_ref = format!("auth-{}", self.next_ref);
        self.holds.insert(
            auth_ref.clone(),
            Hold {
                credential: credential.to_string(),
                amount,
            },
        );
        info!(account = %name, amount, %auth_ref, "approved");
        answer(true, &auth_ref, "approved")
    }

    /// Applies a `payments/capture`, `payments/void` or `payments/refund` (credits the
    /// account that paid); returns false when its key was already applied (a resend) or
    /// it names nothing known.
    pub fn settle(&mut self, kind: &str, p: &Value) -> bool {
        let Some(key) = p["key"].as_str() else {
            return false;
        };
        if self.applied.contains(key) {
            return false;
        }
        let amount = p["amount"].as_i64().unwrap_or(0);
        let auth_ref = p["auth_ref"].as_str().unwrap_or_default();
        let hold_credential = self
            .holds
            .get(auth_ref)
            .map(|h| h.credential.clone())
            .or_else(|| self.settled.get(auth_ref).cloned());
        let credential = hold_credential.or_else(|| {
            (p["offline"] == true)
                .then(|| p["credential"].as_str().map(str::to_string))
                .flatten()
        });
        let Some(credential) = credential else {
            warn!(key, "a payment for an unknown authorisation");
            return false;
        };
        if kind == "refund" {
            if !self.settled.contains_key(auth_ref) || amount <= 0 {
                warn!(key, "a refund for nothing captured");
                return false;
            }
            if let Some((_, b)) = self.balances.get_mut(&credential) {
                *b += amount;
            }
            self.applied.insert(key.to_string());
            return true;
        }
        if kind == "capture" && amount > 0 {
            if let Some((_, b)) = self.balances.get_mut(&credential) {
                *b -= amount;
            }
            self.settled
                .insert(auth_ref.to_string(), credential.clone());
        }
        if kind == "void" || kind == "capture" && p["offline"] != true {
            // Capture then void settle the hold; whichever comes second finds it gone.
            if kind == "void" {
                self.holds.remove(auth_ref);
            } else if let Some(h) = self.holds.get_mut(auth_ref) {
                h.amount -= amount;
            }
        }
        self.applied.insert(key.to_string());
        true
    }
}

/// Serves machines under `root_filter` (e.g. `vend/v1/+/+`) until `stop` turns true. Uses a
/// persistent session so payments sent while it was down arrive when it returns.
pub async fn serve(
    mut options: MqttOptions,
    root_filter: &str,
    accounts: Arc<Mutex<Accounts>>,
    mut stop: watch::Receiver<bool>,
) {
    options.set_clean_start(false);
    options.set_session_expiry_interval(Some(7 * 24 * 3600));
    let (client, mut eventloop) = AsyncClient::new(options, 256);
    let subs = [
        format!("{root_filter}/auth/request"),
        format!("{root_filter}/payments/+"),
        PSP_PAID_TOPIC.to_string(),
    ];
    loop {
        tokio::select! {
            ev = eventloop.poll() => match ev {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    for s in &subs {
                        let _ = client.try_subscribe(s.clone(), QoS::AtLeastOnce);
                    }
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    let topic = String::from_utf8_lossy(&p.topic).into_owned();
                    let Ok(v) = serde_json::from_slice::<Value>(&p.payload) else { continue };
                    if topic.ends_with("/auth/request") {
                        let answer = accounts.lock().expect("accounts").request(&v);
                        if let (Some(answer), Some(reply_to)) = (answer, v["reply_to"].as_str()) {
                            let _ = client.try_publish(reply_to, QoS::AtLeastOnce, false, answer.to_string());
                        }
                    } else if topic == PSP_PAID_TOPIC {
                        let paid = accounts.lock().expect("accounts").qr_paid(&v);
                        match paid {
                            Some((req, answer)) => {
                                if let Some(reply_to) = req["reply_to"].as_str() {
                                    let _ = client.try_publish(reply_to, QoS::AtLeastOnce, false, answer.to_string());
                                }
                            }
                            None => warn!("a merchant QR payment for no waiting request (refund it)"),
                        }
                    } else if let Some(kind) = topic.rsplit('/').next().filter(|_| topic.contains("/payments/")) {
                        accounts.lock().expect("accounts").settle(kind, &v);
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    warn!(cause = %e, "authoriser: connection lost");
                    tokio::select! {
                        _ = tokio::time::sleep(std::time::Duration::from_millis(500)) => {}
                        _ = stop.changed() => break,
                    }
                }
            },
            _ = stop.changed() => break,
        }
    }
    let _ = client.try_disconnect();
    let _ = tokio::time::timeout(std::time::Duration::from_millis(500), async {
        while let Ok(ev) = eventloop.poll().await {
            if matches!(ev, Event::Outgoing(rumqttc::Outgoing::Disconnect)) {
                break;
            }
        }
    })
    .await;
}
