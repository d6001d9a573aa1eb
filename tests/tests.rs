//! The integration test binary (one binary, a module per area; see house-style.md).

mod bad_input;
mod broker;
mod common;
mod core_props;
mod crash;
mod dex;
mod doctor;
mod e2e;
mod emvco;
mod face_models;
mod face_pay;
mod kiosk_page;
mod mqtt;
mod mqtt_session;
mod package;
mod payments;
mod qr_corpus;
mod retention;
mod systemd;
mod vendctl_mqtt;
mod voice;
mod webdriver;
