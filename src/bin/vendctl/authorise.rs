//! `vendctl authorise`: the reference authoriser (see `vendd::report::authoriser`), and
//! `vendctl token`, which computes the credential hash an accounts file lists.

use crate::broker::BrokerArgs;
use anyhow::Context;
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use vendd::report::authoriser::{serve, Accounts};

/// Options of `vendctl authorise`.
#[derive(Args, Debug)]
pub(crate) struct AuthoriseArgs {
    #[command(flatten)]
    broker: BrokerArgs,
    /// Accounts file: `[[account]]` tables with `credential`, `name`, `balance`.
    #[arg(long, value_name = "FILE")]
    accounts: PathBuf,
    /// Machines served: a topic filter for their roots.
    #[arg(long, default_value = "vend/v1/+/+")]
    roots: String,
    /// Fixed client id: the broker keeps payments sent while the authoriser is down.
    #[arg(long, default_value = "vendd-authoriser")]
    client_id: String,
}

/// Runs the authoriser until Ctrl-C or SIGTERM.
///
/// # Errors
/// An unreadable accounts file or bad broker options.
pub(crate) fn run(a: AuthoriseArgs) -> anyhow::Result<ExitCode> {
    let text = std::fs::read_to_string(&a.accounts)
        .with_context(|| format!("cannot read {}", a.accounts.display()))?;
    let accounts =
        Accounts::from_toml(&text).map_err(|e| anyhow::anyhow!("{}: {e}", a.accounts.display()))?;
    let mut options = a.broker.options("vendd-authoriser")?;
    options.set_client_id(a.client_id.clone());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(async move {
            serve(options, &a.roots, Arc::new(Mutex::new(accounts)), stop_rx).await
        });
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        let _ = stop_tx.send(true);
        let _ = task.await;
        Ok::<_, anyhow::Error>(())
    })?;
    Ok(ExitCode::SUCCESS)
}

/// Options of `vendctl token`.
#[derive(Args, Debug)]
pub(crate) struct TokenArgs {
    /// The machine's device secret (hex), as in its `security.device_secret`.
    #[arg(long)]
    secret_hex: String,
    /// Credential kind, as the machine's readers hash it: `nfc-uid` (id = the card's UID in
    /// hex), `nfc-ndef` (id = the NDEF text or URI token on the card), `paycode` (id = the
    /// wallet code), `sim-card` (id = a simulated card's name, as `/sim/nfc/tap` takes it),
    /// or a sim-API kind (`test-card`, `card`, `face`: the `kind` of `/sim/credential`).
    #[arg(long)]
    kind: String,
    /// The identifier as the reader sees it.
    #[arg(long)]
    id: String,
}

/// Prints the keyed hash of a credential.
///
/// # Errors
/// A secret that is not hex.
pub(crate) fn token(a: &TokenArgs) -> anyhow::Result<ExitCode> {
    let secret = hex::decode(&a.secret_hex).context("--secret-hex must be hex")?;
    let token = match a.kind.as_str() {
        "nfc-uid" => {
            let uid = hex::decode(&a.id).context("an nfc-uid id is the UID in hex")?;
            if !matches!(uid.len(), 4 | 7 | 10) {
                anyhow::bail!("a UID is 4, 7 or 10 bytes, not {}", uid.len());
            }
            vendd::token::credential_token(&secret, "nfc-uid", &hex::encode(uid))
        }
        "sim-card" => vendd::nfc::sim::SimCard::from_id(&a.id, None)
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .token(&secret),
        "paycode" => vendd::token::credential_token(&secret, "paycode", a.id.trim()),
        "nfc-ndef" | "test-card" | "card" | "face" | "pay-code" | "merchant-qr" => {
            vendd::token::credential_token(&secret, &a.kind, &a.id)
        }
        other => anyhow::bail!(
            "unknown kind `{other}`: use nfc-uid, nfc-ndef, paycode, sim-card, test-card, card or face"
        ),
    };
    println!("{token}");
    Ok(ExitCode::SUCCESS)
}
