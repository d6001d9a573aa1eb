//! The kiosk's voice in the daemon: every prompt and screen spoken as the session changes
//! (the speaker thread of [`crate::voice::speaker`], through ALSA or into WAV files), and
//! voice commands heard with Vosk and carried out as the same inputs a touch gives.

use crate::core::{Input, Phase, SlotId};
use crate::runtime::{now_ms, Request};
use crate::ui::view::Snapshot;
use crate::voice::audio::{AlsaSink, AudioSink, WavSink};
use crate::voice::catalog::{Args, Catalog, Lang};
use crate::voice::speaker::{Speaker, SpeakerHandle};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tracing::{error, info, warn};

/// Where prompts are played.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// An ALSA PCM (`default`, `plughw:1,0`, a headset for private listening…).
    Alsa(String),
    /// One WAV file per utterance into a folder (tests, and machines without audio).
    Wav(PathBuf),
}

/// Voice prompts (`[kiosk.voice]`).
#[derive(Debug, Clone, PartialEq)]
pub struct VoiceConfig {
    /// Rendered clips (`scripts/voice-clips.sh`): `<clips>/<lang>/<clip>.wav`.
    pub clips: PathBuf,
    /// Where they play.
    pub output: Output,
    /// Volume, 0–100 %.
    pub volume: u8,
}

/// Where voice commands are heard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mic {
    /// An ALSA capture PCM.
    Alsa(String),
    /// WAV files played in name order (tests, demonstrations).
    Wav(PathBuf),
}

/// When the kiosk listens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// While the presence sensor sees somebody (or a session is open).
    Presence,
    /// Only after the page's push-to-talk button (`POST /api/kiosk/listen`).
    PushToTalk,
    /// All the time (a WAV input, a demonstration).
    Always,
}

/// Voice commands (`[kiosk.listen]`).
#[derive(Debug, Clone, PartialEq)]
pub struct ListenConfig {
    /// The microphone.
    pub input: Mic,
    /// The commands' language (a key of `assets/voice/commands.toml`: en, zh, ko).
    pub language: String,
    /// The Vosk model directory for that language.
    pub model: PathBuf,
    /// A command whose weakest word is less confident than this is not acted on.
    pub min_confidence: f32,
    /// When to listen.
    pub trigger: Trigger,
}

/// The kiosk's voice: the speaker, the language it speaks, the last thing said.
pub struct Voice {
    speaker: SpeakerHandle,
    lang: Mutex<Lang>,
    listening: AtomicBool,
    ptt_until: std::sync::atomic::AtomicU64,
    heard: Mutex<Vec<Value>>,
}

impl std::fmt::Debug for Voice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Voice").finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Voice {
    /// Opens the output and starts the speaker. An ALSA device that cannot be opened is
    /// reported and the kiosk stays silent (the screen still works); it never stops the
    /// daemon.
    pub fn start(cfg: &VoiceConfig, catalog: Arc<Catalog>, lang: Lang) -> Voice {
        let sink: Box<dyn AudioSink> = match &cfg.output {
            Output::Wav(dir) => match WavSink::per_utterance(dir) {
                Ok(s) => Box::new(s),
                Err(e) => {
                    error!(cause = %e, "voice: cannot write prompts; the kiosk stays silent");
                    Box::new(Silent)
                }
            },
            Output::Alsa(dev) => match AlsaSink::open(dev, 16_000) {
                Ok(s) => Box::new(s),
                Err(e) => {
                    error!(cause = %e, "voice: no audio output; the kiosk stays silent");
                    Box::new(Silent)
                }
            },
        };
        let speaker = Speaker::start(catalog, cfg.clips.clone(), sink);
        speaker.set_volume(cfg.volume);
        Voice {
            speaker,
            lang: Mutex::new(lang),
            listening: AtomicBool::new(false),
            ptt_until: std::sync::atomic::AtomicU64::new(0),
            heard: Mutex::new(Vec::new()),
        }
    }

    /// Language, volume, last spoken, whether listening, the last commands heard.
    pub fn status(&self) -> Value {
        json!({
            "language": lock(&self.lang).as_str(),
            "volume": self.speaker.volume(),
            "last_spoken": self.speaker.last_spoken().map(|(l, id)| json!({"lang": l.as_str(), "id": id})),
            "listening": self.listening.load(Ordering::Relaxed),
            "heard": lock(&self.heard).clone(),
        })
    }

    /// Speaks `lang` from now on (and says the current screen again in it).
    pub fn set_language(&self, lang: Lang) {
        *lock(&self.lang) = lang;
    }

    /// The language spoken.
    pub fn lang(&self) -> Lang {
        *lock(&self.lang)
    }

    /// Says the last message again.
    pub fn repeat(&self) {
        self.speaker.repeat();
    }

    /// Volume, 0–100 %.
    pub fn set_volume(&self, pct: u8) {
        self.speaker.set_volume(pct);
    }

    /// Says a catalogue message now (cuts off what is playing).
    pub fn say(&self, id: &str, args: Args) {
        self.speaker.say(self.lang(), id, args);
    }

    /// Push-to-talk: listen for the next `secs` seconds.
    pub fn push_to_talk(&self, secs: u64) {
        self.ptt_until
            .store(now_ms() + secs * 1000, Ordering::Relaxed);
    }

    /// The speaker (tests wait on it).
    pub fn speaker(&self) -> &SpeakerHandle {
        &self.speaker
    }
}

/// A sink that drops everything (no audio device).
struct Silent;

impl AudioSink for Silent {
    fn play(&mut self, _: &[i16], _: u32) -> Result<(), crate::voice::audio::AudioError> {
        Ok(())
    }
    fn finish(&mut self) -> Result<(), crate::voice::audio::AudioError> {
        Ok(())
    }
    fn stop(&mut self) {}
}

/// What the prompter compares to decide that something new must be said.
fn spoken_state(s: &Snapshot) -> (Value, bool) {
    (
        serde_json::to_value(&s.session.prompt).unwrap_or(Value::Null),
        s.session.warned,
    )
}

/// Starts the thread that speaks every new prompt (and the time-out warning).
pub fn start_prompter(
    voice: Arc<Voice>,
    mut snapshot: watch::Receiver<Snapshot>,
    stop: Arc<AtomicBool>,
) -> JoinHandle<()> {
    std::thread::Builder::new()
        .name("prompter".into())
        .spawn(move || {
            let mut last = spoken_state(&snapshot.borrow_and_update());
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(40));
                if !snapshot.has_changed().unwrap_or(false) {
                    continue;
                }
                let snap = snapshot.borrow_and_update().clone();
                let now = spoken_state(&snap);
                if now == last {
                    continue;
                }
                let warned_now = now.1 && !last.1;
                last = now;
                if warned_now {
                    let secs = snap.session.deadline_in_ms.unwrap_or(0).div_ceil(1000);
                    voice.say("timeout_warning", Args::new().int("seconds", secs as i64));
                } else {
                    voice.speaker.say_prompt(voice.lang(), &snap.session.prompt);
                }
            }
        })
        .expect("spawn prompter thread")
}

/// The voice grammar's view of the kiosk now.
pub fn screen_of(s: &Snapshot, chose_method: bool) -> crate::voice::grammar::Screen {
    use crate::voice::grammar::{Method, Screen};
    let phase = s.session.phase;
    if s.session.warned {
        return Screen::TimeoutWarning;
    }
    if phase == Phase::Idle.name() || (phase == Phase::Shopping.name() && s.session.cart.is_empty())
    {
        Screen::Products {
            slots: s
                .catalog
                .slots
                .iter()
                .filter(|x| x.available)
                .map(|x| x.id.clone())
                .collect(),
        }
    } else if phase == Phase::Shopping.name() {
        Screen::Cart
    } else if phase == Phase::AwaitingCredential.name() && !chose_method {
        Screen::ChooseMethod {
            methods: Method::ALL.to_vec(),
        }
    } else if phase == Phase::AwaitingCredential.name() || phase == Phase::Authorising.name() {
        Screen::AwaitingPayment
    } else if phase == Phase::Receipt.name() {
        Screen::Receipt
    } else {
        Screen::Vending
    }
}

/// What a heard command does on this screen: an input for the core, or something the
/// voice does itself.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Send this input (the same as the touch).
    Core(Input),
    /// Say a catalogue message.
    Say(&'static str),
    /// Say the last message again.
    Repeat,
    /// Switch the language.
    Language(Lang),
    /// The shopper chose how to pay (say how, then listen for payment-time commands).
    ChoseMethod(&'static str),
    /// Nothing to do here.
    Nothing,
}

/// Maps a command to its action on `screen`.
pub fn action_for(
    cmd: &crate::voice::grammar::VoiceCommand,
    screen: &crate::voice::grammar::Screen,
) -> Action {
    use crate::voice::grammar::{Method, Screen, VoiceCommand as C};
    match (cmd, screen) {
        (C::Repeat, _) => Action::Repeat,
        (C::Help, _) => Action::Say("screen.help"),
        (C::Language(l), _) => Lang::parse(l).map_or(Action::Nothing, Action::Language),
        (C::Item(slot), Screen::Products { .. }) => match SlotId::parse(slot) {
            Ok(slot) => Action::Core(Input::AddItem { slot, qty: 1 }),
            Err(_) => Action::Nothing,
        },
        (C::Confirm, Screen::Cart) => Action::Core(Input::Checkout),
        (C::Confirm | C::MoreTime, Screen::TimeoutWarning) | (C::MoreTime, _) => {
            Action::Core(Input::Extend)
        }
        (C::Confirm, Screen::Receipt) => Action::Core(Input::Dismiss),
        (C::Cancel, Screen::Vending | Screen::Receipt) => Action::Nothing,
        (C::Cancel, _) | (C::No, Screen::Cart) => Action::Core(Input::Cancel),
        (C::PayBy(m), Screen::ChooseMethod { .. }) => Action::ChoseMethod(match m {
            Method::Card => "present_credential.card",
            Method::Code => "present_credential.code",
            Method::Face => "present_credential.face",
        }),
        _ => Action::Nothing,
    }
}

/// An audio source delivered no faster than real time (a WAV file standing in for a
/// microphone).
#[cfg(feature = "vosk")]
struct Paced<S> {
    inner: S,
    start: Option<std::time::Instant>,
    samples: u64,
}

#[cfg(feature = "vosk")]
impl<S> Paced<S> {
    fn new(inner: S) -> Paced<S> {
        Paced {
            inner,
            start: None,
            samples: 0,
        }
    }
}

#[cfg(feature = "vosk")]
impl<S: crate::voice::listen::AudioSource> crate::voice::listen::AudioSource for Paced<S> {
    fn read(&mut self, buf: &mut [i16]) -> Result<usize, crate::voice::listen::AudioError> {
        let start = *self.start.get_or_insert_with(std::time::Instant::now);
        let rate = u64::from(self.inner.sample_rate().max(1));
        let due = Duration::from_micros(self.samples * 1_000_000 / rate);
        if let Some(wait) = due.checked_sub(start.elapsed()) {
            std::thread::sleep(wait);
        }
        let n = self.inner.read(buf)?;
        self.samples += n as u64;
        Ok(n)
    }

    fn sample_rate(&self) -> u32 {
        self.inner.sample_rate()
    }
}

/// Starts the listener thread: on its trigger, listens with the grammar of the screen shown
/// and carries out what it hears.
#[cfg(feature = "vosk")]
pub fn start_listener(
    cfg: ListenConfig,
    voice: Arc<Voice>,
    snapshot: watch::Receiver<Snapshot>,
    tx: mpsc::Sender<Request>,
    present: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
) -> JoinHandle<()> {
    use crate::voice::listen::{AlsaSource, AudioSource, ListenSettings, Recogniser, WavSource};
    std::thread::Builder::new()
        .name("listener".into())
        .spawn(move || {
            let mut rec = match Recogniser::load(&cfg.language, &cfg.model) {
                Ok(r) => r,
                Err(e) => {
                    error!(cause = %e, "voice commands: no model; touch only");
                    return;
                }
            };
            // A microphone is one endless source. A WAV folder is a queue of push-to-talk
            // presses: one file per utterance, each played at the pace a microphone
            // delivers (what happens between two, a card tapped or an item dropping,
            // happens in real time).
            let mut mic: Option<Box<dyn AudioSource>> = None;
            let mut files: std::collections::VecDeque<PathBuf> = Default::default();
            match &cfg.input {
                Mic::Wav(p) => match WavSource::open(p) {
                    Ok(s) => files.extend(s.files().iter().cloned()),
                    Err(e) => return error!(cause = %e, "voice commands: no input"),
                },
                Mic::Alsa(dev) => match AlsaSource::open(dev) {
                    Ok(s) => mic = Some(Box::new(s)),
                    Err(e) => return error!(cause = %e, "voice commands: no microphone"),
                },
            }
            info!(lang = %cfg.language, "voice commands: listening");
            let settings = ListenSettings {
                min_confidence: cfg.min_confidence,
                ..ListenSettings::default()
            };
            let mut chose: Option<u64> = None;
            while !stop.load(Ordering::Relaxed) {
                let snap = snapshot.borrow().clone();
                let in_session = snap.session.sid.is_some();
                let triggered = match cfg.trigger {
                    Trigger::Presence => present.load(Ordering::Relaxed) || in_session,
                    Trigger::PushToTalk => {
                        now_ms() < voice.ptt_until.load(Ordering::Relaxed)
                    }
                    Trigger::Always => true,
                };
                if !triggered {
                    voice.listening.store(false, Ordering::Relaxed);
                    std::thread::sleep(Duration::from_millis(100));
                    continue;
                }
                if chose.is_some() && chose != snap.session.sid {
                    chose = None;
                }
                let screen = screen_of(&snap, chose.is_some());
                let grammar = match rec.grammar(&screen) {
                    Ok(g) => g,
                    Err(e) => {
                        warn!(cause = %e, "voice commands: no grammar for this screen");
                        std::thread::sleep(Duration::from_millis(500));
                        continue;
                    }
                };
                let mut press: Box<dyn AudioSource>;
                let source: &mut dyn AudioSource = match mic.as_mut() {
                    Some(m) => m.as_mut(),
                    None => {
                        let Some(f) = files.pop_front() else {
                            // The queue is played out.
                            voice.listening.store(false, Ordering::Relaxed);
                            std::thread::sleep(Duration::from_millis(200));
                            continue;
                        };
                        match WavSource::open(&f) {
                            Ok(w) => {
                                press = Box::new(Paced::new(w));
                                press.as_mut()
                            }
                            Err(e) => {
                                warn!(cause = %e, "voice commands: unreadable input file");
                                continue;
                            }
                        }
                    }
                };
                voice.listening.store(true, Ordering::Relaxed);
                let heard = match rec.listen_once(source, &grammar, &settings) {
                    Ok(Some(h)) => h,
                    Ok(None) => {
                        // End of a WAV input, or nothing said: wait before listening again.
                        std::thread::sleep(Duration::from_millis(200));
                        continue;
                    }
                    Err(e) => {
                        warn!(cause = %e, "voice commands: listening failed");
                        std::thread::sleep(Duration::from_secs(1));
                        continue;
                    }
                };
                let accepted = heard.accepted(cfg.min_confidence).cloned();
                {
                    let mut h = lock(&voice.heard);
                    h.push(json!({"text": heard.text, "confidence": heard.confidence,
                        "accepted": accepted.is_some(), "rtf": heard.decode_secs / heard.audio_secs.max(0.001)}));
                    let n = h.len();
                    if n > 20 {
                        h.drain(..n - 20);
                    }
                }
                let Some(cmd) = accepted else {
                    if heard.command.is_some() {
                        // Heard, but not sure enough: ask again rather than guess.
                        voice.say("voice.not_sure", Args::new());
                    }
                    continue;
                };
                info!(?cmd, confidence = heard.confidence, "voice command");
                match action_for(&cmd, &screen) {
                    Action::Core(input) => {
                        let (reply, rx) = tokio::sync::oneshot::channel();
                        if tx
                            .blocking_send(Request {
                                input,
                                reply: Some(reply),
                            })
                            .is_err()
                        {
                            return;
                        }
                        if let Ok(Err(rej)) = rx.blocking_recv() {
                            info!(code = rej.code, "voice command refused");
                        }
                    }
                    Action::Say(id) => voice.say(id, Args::new()),
                    Action::Repeat => voice.repeat(),
                    Action::Language(l) => voice.set_language(l),
                    Action::ChoseMethod(id) => {
                        chose = snap.session.sid;
                        voice.say(id, Args::new());
                    }
                    Action::Nothing => {}
                }
            }
        })
        .expect("spawn listener thread")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::voice::grammar::{Method, Screen, VoiceCommand as C};

    #[test]
    fn commands_do_what_the_touches_do_on_each_screen() {
        let products = Screen::Products {
            slots: vec!["A3".into()],
        };
        assert_eq!(
            action_for(&C::Item("A3".into()), &products),
            Action::Core(Input::AddItem {
                slot: SlotId::parse("A3").expect("slot"),
                qty: 1
            })
        );
        assert_eq!(
            action_for(&C::Item("A3".into()), &Screen::Cart),
            Action::Nothing,
            "items are chosen on the product screen"
        );
        assert_eq!(
            action_for(&C::Confirm, &Screen::Cart),
            Action::Core(Input::Checkout)
        );
        assert_eq!(
            action_for(&C::No, &Screen::Cart),
            Action::Core(Input::Cancel)
        );
        assert_eq!(
            action_for(&C::Confirm, &Screen::Receipt),
            Action::Core(Input::Dismiss)
        );
        assert_eq!(
            action_for(&C::MoreTime, &Screen::AwaitingPayment),
            Action::Core(Input::Extend)
        );
        assert_eq!(
            action_for(&C::Confirm, &Screen::TimeoutWarning),
            Action::Core(Input::Extend)
        );
        assert_eq!(
            action_for(&C::Cancel, &Screen::Vending),
            Action::Nothing,
            "a vend under way is not cancelled"
        );
        assert_eq!(
            action_for(
                &C::PayBy(Method::Card),
                &Screen::ChooseMethod {
                    methods: Method::ALL.to_vec()
                }
            ),
            Action::ChoseMethod("present_credential.card")
        );
        assert_eq!(
            action_for(&C::Language("zh".into()), &Screen::Cart),
            Action::Language(Lang::Zh)
        );
        assert_eq!(
            action_for(&C::Language("ko".into()), &Screen::Cart),
            Action::Nothing
        );
        assert_eq!(action_for(&C::Repeat, &Screen::Vending), Action::Repeat);
        assert_eq!(action_for(&C::Help, &products), Action::Say("screen.help"));
    }
}
