//! Audio output: the [`AudioSink`] trait, its ALSA implementation for the kiosk's speaker
//! and a WAV-file implementation for tests and for machines without a sound card, plus
//! WAV reading for the pre-rendered clips and volume scaling.
//!
//! All audio here is 16-bit signed mono PCM. The clips are rendered at 16 kHz
//! (`scripts/voice-clips.sh`).

use std::fs::File;
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Why audio could not be read or played.
#[derive(Debug, thiserror::Error)]
pub enum AudioError {
    /// The ALSA device could not be opened or configured.
    #[error(
        "cannot open ALSA PCM `{device}`: {cause}. Is there a sound card (`aplay -l`, \
         /dev/snd)? Set the voice output device in the configuration, or use the WAV sink"
    )]
    Open {
        /// The PCM name, e.g. `default` or `hw:0,0`.
        device: String,
        /// ALSA's error.
        cause: alsa::Error,
    },
    /// Writing to or draining the ALSA device failed.
    #[error("ALSA playback on `{device}` failed: {cause}")]
    Play {
        /// The PCM name.
        device: String,
        /// ALSA's error.
        cause: alsa::Error,
    },
    /// A file could not be read or written.
    #[error("{path}: {cause}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        cause: std::io::Error,
    },
    /// A WAV file is not 16-bit PCM, or is damaged.
    #[error("{path}: not a 16-bit PCM WAV file ({detail})")]
    BadWav {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// A sink that writes one file was given audio at a different sample rate.
    #[error("sample rate changed from {was} Hz to {now} Hz within one WAV file")]
    RateChanged {
        /// The file's rate.
        was: u32,
        /// The new rate.
        now: u32,
    },
}

/// Somewhere to play audio.
///
/// The speaker calls [`play`](AudioSink::play) with small chunks (tens of milliseconds), so
/// `play` may block until the device has room; then [`finish`](AudioSink::finish) at the
/// end of an utterance, or [`stop`](AudioSink::stop) to cut it off.
pub trait AudioSink: Send {
    /// Queues 16-bit mono samples at `rate` Hz.
    ///
    /// # Errors
    /// [`AudioError`] if the device or file fails.
    fn play(&mut self, samples: &[i16], rate: u32) -> Result<(), AudioError>;

    /// The utterance is complete: let what is queued play out.
    ///
    /// # Errors
    /// [`AudioError`] if the device or file fails.
    fn finish(&mut self) -> Result<(), AudioError>;

    /// Cuts the current utterance off now, discarding whatever is queued.
    fn stop(&mut self);
}

/// Scales samples by a volume in percent (0 = silent, 100 = as recorded; above 100 is
/// treated as 100). Linear in amplitude.
pub fn apply_volume(samples: &mut [i16], percent: u8) {
    let pct = i32::from(percent.min(100));
    if pct == 100 {
        return;
    }
    for s in samples {
        // |s| * 100 / 100 fits i16, so the cast cannot truncate.
        *s = (i32::from(*s) * pct / 100) as i16;
    }
}

/// Root mean square of samples (0 for none), in sample units (0 – 32768).
pub fn rms(samples: &[i16]) -> f32 {
    if samples.is_empty() {
        return 0.0;
    }
    let sum: f64 = samples.iter().map(|&s| f64::from(s) * f64::from(s)).sum();
    (sum / samples.len() as f64).sqrt() as f32
}

/// Decoded 16-bit mono audio.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pcm {
    /// Samples per second.
    pub rate: u32,
    /// The samples (multi-channel files are mixed down to mono).
    pub samples: Vec<i16>,
}

/// Reads a 16-bit PCM WAV file.
///
/// # Errors
/// [`AudioError::Io`] if it cannot be read, [`AudioError::BadWav`] if it is not 16-bit PCM.
pub fn read_wav(path: &Path) -> Result<Pcm, AudioError> {
    let bytes = std::fs::read(path).map_err(|cause| AudioError::Io {
        path: path.to_path_buf(),
        cause,
    })?;
    parse_wav(&bytes).map_err(|detail| AudioError::BadWav {
        path: path.to_path_buf(),
        detail,
    })
}

/// Decodes a 16-bit PCM WAV. Tolerates a data chunk whose size field is wrong (as written
/// by a stream that was never finalised): the data then runs to the end of the file.
///
/// # Errors
/// A description of the problem.
pub fn parse_wav(bytes: &[u8]) -> Result<Pcm, String> {
    let u16_at = |i: usize| u16::from_le_bytes([bytes[i], bytes[i + 1]]);
    let u32_at =
        |i: usize| u32::from_le_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
    if bytes.len() < 12 || &bytes[0..4] != b"RIFF" || &bytes[8..12] != b"WAVE" {
        return Err("no RIFF/WAVE header".into());
    }
    let mut pos = 12;
    let mut format: Option<(u16, u32)> = None;
    while pos + 8 <= bytes.len() {
        let id = &bytes[pos..pos + 4];
        let size = u32_at(pos + 4) as usize;
        let body = pos + 8;
        if id == b"fmt " {
            if size < 16 || body + 16 > bytes.len() {
                return Err("short fmt chunk".into());
            }
            let tag = u16_at(body);
            let channels = u16_at(body + 2);
            let rate = u32_at(body + 4);
            let bits = u16_at(body + 14);
            // 1 = PCM; 0xFFFE = extensible (PCM here if 16 bits).
            if !(tag == 1 || tag == 0xFFFE) || bits != 16 || channels == 0 {
                return Err(format!("format {tag}, {bits} bits, {channels} channels"));
            }
            format = Some((channels, rate));
        } else if id == b"data" {
            let (channels, rate) = format.ok_or("data before fmt")?;
            let end = body.saturating_add(size).min(bytes.len());
            let frame = 2 * usize::from(channels);
            let data = &bytes[body..end];
            let samples = data
                .chunks_exact(frame)
                .map(|f| {
                    let sum: i32 = f
                        .chunks_exact(2)
                        .map(|s| i32::from(i16::from_le_bytes([s[0], s[1]])))
                        .sum();
                    (sum / i32::from(channels)) as i16
                })
                .collect();
            return Ok(Pcm { rate, samples });
        }
        pos = body.saturating_add(size + (size & 1));
    }
    Err("no data chunk".into())
}

/// A WAV file being written; its header is rewritten after every write, so the file is
/// valid whenever a write returns.
struct WavWriter {
    path: PathBuf,
    file: File,
    rate: u32,
    data_bytes: u32,
}

impl WavWriter {
    fn create(path: &Path, rate: u32) -> Result<WavWriter, AudioError> {
        let io = |cause| AudioError::Io {
            path: path.to_path_buf(),
            cause,
        };
        let file = File::create(path).map_err(io)?;
        let mut w = WavWriter {
            path: path.to_path_buf(),
            file,
            rate,
            data_bytes: 0,
        };
        w.write_header().map_err(io)?;
        Ok(w)
    }

    fn write_header(&mut self) -> std::io::Result<()> {
        let mut h = Vec::with_capacity(44);
        h.extend_from_slice(b"RIFF");
        h.extend_from_slice(&(36 + self.data_bytes).to_le_bytes());
        h.extend_from_slice(b"WAVEfmt ");
        h.extend_from_slice(&16u32.to_le_bytes());
        h.extend_from_slice(&1u16.to_le_bytes()); // PCM
        h.extend_from_slice(&1u16.to_le_bytes()); // mono
        h.extend_from_slice(&self.rate.to_le_bytes());
        h.extend_from_slice(&(self.rate * 2).to_le_bytes()); // bytes per second
        h.extend_from_slice(&2u16.to_le_bytes()); // block align
        h.extend_from_slice(&16u16.to_le_bytes()); // bits
        h.extend_from_slice(b"data");
        h.extend_from_slice(&self.data_bytes.to_le_bytes());
        self.file.seek(SeekFrom::Start(0))?;
        self.file.write_all(&h)?;
        self.file.seek(SeekFrom::End(0))?;
        Ok(())
    }

    fn append(&mut self, samples: &[i16], rate: u32) -> Result<(), AudioError> {
        if rate != self.rate {
            return Err(AudioError::RateChanged {
                was: self.rate,
                now: rate,
            });
        }
        let bytes: Vec<u8> = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
        let path = self.path.clone();
        let io = |cause| AudioError::Io { path, cause };
        let written = self.file.write_all(&bytes).and_then(|()| {
            self.data_bytes = self.data_bytes.saturating_add(bytes.len() as u32);
            self.write_header()
        });
        written.map_err(io)
    }
}

/// Where a [`WavSink`] writes.
#[derive(Clone, Debug)]
enum WavTarget {
    /// Everything into one file.
    Append(PathBuf),
    /// One file per utterance in a folder: `utt-000001.wav`, `utt-000002.wav`, …
    PerUtterance {
        dir: PathBuf,
        /// Sequence number of the next file.
        next: u32,
    },
}

/// An [`AudioSink`] that writes WAV files instead of playing.
///
/// Writes as fast as it is fed (it does not pace in real time).
pub struct WavSink {
    target: WavTarget,
    current: Option<WavWriter>,
}

impl WavSink {
    /// Backend name.
    pub const NAME: &'static str = "wav";

    /// Writes everything played into one file, created (or truncated) at the first
    /// [`play`](AudioSink::play). Utterances follow each other without gaps.
    pub fn append(path: impl Into<PathBuf>) -> WavSink {
        WavSink {
            target: WavTarget::Append(path.into()),
            current: None,
        }
    }

    /// Writes each utterance into its own file `utt-NNNNNN.wav` in `dir` (created if
    /// needed), numbered from 1. A cut-off utterance keeps what was played of it.
    ///
    /// # Errors
    /// [`AudioError::Io`] if the folder cannot be created.
    pub fn per_utterance(dir: impl Into<PathBuf>) -> Result<WavSink, AudioError> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir).map_err(|cause| AudioError::Io {
            path: dir.clone(),
            cause,
        })?;
        Ok(WavSink {
            target: WavTarget::PerUtterance { dir, next: 1 },
            current: None,
        })
    }

    /// The file of utterance number `seq` (from 1) in a per-utterance folder.
    pub fn utterance_path(dir: &Path, seq: u32) -> PathBuf {
        dir.join(format!("utt-{seq:06}.wav"))
    }
}

impl AudioSink for WavSink {
    fn play(&mut self, samples: &[i16], rate: u32) -> Result<(), AudioError> {
        if self.current.is_none() {
            let path = match &mut self.target {
                WavTarget::Append(path) => path.clone(),
                WavTarget::PerUtterance { dir, next } => {
                    let p = WavSink::utterance_path(dir, *next);
                    *next += 1;
                    p
                }
            };
            self.current = Some(WavWriter::create(&path, rate)?);
        }
        match &mut self.current {
            Some(w) => w.append(samples, rate),
            None => Ok(()),
        }
    }

    fn finish(&mut self) -> Result<(), AudioError> {
        if matches!(self.target, WavTarget::PerUtterance { .. }) {
            self.current = None;
        }
        Ok(())
    }

    fn stop(&mut self) {
        // The file is valid after every write; only close it to start a new one.
        if matches!(self.target, WavTarget::PerUtterance { .. }) {
            self.current = None;
        }
    }
}

/// Plays through ALSA (the kiosk's speaker).
///
/// The device buffer holds about [`ALSA_BUFFER_MS`] of audio, so a [`stop`](AudioSink::stop)
/// is heard within that plus one chunk.
pub struct AlsaSink {
    device: String,
    pcm: alsa::PCM,
    rate: u32,
}

/// Requested ALSA buffer length: short enough that an interruption is heard quickly, long
/// enough not to underrun on a busy Raspberry Pi.
pub const ALSA_BUFFER_MS: u32 = 120;

impl AlsaSink {
    /// Backend name.
    pub const NAME: &'static str = "alsa";

    /// Opens and configures a PCM (`default`, `plughw:0,0`, …) for 16-bit mono at `rate`.
    /// Opened at start-up so that a missing sound card is reported then, not at the first
    /// prompt.
    ///
    /// # Errors
    /// [`AudioError::Open`] if the device does not exist or refuses the format.
    pub fn open(device: &str, rate: u32) -> Result<AlsaSink, AudioError> {
        let pcm = open_pcm(device, rate).map_err(|cause| AudioError::Open {
            device: device.to_string(),
            cause,
        })?;
        Ok(AlsaSink {
            device: device.to_string(),
            pcm,
            rate,
        })
    }

    fn play_err(&self, cause: alsa::Error) -> AudioError {
        AudioError::Play {
            device: self.device.clone(),
            cause,
        }
    }
}

fn open_pcm(device: &str, rate: u32) -> Result<alsa::PCM, alsa::Error> {
    use alsa::pcm::{Access, Format, Frames, HwParams};
    let pcm = alsa::PCM::new(device, alsa::Direction::Playback, false)?;
    {
        let hwp = HwParams::any(&pcm)?;
        hwp.set_channels(1)?;
        hwp.set_rate(rate, alsa::ValueOr::Nearest)?;
        hwp.set_format(Format::s16())?;
        hwp.set_access(Access::RWInterleaved)?;
        // Frames is a C long: i64 here, i32 on 32-bit Raspberry Pi OS.
        let frames = u16::try_from(rate * ALSA_BUFFER_MS / 1000).map_or(2048, Frames::from);
        hwp.set_buffer_size_near(frames)?;
        hwp.set_period_size_near(frames / 4, alsa::ValueOr::Nearest)?;
        pcm.hw_params(&hwp)?;
    }
    pcm.prepare()?;
    Ok(pcm)
}

impl AudioSink for AlsaSink {
    fn play(&mut self, samples: &[i16], rate: u32) -> Result<(), AudioError> {
        if rate != self.rate {
            // Reopen at the new rate (clips are all 16 kHz, so this is rare).
            self.pcm = open_pcm(&self.device, rate).map_err(|cause| AudioError::Open {
                device: self.device.clone(),
                cause,
            })?;
            self.rate = rate;
        }
        let mut rest = samples;
        while !rest.is_empty() {
            let io = self.pcm.io_i16().map_err(|e| self.play_err(e))?;
            match io.writei(rest) {
                Ok(n) => rest = &rest[n.min(rest.len())..],
                // Underrun (or suspend): recover and write again.
                Err(e) => self
                    .pcm
                    .try_recover(e, true)
                    .map_err(|e| self.play_err(e))?,
            }
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<(), AudioError> {
        self.pcm.drain().map_err(|e| self.play_err(e))?;
        self.pcm.prepare().map_err(|e| self.play_err(e))
    }

    fn stop(&mut self) {
        // drop() discards what is queued; prepare() readies the next utterance.
        if let Err(e) = self.pcm.drop().and_then(|()| self.pcm.prepare()) {
            tracing::warn!(cause = %e, device = %self.device, "could not stop ALSA playback");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(n: usize, amp: f32) -> Vec<i16> {
        (0..n)
            .map(|i| (amp * (i as f32 * 0.2).sin()) as i16)
            .collect()
    }

    #[test]
    fn wav_round_trip_in_append_mode() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("out.wav");
        let mut sink = WavSink::append(&path);
        let a = tone(1600, 8000.0);
        let b = tone(800, 3000.0);
        sink.play(&a, 16000).expect("play");
        sink.finish().expect("finish");
        // The file is valid between writes.
        assert_eq!(read_wav(&path).expect("valid").samples, a);
        sink.play(&b, 16000).expect("play");
        let pcm = read_wav(&path).expect("valid");
        assert_eq!(pcm.rate, 16000);
        assert_eq!(pcm.samples, [a, b].concat());
        assert!(matches!(
            sink.play(&[1, 2], 22050),
            Err(AudioError::RateChanged {
                was: 16000,
                now: 22050
            })
        ));
    }

    #[test]
    fn per_utterance_mode_numbers_the_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut sink = WavSink::per_utterance(dir.path().join("utts")).expect("dir");
        sink.play(&[1, 2, 3], 16000).expect("play");
        sink.play(&[4], 16000).expect("play");
        sink.finish().expect("finish");
        sink.play(&[5, 6], 8000).expect("play");
        sink.stop();
        let first = read_wav(&WavSink::utterance_path(&dir.path().join("utts"), 1)).expect("1");
        let second = read_wav(&WavSink::utterance_path(&dir.path().join("utts"), 2)).expect("2");
        assert_eq!(first.samples, [1, 2, 3, 4]);
        assert_eq!((second.rate, second.samples), (8000, vec![5, 6]));
    }

    #[test]
    fn wav_reader_mixes_stereo_down_and_refuses_other_formats() {
        let mut w = Vec::new();
        w.extend_from_slice(b"RIFF\0\0\0\0WAVEfmt ");
        w.extend_from_slice(&16u32.to_le_bytes());
        w.extend_from_slice(&[1, 0, 2, 0]);
        w.extend_from_slice(&8000u32.to_le_bytes());
        w.extend_from_slice(&32000u32.to_le_bytes());
        w.extend_from_slice(&[4, 0, 16, 0]);
        w.extend_from_slice(b"data");
        w.extend_from_slice(&u32::MAX.to_le_bytes()); // never finalised
        for s in [100i16, 300, -50, -150] {
            w.extend_from_slice(&s.to_le_bytes());
        }
        let pcm = parse_wav(&w).expect("parses");
        assert_eq!((pcm.rate, pcm.samples), (8000, vec![200, -100]));
        w[34] = 8; // 8-bit
        assert!(parse_wav(&w).is_err());
        assert!(parse_wav(b"RIFX").is_err());
    }

    #[test]
    fn volume_scales_and_rms_measures() {
        let mut s = vec![10000i16, -10000, 32767, -32768];
        apply_volume(&mut s, 50);
        assert_eq!(s, [5000, -5000, 16383, -16384]);
        apply_volume(&mut s, 0);
        assert_eq!(rms(&s), 0.0);
        let square = vec![1000i16, -1000, 1000, -1000];
        assert!((rms(&square) - 1000.0).abs() < 0.01);
        assert_eq!(rms(&[]), 0.0);
    }

    /// Opening a device that does not exist fails with an error that names the device and
    /// says what to check. (On this build machine, which has no sound card, `default` fails
    /// the same way; that is printed, not asserted, as a machine with a card opens it.)
    #[test]
    fn alsa_sink_reports_a_missing_device_clearly() {
        let device = "vendd_no_such_pcm";
        let Err(e) = AlsaSink::open(device, 16000) else {
            panic!("ALSA opened a PCM that does not exist");
        };
        let msg = e.to_string();
        assert!(matches!(e, AudioError::Open { .. }), "{msg}");
        assert!(msg.contains(device) && msg.contains("aplay -l"), "{msg}");
        match AlsaSink::open("default", 16000) {
            Ok(_) => eprintln!("note: ALSA `default` opens on this machine"),
            Err(e) => eprintln!("note: ALSA `default` here: {e}"),
        }
    }

    /// End to end through the real ALSA code path: a child process (this test binary again)
    /// gets a `$HOME/.asoundrc` whose default PCM is the `file` plugin writing a WAV.
    #[test]
    fn alsa_sink_plays_through_the_alsa_file_plugin() {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = dir.path().join("alsa-out.wav");
        let rc = format!(
            "pcm.!default {{ type file slave.pcm \"null\" file \"{}\" format \"wav\" }}\n",
            out.display()
        );
        std::fs::write(dir.path().join(".asoundrc"), rc).expect("asoundrc");
        let exe = std::env::current_exe().expect("test binary");
        let child = std::process::Command::new(exe)
            .args([
                "voice::audio::tests::alsa_child_plays_a_tone",
                "--exact",
                "--ignored",
                "--test-threads=1",
            ])
            .env("HOME", dir.path())
            .env_remove("ALSA_CONFIG_PATH")
            .env("VENDD_ALSA_CHILD", "1")
            .output()
            .expect("run child");
        assert!(
            child.status.success(),
            "child failed: {}\n{}\n{}",
            child.status,
            String::from_utf8_lossy(&child.stdout),
            String::from_utf8_lossy(&child.stderr)
        );
        let pcm = read_wav(&out).expect("the file plugin wrote a WAV");
        assert_eq!(pcm.rate, 16000);
        assert_eq!(pcm.samples.len(), 3200 * 2, "two 0.2 s chunks");
        assert_eq!(pcm.samples[..3200], tone(3200, 8000.0)[..]);
        assert!((rms(&pcm.samples[3200..]) - rms(&tone(3200, 4000.0))).abs() < 2.0);
    }

    /// The child half of the test above (run only by it).
    #[test]
    #[ignore = "run by alsa_sink_plays_through_the_alsa_file_plugin"]
    fn alsa_child_plays_a_tone() {
        if std::env::var_os("VENDD_ALSA_CHILD").is_none() {
            return;
        }
        let mut sink = AlsaSink::open("default", 16000).expect("file plugin opens");
        sink.play(&tone(3200, 8000.0), 16000).expect("play");
        let mut quieter = tone(3200, 8000.0);
        apply_volume(&mut quieter, 50);
        sink.play(&quieter, 16000).expect("play");
        sink.finish().expect("drain");
    }
}
