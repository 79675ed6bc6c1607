//! Local TTS with the `espeak-ng` program: no network, no key, robotic but always there, so it
//! serves as the last-resort provider and renders the apology clip at startup.
//!
//! Each text piece runs `espeak-ng -v {voice} -s {rate} --stdout -- <text>` (the text is one
//! argument, never passed through a shell), parses the WAV it prints, resamples to 8 kHz and
//! encodes μ-law. Cancelling kills the process. This module must not use a shell, must not
//! write files, and must not block the runtime (the process is awaited, not waited on).

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use tokio::process::Command;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::common::{MulawEncoder, emit_audio, spawn_response, speakable};
use super::{TextToSpeech, TtsEvent};
use crate::audio::wav::{Pcm, read_wav_bytes};
use crate::config::TtsConfig;
use crate::provider::ProviderError;

/// Provider name (logs, metrics).
pub const NAME: &str = "espeak";
/// The program run unless [`Espeak::with_program`] says otherwise (looked up on `PATH`).
pub const PROGRAM: &str = "espeak-ng";

/// The espeak-ng provider; cheap to share.
#[derive(Debug, Clone)]
pub struct Espeak {
    program: PathBuf,
    voice: String,
    rate: u32,
    timeout: Duration,
}

impl Espeak {
    /// Uses `cfg.espeak_voice` and `cfg.espeak_rate` (words per minute); `timeout_ms` bounds
    /// each run of the program.
    pub fn new(cfg: &TtsConfig) -> Self {
        Self {
            program: PathBuf::from(PROGRAM),
            voice: cfg.espeak_voice.clone(),
            rate: cfg.espeak_rate,
            timeout: Duration::from_millis(cfg.timeout_ms.max(1)),
        }
    }

    /// Run another program than `espeak-ng` from `PATH` (a full path, or a test double).
    pub fn with_program(mut self, program: impl Into<PathBuf>) -> Self {
        self.program = program.into();
        self
    }

    /// Render a whole clip (e.g. the apology, at startup) as 8 kHz μ-law.
    pub async fn render(&self, text: &str) -> Result<Bytes, ProviderError> {
        let pcm = self.synthesize(text).await?;
        let mut encoder = MulawEncoder::new(pcm.sample_rate)?;
        let mut out = BytesMut::new();
        out.put(encoder.push_f32(&pcm.samples)?);
        out.put(encoder.flush()?);
        Ok(out.freeze())
    }

    /// Run espeak-ng once and parse its WAV output.
    async fn synthesize(&self, text: &str) -> Result<Pcm, ProviderError> {
        let run = Command::new(&self.program)
            .arg("-v")
            .arg(&self.voice)
            .arg("-s")
            .arg(self.rate.to_string())
            .arg("--stdout")
            .arg("--")
            .arg(text)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .output();
        let output = tokio::time::timeout(self.timeout, run)
            .await
            .map_err(|_| ProviderError::Timeout(format!("espeak-ng ran over {:?}", self.timeout)))?
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => ProviderError::Connect(format!(
                    "espeak-ng not found ({}); install espeak-ng",
                    self.program.display()
                )),
                _ => ProviderError::Connect(format!("cannot run {}: {e}", self.program.display())),
            })?;
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            let code = output.status.code().unwrap_or(-1);
            return Err(ProviderError::Rejected {
                status: u16::try_from(code).unwrap_or(0),
                message: format!("espeak-ng exited with {}: {}", output.status, stderr.trim()),
            });
        }
        let mut wav = output.stdout;
        fix_streamed_wav_sizes(&mut wav);
        read_wav_bytes(&wav).map_err(|e| ProviderError::Malformed(format!("espeak-ng output: {e}")))
    }
}

impl TextToSpeech for Espeak {
    fn name(&self) -> &'static str {
        NAME
    }

    fn speak(
        &self,
        mut text: mpsc::Receiver<String>,
        cancel: CancellationToken,
    ) -> mpsc::Receiver<TtsEvent> {
        let this = self.clone();
        let token = cancel.clone();
        spawn_response(NAME, cancel, Duration::ZERO, move |tx| async move {
            let mut encoder: Option<MulawEncoder> = None;
            while let Some(piece) = text.recv().await {
                if !speakable(&piece) {
                    continue;
                }
                let pcm = this.synthesize(&piece).await?;
                if encoder.as_ref().map(MulawEncoder::input_rate) != Some(pcm.sample_rate) {
                    if let Some(mut old) = encoder.take() {
                        emit_audio(&tx, old.flush()?, &token).await?;
                    }
                    encoder = Some(MulawEncoder::new(pcm.sample_rate)?);
                }
                if let Some(encoder) = encoder.as_mut() {
                    let audio = encoder.push_f32(&pcm.samples)?;
                    emit_audio(&tx, audio, &token).await?;
                }
            }
            if let Some(mut encoder) = encoder {
                emit_audio(&tx, encoder.flush()?, &token).await?;
            }
            Ok(())
        })
    }
}

/// `--stdout` writes a WAV header for an unknown length (sizes near 2³¹); set the RIFF and
/// `data` sizes to what was actually written so the WAV reader accepts it.
fn fix_streamed_wav_sizes(wav: &mut [u8]) {
    if wav.len() < 12 || &wav[..4] != b"RIFF" || &wav[8..12] != b"WAVE" {
        return;
    }
    let riff = u32::try_from(wav.len() - 8).unwrap_or(u32::MAX);
    wav[4..8].copy_from_slice(&riff.to_le_bytes());
    let mut at = 12;
    while at + 8 <= wav.len() {
        let id = [wav[at], wav[at + 1], wav[at + 2], wav[at + 3]];
        let size = u32::from_le_bytes([wav[at + 4], wav[at + 5], wav[at + 6], wav[at + 7]]);
        if &id == b"data" {
            let actual = u32::try_from(wav.len() - at - 8).unwrap_or(u32::MAX);
            // Whole samples only (16-bit mono from espeak-ng).
            let actual = actual & !1;
            wav[at + 4..at + 8].copy_from_slice(&actual.to_le_bytes());
            return;
        }
        at += 8 + size as usize + (size as usize & 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::mulaw;
    use crate::config::Config;

    fn espeak() -> Espeak {
        Espeak::new(&Config::default().tts)
    }

    fn peak(mulaw_audio: &[u8]) -> i32 {
        mulaw_audio
            .iter()
            .map(|&c| i32::from(mulaw::decode(c)).abs())
            .max()
            .unwrap_or(0)
    }

    #[tokio::test]
    async fn renders_hello_as_audible_8k_mulaw() {
        let clip = espeak().render("hello").await.unwrap();
        let secs = clip.len() as f32 / 8000.0;
        assert!((0.3..2.0).contains(&secs), "{secs} s");
        assert!(peak(&clip) > 8000, "peak {}", peak(&clip));
    }

    #[tokio::test]
    async fn speaks_pieces_then_done() {
        let (tx, rx) = mpsc::channel(4);
        let mut events = espeak().speak(rx, CancellationToken::new());
        tx.send("Hello there.".into()).await.unwrap();
        tx.send("-5 degrees outside.".into()).await.unwrap();
        drop(tx);
        let mut audio = 0;
        loop {
            match events.recv().await.unwrap() {
                TtsEvent::Audio(a) => audio += a.len(),
                TtsEvent::Done => break,
                other => panic!("{other:?}"),
            }
        }
        assert!(audio > 8000, "{audio} bytes");
        assert!(events.recv().await.is_none());
    }

    #[tokio::test]
    async fn missing_binary_fails_with_connect() {
        let tts = espeak().with_program("/nonexistent/espeak-ng");
        let err = tts.render("hi").await.unwrap_err();
        assert_eq!(err.kind(), "connect", "{err}");
        let (tx, rx) = mpsc::channel(1);
        let mut events = tts.speak(rx, CancellationToken::new());
        tx.send("hi".into()).await.unwrap();
        match events.recv().await {
            Some(TtsEvent::Warning {
                error: ProviderError::Connect(m),
                ..
            }) => assert!(m.contains("not found")),
            other => panic!("{other:?}"),
        }
        assert!(matches!(events.recv().await, Some(TtsEvent::Failed(_))));
    }

    #[tokio::test]
    async fn unknown_voice_is_rejected() {
        let mut cfg = Config::default().tts;
        cfg.espeak_voice = "nosuchvoice".into();
        let err = Espeak::new(&cfg).render("hi").await.unwrap_err();
        assert_eq!(err.kind(), "rejected", "{err}");
    }
}
