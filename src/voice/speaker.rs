//! The speaker: a thread that says catalogue messages by playing pre-rendered clips.
//!
//! Like every blocking adapter (house style §3) it runs on its own thread and is driven
//! through a [`SpeakerHandle`] and a channel. A new [`say`](SpeakerHandle::say) cuts off
//! whatever is being said: audio goes to the sink in [`CHUNK_MS`] chunks and the thread
//! looks for a new command between chunks, so an interruption is heard within a chunk
//! plus the sink's buffer (ALSA: [`ALSA_BUFFER_MS`](super::audio::ALSA_BUFFER_MS)).
//! Volume changes apply from the next chunk. A clip that is missing or unreadable is
//! logged and skipped; speech never fails the caller.

use super::audio::{apply_volume, read_wav, AudioSink};
use super::catalog::{prompt_key, Args, Catalog, Lang};
use super::compose::{compose, ComposeError};
use crate::core::Prompt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub use super::audio::rms;

/// Sample rate of the clips (and of everything the speaker plays).
pub const RATE: u32 = 16_000;
/// Length of one chunk handed to the sink; bounds how late an interruption lands.
pub const CHUNK_MS: u32 = 20;
/// Silence between two clips of an utterance (the clips are trimmed of silence).
pub const GAP_MS: u32 = 60;
/// Volume at start, percent.
pub const DEFAULT_VOLUME: u8 = 80;

enum Cmd {
    Say(Lang, String, Args),
    Repeat,
    Stop,
    Shutdown,
}

/// What the handle and the thread share.
struct Shared {
    status: Mutex<Status>,
    /// Signalled whenever `done` grows.
    changed: Condvar,
    volume: AtomicU8,
}

#[derive(Default)]
struct Status {
    last: Option<(Lang, String)>,
    /// Commands sent to the thread.
    submitted: u64,
    /// Commands the thread has finished (an interrupted utterance is finished).
    done: u64,
}

impl Shared {
    fn status(&self) -> MutexGuard<'_, Status> {
        // A panic while holding the lock leaves plain data behind; keep using it.
        self.status.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Starts speakers.
pub struct Speaker;

impl Speaker {
    /// Starts the speaker thread. Clips are read from `<clips_dir>/<lang>/<clip>.wav`
    /// (16 kHz mono 16-bit, as `scripts/voice-clips.sh` renders them).
    pub fn start(
        catalog: Arc<Catalog>,
        clips_dir: PathBuf,
        sink: Box<dyn AudioSink>,
    ) -> SpeakerHandle {
        let (tx, rx) = mpsc::channel();
        let shared = Arc::new(Shared {
            status: Mutex::new(Status::default()),
            changed: Condvar::new(),
            volume: AtomicU8::new(DEFAULT_VOLUME),
        });
        let worker = Worker {
            catalog,
            clips_dir,
            sink,
            rx,
            shared: Arc::clone(&shared),
        };
        let thread = std::thread::Builder::new()
            .name("speaker".into())
            .spawn(move || worker.run());
        let thread = match thread {
            Ok(t) => Some(t),
            Err(e) => {
                let msg = "cannot start the speaker thread; the kiosk stays silent";
                tracing::error!(cause = %e, "{msg}");
                None
            }
        };
        SpeakerHandle { tx, shared, thread }
    }
}

/// Controls a running speaker. Dropping it stops the speaker and waits for its thread.
pub struct SpeakerHandle {
    tx: Sender<Cmd>,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl SpeakerHandle {
    fn send(&self, cmd: Cmd) {
        self.shared.status().submitted += 1;
        if self.tx.send(cmd).is_err() {
            tracing::warn!("the speaker thread has stopped; message not spoken");
            let mut st = self.shared.status();
            st.done = st.submitted;
        }
    }

    /// Says a catalogue message, cutting off whatever is being said.
    pub fn say(&self, lang: Lang, id: impl Into<String>, args: Args) {
        self.send(Cmd::Say(lang, id.into(), args));
    }

    /// Says a core prompt (see [`prompt_key`]).
    pub fn say_prompt(&self, lang: Lang, prompt: &Prompt) {
        let (id, args) = prompt_key(prompt);
        self.say(lang, id, args);
    }

    /// Says the last message again (from the start, cutting off the current one). Does
    /// nothing if nothing was said yet.
    pub fn repeat(&self) {
        self.send(Cmd::Repeat);
    }

    /// Stops speaking now.
    pub fn stop(&self) {
        self.send(Cmd::Stop);
    }

    /// Sets the volume in percent (0–100; more is 100). Applies from the next chunk, also
    /// to the message being said.
    pub fn set_volume(&self, percent: u8) {
        self.shared
            .volume
            .store(percent.min(100), Ordering::Relaxed);
    }

    /// The volume in percent.
    pub fn volume(&self) -> u8 {
        self.shared.volume.load(Ordering::Relaxed)
    }

    /// The language and id of the message said last (or being said), for status and tests.
    pub fn last_spoken(&self) -> Option<(Lang, String)> {
        self.shared.status().last.clone()
    }

    /// Waits until every command sent so far has been carried out (messages said to the
    /// end or cut off). Returns false on timeout.
    pub fn wait_idle(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut st = self.shared.status();
        while st.done < st.submitted {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            st = match self.shared.changed.wait_timeout(st, left) {
                Ok((g, _)) => g,
                Err(e) => e.into_inner().0,
            };
        }
        true
    }
}

impl Drop for SpeakerHandle {
    fn drop(&mut self) {
        let _ = self.tx.send(Cmd::Shutdown);
        if let Some(t) = self.thread.take() {
            if t.join().is_err() {
                tracing::error!("the speaker thread panicked");
            }
        }
    }
}

/// The samples of a whole message: its clips with [`GAP_MS`] of silence between them, at
/// [`RATE`]. Missing or unreadable clips (and clips at another rate) are logged and skipped.
///
/// # Errors
/// [`ComposeError`] if the message cannot be composed.
pub fn render(
    cat: &Catalog,
    clips_dir: &Path,
    lang: Lang,
    id: &str,
    args: &Args,
) -> Result<Vec<i16>, ComposeError> {
    let clips = compose(cat, lang, id, args)?;
    let gap = (RATE * GAP_MS / 1000) as usize;
    let mut out: Vec<i16> = Vec::new();
    for clip in clips {
        let path = clips_dir.join(lang.as_str()).join(clip.file_name());
        match read_wav(&path) {
            Ok(pcm) if pcm.rate == RATE => {
                if !out.is_empty() {
                    out.resize(out.len() + gap, 0);
                }
                out.extend_from_slice(&pcm.samples);
            }
            Ok(pcm) => {
                let msg = "voice clip is not 16 kHz; skipped (re-run scripts/voice-clips.sh)";
                tracing::warn!(clip = %clip, rate = pcm.rate, "{msg}");
            }
            Err(e) => {
                let msg = "voice clip missing or unreadable; skipped (run scripts/voice-clips.sh)";
                tracing::warn!(clip = %clip, cause = %e, "{msg}");
            }
        }
    }
    Ok(out)
}

struct Worker {
    catalog: Arc<Catalog>,
    clips_dir: PathBuf,
    sink: Box<dyn AudioSink>,
    rx: Receiver<Cmd>,
    shared: Arc<Shared>,
}

impl Worker {
    fn run(mut self) {
        let mut last: Option<(Lang, String, Args)> = None;
        let mut next: Option<Cmd> = None;
        loop {
            let cmd = match next.take() {
                Some(c) => c,
                None => match self.rx.recv() {
                    Ok(c) => c,
                    Err(_) => break,
                },
            };
            match cmd {
                Cmd::Say(lang, id, args) => {
                    next = self.speak(lang, &id, &args);
                    last = Some((lang, id, args));
                }
                Cmd::Repeat => {
                    if let Some((lang, id, args)) = &last {
                        next = self.speak(*lang, id, args);
                    }
                }
                Cmd::Stop => self.sink.stop(),
                Cmd::Shutdown => {
                    self.sink.stop();
                    self.finished();
                    break;
                }
            }
            self.finished();
        }
    }

    fn finished(&self) {
        let mut st = self.shared.status();
        st.done = (st.done + 1).min(st.submitted);
        self.shared.changed.notify_all();
    }

    /// Plays one message; returns the command that interrupted it, if any.
    #[tracing::instrument(skip(self, args))]
    fn speak(&mut self, lang: Lang, id: &str, args: &Args) -> Option<Cmd> {
        self.shared.status().last = Some((lang, id.to_string()));
        let samples = match render(&self.catalog, &self.clips_dir, lang, id, args) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(cause = %e, "cannot say message");
                return None;
            }
        };
        let chunk = (RATE * CHUNK_MS / 1000) as usize;
        let mut buf = Vec::with_capacity(chunk);
        for part in samples.chunks(chunk) {
            match self.rx.try_recv() {
                Ok(cmd) => {
                    self.sink.stop();
                    return Some(cmd);
                }
                Err(TryRecvError::Disconnected) => {
                    self.sink.stop();
                    return Some(Cmd::Shutdown);
                }
                Err(TryRecvError::Empty) => {}
            }
            buf.clear();
            buf.extend_from_slice(part);
            apply_volume(&mut buf, self.shared.volume.load(Ordering::Relaxed));
            if let Err(e) = self.sink.play(&buf, RATE) {
                tracing::warn!(cause = %e, "audio output failed; message cut off");
                self.sink.stop();
                return None;
            }
        }
        if let Err(e) = self.sink.finish() {
            tracing::warn!(cause = %e, "audio output failed at the end of a message");
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::voice::audio::{AudioError, WavSink};
    use crate::voice::compose::clip_texts;
    use std::collections::BTreeMap;

    const TEST_CATALOG: &str = r#"
[entries.hello]
en = "Hello."
zh = "你好。"
zh_pinyin = "ni3 hao3."

[entries.total]
en = "Your total is {total}."
zh = "合计{total}。"
zh_pinyin = "he2 ji4 {total}."
"#;

    /// Clip length in the test clip folder: 0.1 s.
    const CLIP: usize = 1600;

    /// A test clip: a tone whose amplitude identifies the clip.
    fn tone(amp: i16) -> Vec<i16> {
        (0..CLIP)
            .map(|i| ((f32::from(amp)) * (i as f32 * 0.3).sin()) as i16)
            .collect()
    }

    fn write_wav(path: &Path, samples: &[i16]) {
        let mut sink = WavSink::append(path);
        sink.play(samples, RATE).expect("write clip");
    }

    /// Test clip samples by language and clip name.
    type Tones = BTreeMap<(Lang, String), Vec<i16>>;

    /// A catalogue and a clip folder holding every clip it needs, as tones.
    fn fixture() -> (Arc<Catalog>, tempfile::TempDir, Tones) {
        let cat = Catalog::parse(TEST_CATALOG).expect("valid");
        let dir = tempfile::tempdir().expect("tempdir");
        let mut clips = BTreeMap::new();
        for (i, c) in clip_texts(&cat).into_iter().enumerate() {
            let folder = dir.path().join(c.lang.as_str());
            std::fs::create_dir_all(&folder).expect("mkdir");
            let samples = tone(1000 + 50 * i as i16);
            write_wav(&folder.join(format!("{}.wav", c.name)), &samples);
            clips.insert((c.lang, c.name), samples);
        }
        (Arc::new(cat), dir, clips)
    }

    /// Writes WAVs like [`WavSink`] but takes real time, like a sound card.
    struct Paced(WavSink);

    impl AudioSink for Paced {
        fn play(&mut self, samples: &[i16], rate: u32) -> Result<(), AudioError> {
            self.0.play(samples, rate)?;
            std::thread::sleep(Duration::from_secs_f64(
                samples.len() as f64 / f64::from(rate),
            ));
            Ok(())
        }
        fn finish(&mut self) -> Result<(), AudioError> {
            self.0.finish()
        }
        fn stop(&mut self) {
            self.0.stop()
        }
    }

    fn utterance(dir: &Path, seq: u32) -> Vec<i16> {
        read_wav(&WavSink::utterance_path(dir, seq))
            .expect("utterance written")
            .samples
    }

    const WAIT: Duration = Duration::from_secs(10);

    #[test]
    fn says_a_message_from_its_clips_with_gaps() {
        let (cat, clips, tones) = fixture();
        let out = tempfile::tempdir().expect("tempdir");
        let sink = WavSink::per_utterance(out.path()).expect("sink");
        let speaker = Speaker::start(Arc::clone(&cat), clips.path().into(), Box::new(sink));
        speaker.set_volume(100);
        speaker.say(Lang::En, "total", Args::new().money("total", 1250));
        assert!(speaker.wait_idle(WAIT));
        let got = utterance(out.path(), 1);
        let gap = vec![0i16; (RATE * GAP_MS / 1000) as usize];
        let mut expected = Vec::new();
        for (i, name) in [
            "seg.total.0",
            "num.twelve",
            "cur.euros",
            "word.and",
            "num.fifty",
            "cur.cents",
        ]
        .iter()
        .enumerate()
        {
            if i > 0 {
                expected.extend_from_slice(&gap);
            }
            expected.extend_from_slice(&tones[&(Lang::En, name.to_string())]);
        }
        assert_eq!(got, expected);
        assert_eq!(speaker.last_spoken(), Some((Lang::En, "total".to_string())));
    }

    #[test]
    fn a_new_message_interrupts_the_current_one_within_a_chunk() {
        let (cat, clips, _) = fixture();
        let out = tempfile::tempdir().expect("tempdir");
        let sink = Paced(WavSink::per_utterance(out.path()).expect("sink"));
        let speaker = Speaker::start(Arc::clone(&cat), clips.path().into(), Box::new(sink));
        let args = Args::new().money("total", 100520);
        let full = render(&cat, clips.path(), Lang::En, "total", &args).expect("renders");
        assert!(full.len() > 16 * 1000, "a long message (over 1 s)");
        let start = Instant::now();
        speaker.say(Lang::En, "total", args);
        std::thread::sleep(Duration::from_millis(200));
        let elapsed_ms = start.elapsed().as_millis() as usize;
        speaker.say(Lang::Zh, "hello", Args::new());
        assert!(speaker.wait_idle(WAIT));
        let first = utterance(out.path(), 1);
        // No more was played than real time allows, plus one chunk and some slack.
        assert!(
            first.len() <= (elapsed_ms + CHUNK_MS as usize + 30) * 16,
            "{} samples after {elapsed_ms} ms",
            first.len()
        );
        assert!(first.len() < full.len());
        let second = utterance(out.path(), 2);
        let hello = render(&cat, clips.path(), Lang::Zh, "hello", &Args::new()).expect("renders");
        assert_eq!(second.len(), hello.len());
        assert_eq!(speaker.last_spoken(), Some((Lang::Zh, "hello".to_string())));
    }

    #[test]
    fn stop_cuts_off_and_repeat_says_the_last_message_again() {
        let (cat, clips, _) = fixture();
        let out = tempfile::tempdir().expect("tempdir");
        let sink = Paced(WavSink::per_utterance(out.path()).expect("sink"));
        let speaker = Speaker::start(Arc::clone(&cat), clips.path().into(), Box::new(sink));
        speaker.repeat(); // nothing said yet: nothing happens
        assert!(speaker.wait_idle(WAIT));
        assert_eq!(speaker.last_spoken(), None);
        let args = Args::new().money("total", 100520);
        let full = render(&cat, clips.path(), Lang::En, "total", &args).expect("renders");
        speaker.say(Lang::En, "total", args);
        std::thread::sleep(Duration::from_millis(150));
        speaker.stop();
        assert!(speaker.wait_idle(WAIT));
        let cut = utterance(out.path(), 1);
        assert!(
            !cut.is_empty() && cut.len() < full.len() / 2,
            "{}",
            cut.len()
        );
        speaker.repeat();
        assert!(speaker.wait_idle(WAIT));
        let again = utterance(out.path(), 2);
        let mut expected = full.clone();
        apply_volume(&mut expected, DEFAULT_VOLUME);
        assert_eq!(again, expected);
    }

    #[test]
    fn volume_scales_what_is_played() {
        let (cat, clips, tones) = fixture();
        let out = tempfile::tempdir().expect("tempdir");
        let sink = WavSink::per_utterance(out.path()).expect("sink");
        let speaker = Speaker::start(Arc::clone(&cat), clips.path().into(), Box::new(sink));
        speaker.set_volume(100);
        speaker.say(Lang::Zh, "hello", Args::new());
        assert!(speaker.wait_idle(WAIT));
        speaker.set_volume(25);
        assert_eq!(speaker.volume(), 25);
        speaker.repeat();
        assert!(speaker.wait_idle(WAIT));
        speaker.set_volume(250);
        assert_eq!(speaker.volume(), 100);
        let loud = utterance(out.path(), 1);
        let quiet = utterance(out.path(), 2);
        assert_eq!(loud, tones[&(Lang::Zh, "seg.hello.0".to_string())]);
        let ratio = rms(&quiet) / rms(&loud);
        assert!((ratio - 0.25).abs() < 0.01, "{ratio}");
    }

    #[test]
    fn a_missing_clip_is_skipped_not_fatal() {
        let (cat, clips, tones) = fixture();
        std::fs::remove_file(clips.path().join("en/num.twelve.wav")).expect("remove");
        let out = tempfile::tempdir().expect("tempdir");
        let sink = WavSink::per_utterance(out.path()).expect("sink");
        let speaker = Speaker::start(Arc::clone(&cat), clips.path().into(), Box::new(sink));
        speaker.set_volume(100);
        // Each message waits for the one before (a new one would cut it off).
        for (id, args) in [
            ("total", Args::new().money("total", 1200)),
            ("no.such.message", Args::new()),
            ("hello", Args::new()),
        ] {
            speaker.say(Lang::En, id, args);
            assert!(speaker.wait_idle(WAIT));
        }
        let got = utterance(out.path(), 1);
        let gap = (RATE * GAP_MS / 1000) as usize;
        // "Your total is" + gap + "euros": twelve is skipped.
        assert_eq!(got.len(), 2 * CLIP + gap);
        assert_eq!(
            got[CLIP + gap..],
            tones[&(Lang::En, "cur.euros".to_string())][..]
        );
        // The unknown message played nothing; the next one still plays.
        assert_eq!(
            utterance(out.path(), 2),
            tones[&(Lang::En, "seg.hello.0".to_string())]
        );
    }

    /// The clips `scripts/voice-clips.sh` rendered: every clip exists, is 16 kHz and is not
    /// silent. Skipped (with a message) if the clips have not been rendered here.
    #[test]
    fn rendered_clips_exist_and_are_not_silent() {
        let dir = std::env::var_os("VENDD_VOICE_CLIPS")
            .map(PathBuf::from)
            .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("models/cache/voice"));
        if !dir.join("manifest.tsv").exists() {
            eprintln!(
                "SKIPPED rendered_clips_exist_and_are_not_silent: no rendered clips in {} \
                 (run scripts/voice-clips.sh)",
                dir.display()
            );
            return;
        }
        let cat = Catalog::embedded().expect("valid");
        let mut problems = Vec::new();
        let mut quietest = (f32::MAX, String::new());
        for c in clip_texts(&cat) {
            let path = dir.join(c.lang.as_str()).join(format!("{}.wav", c.name));
            match read_wav(&path) {
                Ok(pcm) => {
                    let level = rms(&pcm.samples);
                    if pcm.rate != RATE || pcm.samples.len() < 800 || level < 1000.0 {
                        problems.push(format!(
                            "{}: {} Hz, {} samples, RMS {level:.0}",
                            path.display(),
                            pcm.rate,
                            pcm.samples.len()
                        ));
                    }
                    if level < quietest.0 {
                        quietest = (level, c.name.clone());
                    }
                }
                Err(e) => problems.push(e.to_string()),
            }
        }
        assert!(
            problems.is_empty(),
            "bad clips (re-run scripts/voice-clips.sh):\n{}",
            problems.join("\n")
        );
        eprintln!("quietest clip: {} (RMS {:.0})", quietest.1, quietest.0);
        // And a composed price through the real clips.
        for lang in Lang::ALL {
            let args = Args::new().money("total", 1250);
            let samples = render(&cat, &dir, lang, "cart_updated", &args).expect("renders");
            assert!(
                samples.len() > RATE as usize,
                "{lang}: over a second of speech"
            );
            assert!(rms(&samples) > 1000.0);
        }
    }
}
