//! Reporting and remote operation over MQTT.
//!
//! This tree holds the pure layers: [`event`] turns journal records into reports with
//! stable event ids, [`outbox`] is the durable outbox's cursor as a sans-IO state machine
//! (the outbox is a cursor over the journal, never a queue of rows), and [`command`]
//! verifies signed operator commands. The network link (rumqttc) builds on them.

pub mod authoriser;
pub mod command;
pub mod discovery;
pub mod event;
pub mod link;
pub mod outbox;
