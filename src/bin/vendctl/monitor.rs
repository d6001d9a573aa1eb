//! `vendctl monitor`: subscribes to every machine's status, telemetry and events and shows
//! the fleet as a table, redrawn on every change (and, on a terminal, every second for
//! "last seen"; piped, each table follows a blank line).
//! `--once-after-s N` collects for N seconds, prints the table once and exits.
//!
//! Clean start at QoS 1: the retained `status` gives online/offline at once; telemetry
//! shows up with the machine's next period. Reconnects every second after a loss.

use crate::broker::BrokerArgs;
use crate::fleet::Fleet;
use clap::Args;
use rumqttc::v5::mqttbytes::v5::{Packet, SubscribeReasonCode};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, Event};
use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::Duration;
use tokio::time::{sleep_until, Instant};
use vendd::runtime::now_ms;

#[derive(Args, Debug)]
pub(crate) struct MonitorArgs {
    #[command(flatten)]
    broker: BrokerArgs,
    /// Topic filter to subscribe to.
    #[arg(long, default_value = "vend/v1/#")]
    filter: String,
    /// Collect for N seconds, print the table once and exit.
    #[arg(long, value_name = "N")]
    once_after_s: Option<u64>,
    /// Slots with at most this many items (and more than none) are shown as low.
    #[arg(long, default_value_t = 2)]
    low_stock: u64,
}

pub(crate) fn run(a: MonitorArgs) -> anyhow::Result<ExitCode> {
    let options = a.broker.options("vendctl-monitor")?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(watch(a, AsyncClient::new(options, 64)))
}

async fn watch(
    a: MonitorArgs,
    (client, mut el): (AsyncClient, rumqttc::v5::EventLoop),
) -> anyhow::Result<ExitCode> {
    let mut fleet = Fleet::new(a.low_stock);
    let once = a
        .once_after_s
        .map(|s| Instant::now() + Duration::from_secs(s));
    let far = Instant::now() + Duration::from_secs(100 * 365 * 86_400);
    let mut link = String::from("connecting");
    let mut subscribed = false;
    // The ages in "last seen" move every second on a terminal; a pipe gets changes only.
    let tty = std::io::stdout().is_terminal();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        let mut changed = false;
        tokio::select! {
            ev = el.poll() => match ev {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    client.try_subscribe(a.filter.clone(), QoS::AtLeastOnce)?;
                    link = "connected".into();
                    changed = true;
                }
                Ok(Event::Incoming(Packet::SubAck(ack))) => {
                    subscribed = matches!(ack.return_codes.first(), Some(SubscribeReasonCode::Success(_)));
                    if !subscribed {
                        link = format!("subscription to {} refused: {:?}", a.filter, ack.return_codes);
                    }
                    changed = true;
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    let topic = String::from_utf8_lossy(&p.topic);
                    changed = fleet.handle(&topic, &p.payload, now_ms());
                }
                Ok(_) => {}
                Err(e) => {
                    link = format!("disconnected: {e}");
                    redraw(&a, &fleet, &link, once.is_none());
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            },
            _ = tick.tick() => changed = tty,
            _ = sleep_until(once.unwrap_or(far)) => break,
            _ = &mut ctrl_c => break,
        }
        if changed {
            redraw(&a, &fleet, &link, once.is_none());
        }
    }
    let _ = client.try_disconnect();
    if once.is_some() {
        print!("{}", fleet.render(now_ms()));
        std::io::stdout().flush()?;
        anyhow::ensure!(
            subscribed,
            "broker {}: no subscription ({link})",
            a.broker.address()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Draws the live table (only in live mode): clears the screen on a terminal, otherwise
/// prints each table after a blank line.
fn redraw(a: &MonitorArgs, fleet: &Fleet, link: &str, live: bool) {
    if !live {
        return;
    }
    let now = now_ms();
    let mut out = std::io::stdout().lock();
    let clear = if out.is_terminal() {
        "\x1b[H\x1b[2J"
    } else {
        "\n"
    };
    let _ = write!(
        out,
        "{clear}vendctl monitor  {}  {}  {}\n\n{}",
        a.broker.address(),
        link,
        vendd::report::event::rfc3339_utc_ms(now),
        fleet.render(now)
    );
    let _ = out.flush();
}
