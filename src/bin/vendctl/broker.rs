//! How `vendctl cmd` and `vendctl monitor` reach the broker: address, TLS with a CA file
//! (rustls with ring, as the daemon), user name and password file.

use anyhow::Context;
use clap::Args;
use rand::RngCore;
use rumqttc::v5::MqttOptions;
use rumqttc::{TlsConfiguration, Transport};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Broker connection options shared by the MQTT subcommands.
#[derive(Args, Debug, Clone)]
pub(crate) struct BrokerArgs {
    /// Broker address, HOST:PORT (`[::1]:8883` for IPv6).
    #[arg(long, value_name = "HOST:PORT")]
    broker: String,
    /// CA certificate(s) (PEM) to trust: connects with TLS. Without it, plain MQTT.
    #[arg(long, value_name = "FILE")]
    ca: Option<PathBuf>,
    /// MQTT user name.
    #[arg(long, value_name = "U")]
    username: Option<String>,
    /// File whose first line is the MQTT password (kept off the command line).
    #[arg(long, value_name = "F", requires = "username")]
    password_file: Option<PathBuf>,
}

impl BrokerArgs {
    /// MQTT 5 options with a random client id `<prefix>-<hex>`, clean start, 10 s
    /// keep-alive and connection timeout.
    ///
    /// # Errors
    /// A bad address, an unreadable password or CA file, or a CA file rustls refuses.
    pub(crate) fn options(&self, prefix: &str) -> anyhow::Result<MqttOptions> {
        let (host, port) = split_host_port(&self.broker)?;
        let mut id = [0u8; 8];
        rand::thread_rng().fill_bytes(&mut id);
        let mut o = MqttOptions::new(format!("{prefix}-{}", hex::encode(id)), host, port);
        o.set_keep_alive(Duration::from_secs(10));
        o.set_connection_timeout(10);
        o.set_clean_start(true);
        if let Some(user) = &self.username {
            let password = match &self.password_file {
                Some(p) => std::fs::read_to_string(p)
                    .with_context(|| format!("cannot read the password file {}", p.display()))?
                    .lines()
                    .next()
                    .unwrap_or_default()
                    .to_string(),
                None => String::new(),
            };
            o.set_credentials(user.clone(), password);
        }
        if let Some(ca) = &self.ca {
            let pem = std::fs::read(ca)
                .with_context(|| format!("cannot read the CA file {}", ca.display()))?;
            let tls = vendd::report::link::tls_config(&pem, None)
                .with_context(|| format!("CA file {}", ca.display()))?;
            o.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(
                Arc::new(tls),
            )));
        }
        Ok(o)
    }

    /// The address as given, for messages.
    pub(crate) fn address(&self) -> &str {
        &self.broker
    }
}

fn split_host_port(s: &str) -> anyhow::Result<(String, u16)> {
    let bad = || anyhow::anyhow!("--broker {s:?}: expected HOST:PORT, e.g. mqtt.example.com:8883");
    let (host, port) = s.rsplit_once(':').ok_or_else(bad)?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let port: u16 = port.parse().map_err(|_| bad())?;
    anyhow::ensure!(!host.is_empty() && port != 0, bad());
    Ok((host.to_string(), port))
}

#[cfg(test)]
mod tests {
    use super::split_host_port;

    #[test]
    fn host_port_accepts_names_ipv4_and_bracketed_ipv6() {
        assert_eq!(
            split_host_port("127.0.0.1:1883").unwrap(),
            ("127.0.0.1".into(), 1883)
        );
        assert_eq!(
            split_host_port("mq.example:8883").unwrap(),
            ("mq.example".into(), 8883)
        );
        assert_eq!(split_host_port("[::1]:1883").unwrap(), ("::1".into(), 1883));
        for bad in ["localhost", ":1883", "h:0", "h:x", "h:70000"] {
            assert!(split_host_port(bad).is_err(), "{bad}");
        }
    }
}
