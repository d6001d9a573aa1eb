//! Home Assistant MQTT discovery (issue 3, item 7): the retained config messages that make a
//! machine appear in Home Assistant with its connectivity, door, stock, fault and
//! queue-depth entities, all read from the topics the link already publishes.
//!
//! Pure: [`discovery_messages`] only builds `(topic, payload)` pairs. The link publishes
//! them retained at QoS 1 after every ConnAck when `mqtt.ha_discovery` is on (Home
//! Assistant also reads retained configs when it restarts, so no birth handling is needed).
//!
//! Topics are `homeassistant/<component>/<node_id>/<object_id>/config` with `node_id`
//! `vendd_<site>_<machine>` reduced to `[a-zA-Z0-9_-]`. Every entity except connectivity
//! is unavailable while the retained `status` says `offline`; connectivity itself has no
//! availability, so that it shows "disconnected" rather than "unavailable".
//!
//! A slot removed from the planogram leaves its retained stock config behind; an empty
//! retained payload on that topic deletes it in Home Assistant.

use serde_json::{json, Map, Value};

/// Discovery prefix Home Assistant listens on by default.
pub const PREFIX: &str = "homeassistant";

/// Retained discovery configs for one machine: `(topic, JSON payload)`, to be published
/// retained at QoS 1. `topic_root` is the machine's `vend/v1/<site>/<machine>`; `slots`
/// are `(slot id, product name)` pairs in display order.
pub fn discovery_messages(
    topic_root: &str,
    machine: &str,
    site: &str,
    firmware: &str,
    slots: &[(String, String)],
) -> Vec<(String, String)> {
    let node = sanitize(&format!("vendd_{site}_{machine}"));
    let status = format!("{topic_root}/status");
    let telemetry = format!("{topic_root}/telemetry");
    let device = json!({
        "identifiers": [node],
        "name": format!("{machine} ({site})"),
        "model": "vendd vending machine",
        "sw_version": firmware,
        "manufacturer": "vendd",
        "suggested_area": site,
    });
    let entity = |component: &str, object: &str, fields: Value| {
        let object = sanitize(object);
        let mut cfg = Map::new();
        cfg.insert("unique_id".into(), format!("{node}_{object}").into());
        cfg.insert("device".into(), device.clone());
        cfg.insert(
            "origin".into(),
            json!({"name": "vendd", "sw_version": firmware}),
        );
        if let Value::Object(f) = fields {
            cfg.extend(f);
        }
        if object != "connectivity" {
            cfg.insert("availability_topic".into(), status.clone().into());
            cfg.insert(
                "availability_template".into(),
                "{{ value_json.state }}".into(),
            );
            cfg.insert("payload_available".into(), "online".into());
            cfg.insert("payload_not_available".into(), "offline".into());
        }
        let topic = format!("{PREFIX}/{component}/{node}/{object}/config");
        (topic, Value::Object(cfg).to_string())
    };
    let mut out = vec![
        entity(
            "binary_sensor",
            "connectivity",
            json!({
                "name": "Connectivity",
                "device_class": "connectivity",
                "entity_category": "diagnostic",
                "state_topic": status,
                "value_template": "{{ value_json.state }}",
                "payload_on": "online",
                "payload_off": "offline",
            }),
        ),
        entity(
            "binary_sensor",
            "door",
            json!({
                "name": "Service door",
                "device_class": "door",
                "state_topic": telemetry,
                "value_template": "{{ 'ON' if value_json.door_open else 'OFF' }}",
                "payload_on": "ON",
                "payload_off": "OFF",
            }),
        ),
        entity(
            "binary_sensor",
            "problem",
            json!({
                "name": "Slot fault",
                "device_class": "problem",
                "state_topic": telemetry,
                "value_template": "{{ 'ON' if value_json.faults | length > 0 else 'OFF' }}",
                "payload_on": "ON",
                "payload_off": "OFF",
            }),
        ),
        entity(
            "sensor",
            "faults",
            json!({
                "name": "Faulted slots",
                "icon": "mdi:alert",
                "state_topic": telemetry,
                "value_template": "{{ value_json.faults | length }}",
                "state_class": "measurement",
            }),
        ),
        entity(
            "sensor",
            "queue_depth",
            json!({
                "name": "Report queue depth",
                "icon": "mdi:tray-full",
                "entity_category": "diagnostic",
                "state_topic": telemetry,
                "value_template": "{{ value_json.queue_depth }}",
                "unit_of_measurement": "reports",
                "state_class": "measurement",
            }),
        ),
    ];
    for (slot, product) in slots {
        // The slot id as a JSON string is a valid Jinja string literal.
        let key = Value::from(slot.as_str()).to_string();
        out.push(entity(
            "sensor",
            &format!("stock_{slot}"),
            json!({
                "name": format!("Stock {slot} {product}"),
                "icon": "mdi:package-variant",
                "state_topic": telemetry,
                "value_template": format!("{{{{ value_json.stock[{key}] }}}}"),
                "unit_of_measurement": "items",
                "state_class": "measurement",
            }),
        ));
    }
    out
}

/// Keeps `[a-zA-Z0-9_-]` and turns everything else into `_` (Home Assistant's id rule).
fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    const ROOT: &str = "vend/v1/site.1/m-017";

    fn messages() -> Vec<(String, Value)> {
        let slots = [("A1", "Cola"), ("A2", "Water"), ("B1", "Chips")]
            .map(|(s, p)| (s.to_string(), p.to_string()));
        discovery_messages(ROOT, "m-017", "site.1", "0.1.0", &slots)
            .into_iter()
            .map(|(t, p)| {
                let v: Value = serde_json::from_str(&p).unwrap_or_else(|e| panic!("{t}: {e}"));
                (t, v)
            })
            .collect()
    }

    #[test]
    fn every_payload_is_json_with_the_required_keys_and_device() {
        let msgs = messages();
        assert_eq!(msgs.len(), 5 + 3);
        for (topic, v) in &msgs {
            for key in ["unique_id", "name", "state_topic", "device", "origin"] {
                assert!(v.get(key).is_some(), "{topic}: no {key}");
            }
            let d = &v["device"];
            assert_eq!(d["identifiers"], json!(["vendd_site_1_m-017"]));
            assert_eq!(d["manufacturer"], "vendd");
            assert_eq!(d["sw_version"], "0.1.0");
            assert!(d["name"].is_string() && d["model"].is_string());
            if topic.contains("/connectivity/") {
                assert!(v.get("availability_topic").is_none());
            } else {
                assert_eq!(v["availability_topic"], format!("{ROOT}/status"), "{topic}");
                assert_eq!(v["availability_template"], "{{ value_json.state }}");
                assert_eq!(v["payload_available"], "online");
            }
        }
    }

    #[test]
    fn unique_ids_are_unique_and_use_only_allowed_characters() {
        let msgs = messages();
        let ids: HashSet<&str> = msgs
            .iter()
            .map(|(_, v)| v["unique_id"].as_str().unwrap())
            .collect();
        assert_eq!(ids.len(), msgs.len());
        for id in ids {
            assert!(
                id.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_-".contains(c)),
                "{id}"
            );
        }
    }

    #[test]
    fn topics_follow_the_discovery_pattern() {
        for (topic, _) in messages() {
            let parts: Vec<&str> = topic.split('/').collect();
            assert_eq!(parts.len(), 5, "{topic}");
            assert_eq!(parts[0], "homeassistant");
            assert!(["binary_sensor", "sensor"].contains(&parts[1]), "{topic}");
            assert_eq!(parts[2], "vendd_site_1_m-017");
            assert!(parts[3]
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_-".contains(c)));
            assert_eq!(parts[4], "config");
        }
    }

    #[test]
    fn state_topics_are_the_machines_status_and_telemetry() {
        let allowed = [format!("{ROOT}/status"), format!("{ROOT}/telemetry")];
        for (topic, v) in messages() {
            let st = v["state_topic"].as_str().unwrap();
            assert!(allowed.iter().any(|a| a == st), "{topic}: {st}");
            assert!(v["value_template"]
                .as_str()
                .unwrap()
                .contains("value_json."));
        }
    }

    #[test]
    fn connectivity_door_and_stock_read_the_right_fields() {
        let msgs = messages();
        let get = |object: &str| {
            msgs.iter()
                .find(|(t, _)| t.contains(&format!("/{object}/config")))
                .map(|(_, v)| v.clone())
                .unwrap_or_else(|| panic!("no {object}"))
        };
        let c = get("connectivity");
        assert_eq!(
            (c["payload_on"].as_str(), c["payload_off"].as_str()),
            (Some("online"), Some("offline"))
        );
        assert_eq!(get("door")["device_class"], "door");
        assert!(get("door")["value_template"]
            .as_str()
            .unwrap()
            .contains("door_open"));
        assert_eq!(get("problem")["device_class"], "problem");
        assert_eq!(
            get("stock_A2")["value_template"],
            "{{ value_json.stock[\"A2\"] }}"
        );
        assert!(get("stock_B1")["name"].as_str().unwrap().contains("Chips"));
        assert!(get("queue_depth")["value_template"]
            .as_str()
            .unwrap()
            .contains("queue_depth"));
    }
}
