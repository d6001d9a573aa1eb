//! `vendctl pay-qr`: plays the shopper's banking app and the payment provider for a
//! dynamic merchant QR — reads the code (an image file, e.g. the kiosk's
//! `/api/pay/qr.png`, or the payload text), checks it (CRC, mandatory tags, dynamic, amount)
//! and reports it paid on the provider topic the reference authoriser listens to.

use crate::broker::BrokerArgs;
use anyhow::{bail, Context};
use clap::Args;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{Client, Event};
use rumqttc::Outgoing;
use serde_json::json;
use std::path::PathBuf;
use std::process::ExitCode;
use vendd::payment::PointOfInitiation;
use vendd::report::authoriser::PSP_PAID_TOPIC;

/// Options of `vendctl pay-qr`.
#[derive(Args, Debug)]
pub(crate) struct PayQrArgs {
    #[command(flatten)]
    broker: BrokerArgs,
    /// An image of the code (PNG or JPEG).
    #[arg(long, value_name = "FILE", conflicts_with = "payload")]
    image: Option<PathBuf>,
    /// The payload text itself.
    #[arg(long)]
    payload: Option<String>,
    /// Pay this amount (minor units) instead of the code's (to try a mismatch).
    #[arg(long)]
    amount: Option<i64>,
}

/// Reads, checks and pays the code; prints what was paid.
///
/// # Errors
/// No code in the image, an invalid payload, or a broker error.
pub(crate) fn run(a: PayQrArgs) -> anyhow::Result<ExitCode> {
    let payload = match (&a.image, &a.payload) {
        (Some(p), None) => {
            let img = image::open(p)
                .with_context(|| format!("cannot read {}", p.display()))?
                .to_luma8();
            let mut dec = vendd::qr::QrDecoder::new(vendd::qr::QrConfig::default());
            let read = dec.decode(&img);
            let Some(text) = read.into_iter().find_map(|d| d.text) else {
                bail!("no QR code found in {}", p.display());
            };
            text
        }
        (None, Some(t)) => t.clone(),
        _ => bail!("give --image FILE or --payload TEXT"),
    };
    let p = vendd::payment::parse(&payload)
        .map_err(|e| anyhow::anyhow!("not a valid EMVCo payload: {e}"))?;
    if p.point_of_initiation() != Some(PointOfInitiation::Dynamic) {
        bail!("a static code: the amount is typed by the payer; vendd shows dynamic codes only");
    }
    let Some(due) = p.amount().map_err(|e| anyhow::anyhow!("{e}"))? else {
        bail!("the code has no amount (tag 54)");
    };
    let Some(reference) = p.reference() else {
        bail!("the code has no reference (tag 62, sub-tag 05)");
    };
    let amount = a.amount.unwrap_or(due.minor);
    let note = json!({
        "reference": reference,
        "terminal": p.terminal_label(),
        "amount": amount,
        "currency": due.currency.code(),
        "txid": format!("vendctl-{}", std::process::id()),
    });
    let options = a.broker.options("vendctl-payqr")?;
    let (client, mut conn) = Client::new(options, 10);
    client.publish(PSP_PAID_TOPIC, QoS::AtLeastOnce, false, note.to_string())?;
    let mut acked = false;
    for ev in conn.iter() {
        match ev {
            Ok(Event::Incoming(rumqttc::v5::mqttbytes::v5::Packet::PubAck(_))) => {
                acked = true;
                let _ = client.disconnect();
            }
            Ok(Event::Outgoing(Outgoing::Disconnect)) => break,
            Ok(_) => {}
            Err(e) => bail!("broker {}: {e}", a.broker.address()),
        }
    }
    if !acked {
        bail!("the broker did not acknowledge the payment");
    }
    println!(
        "paid {} {} for {} ({}) at {}",
        due.currency.format_minor(amount),
        due.currency.code(),
        reference,
        p.merchant_name(),
        p.terminal_label().unwrap_or("-")
    );
    Ok(ExitCode::SUCCESS)
}
