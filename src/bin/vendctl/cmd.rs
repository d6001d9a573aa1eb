//! `vendctl cmd`: signs an operator command, sends it on `<root>/cmd/<name>` and waits for
//! the machine's answer on `<root>/cmd/<name>/result`.
//!
//! Order: the arguments are checked with the daemon's own `parse_args` and the key is read
//! before any connection, so a bad command is refused locally and nothing is sent. The
//! result topic is subscribed to before the command is published, so a fast answer cannot
//! be missed. Exit 0 when the machine carried the command out, 1 when it refused it, 3 when
//! no answer came in time (the command may still arrive and be carried out until it
//! expires), 2 for local and connection errors.

use crate::broker::BrokerArgs;
use anyhow::{bail, Context};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use clap::Args;
use rand::RngCore;
use rumqttc::v5::mqttbytes::v5::{Packet, PubAckReason, SubscribeReasonCode};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, Event, EventLoop};
use rumqttc::Outgoing;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use tokio::time::{timeout_at, Instant};
use vendd::report::command::{
    parse_args, parse_signing_key, parse_strict, result_topic, sign, CommandResult, MAX_LIFETIME_MS,
};

#[derive(Args, Debug)]
pub(crate) struct CmdArgs {
    #[command(flatten)]
    broker: BrokerArgs,
    /// Target machine id (`*` for every machine under the topic root).
    #[arg(long)]
    machine: String,
    /// Site of the machine (for the default topic root `vend/v1/<site>/<machine>`).
    #[arg(long, required_unless_present = "topic_root")]
    site: Option<String>,
    /// The machine's topic root, when it is not `vend/v1/<site>/<machine>`.
    #[arg(long)]
    topic_root: Option<String>,
    /// The operator's secret key file (from `vendctl keygen`).
    #[arg(long, value_name = "FILE")]
    key: PathBuf,
    /// How long the command stays valid, seconds (at most 86400).
    #[arg(long, default_value_t = 300)]
    ttl_s: u64,
    /// How long to wait for the result, seconds.
    #[arg(long, default_value_t = 10)]
    timeout_s: u64,
    /// Command name, e.g. set_prices, restock, set_slot_enabled, unlock_door.
    name: String,
    /// Arguments as a JSON object, e.g. '{"prices":[{"slot":"A3","price":150}]}'.
    #[arg(default_value = "{}", value_name = "ARGS_JSON")]
    args: String,
}

pub(crate) fn run(a: CmdArgs) -> anyhow::Result<ExitCode> {
    let args = parse_strict(a.args.as_bytes())
        .map_err(|e| anyhow::anyhow!("ARGS_JSON is not valid: {e}; nothing was sent"))?;
    parse_args(&a.name, &args).map_err(|e| anyhow::anyhow!("{e}; nothing was sent"))?;
    let ttl_ms = a.ttl_s.saturating_mul(1000);
    anyhow::ensure!(
        (1..=MAX_LIFETIME_MS).contains(&ttl_ms),
        "--ttl-s must be 1..=86400"
    );
    let key_text = std::fs::read_to_string(&a.key)
        .with_context(|| format!("cannot read the key file {}", a.key.display()))?;
    let key = parse_signing_key(&key_text).with_context(|| format!("{}", a.key.display()))?;

    let root = match (&a.topic_root, &a.site) {
        (Some(r), _) => r.trim_end_matches('/').to_string(),
        (None, Some(site)) => format!("vend/v1/{site}/{}", a.machine),
        (None, None) => bail!("give --site or --topic-root"),
    };
    let id = hex::encode(random::<16>());
    let nonce = B64.encode(random::<16>());
    let now = vendd::runtime::now_ms();
    let envelope = sign(
        &a.name,
        args,
        &a.machine,
        &id,
        &nonce,
        now,
        now + ttl_ms,
        &key,
    );
    let send = Send {
        topic: format!("{root}/cmd/{}", a.name),
        result: format!("{root}/{}", result_topic(&a.name)),
        envelope,
        id,
        timeout: Duration::from_secs(a.timeout_s),
    };
    let options = a.broker.options("vendctl-cmd")?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let outcome = rt.block_on(send.run(AsyncClient::new(options, 10)));
    match outcome.with_context(|| format!("broker {}", a.broker.address()))? {
        Some(r) => {
            println!("{}", serde_json::to_string(&r)?);
            eprintln!(
                "{} {}: {} ({}): {}",
                r.name,
                r.id,
                if r.ok { "done" } else { "refused" },
                r.code,
                r.message
            );
            Ok(ExitCode::from(if r.ok { 0 } else { 1 }))
        }
        None => {
            eprintln!(
                "vendctl: no result for `{}` command {} within {} s. The machine may be \
                 offline: the command stays valid for {} s and is carried out if it arrives in time",
                a.name,
                send.id,
                a.timeout_s,
                a.ttl_s
            );
            Ok(ExitCode::from(3))
        }
    }
}

fn random<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    rand::rngs::OsRng.fill_bytes(&mut b);
    b
}

struct Send {
    topic: String,
    result: String,
    envelope: Vec<u8>,
    id: String,
    timeout: Duration,
}

impl Send {
    /// Subscribe, publish after the SUBACK, wait for the matching result. `None` on time-out.
    async fn run(
        &self,
        (client, mut el): (AsyncClient, EventLoop),
    ) -> anyhow::Result<Option<CommandResult>> {
        let deadline = Instant::now() + self.timeout;
        client.subscribe(&self.result, QoS::AtLeastOnce).await?;
        let found = loop {
            let Ok(ev) = timeout_at(deadline, el.poll()).await else {
                break None;
            };
            match ev.context("MQTT connection")? {
                Event::Incoming(Packet::SubAck(ack)) => {
                    if !matches!(
                        ack.return_codes.first(),
                        Some(SubscribeReasonCode::Success(_))
                    ) {
                        bail!(
                            "the broker refused the subscription to {} ({:?}): check the ACL",
                            self.result,
                            ack.return_codes
                        );
                    }
                    client
                        .publish(&self.topic, QoS::AtLeastOnce, false, self.envelope.clone())
                        .await?;
                }
                Event::Incoming(Packet::PubAck(ack)) => match ack.reason {
                    PubAckReason::Success => {}
                    PubAckReason::NoMatchingSubscribers => eprintln!(
                        "vendctl: nobody is subscribed to {} (has the machine ever connected?)",
                        self.topic
                    ),
                    r => bail!("the broker refused the command on {} ({r:?})", self.topic),
                },
                Event::Incoming(Packet::Publish(p)) if p.topic == self.result.as_bytes() => {
                    match serde_json::from_slice::<CommandResult>(&p.payload) {
                        Ok(r) if r.id == self.id => break Some(r),
                        _ => {}
                    }
                }
                _ => {}
            }
        };
        let _ = client.disconnect().await;
        let _ = tokio::time::timeout(Duration::from_secs(1), async {
            while let Ok(ev) = el.poll().await {
                if ev == Event::Outgoing(Outgoing::Disconnect) {
                    break;
                }
            }
        })
        .await;
        Ok(found)
    }
}
