//! The `voxbridge` binary: `serve` runs the media server, `call` places one simulated Twilio
//! call against a server, `fakes` (with the `fakes` feature only) runs the local cloud fakes.
//! This is the only place `anyhow` is used.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use voxbridge::audio::wav;
use voxbridge::call::services::CallServices;
use voxbridge::config::{Config, LogConfig, LogFormat};
use voxbridge::server::Server;
use voxbridge::sim::load::LoadConfig;
use voxbridge::sim::{Impairments, SimCall, Step};

#[derive(Parser)]
#[command(
    name = "voxbridge",
    version,
    about = "Real-time voice media server for Twilio Media Streams"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (defaults: config/default.toml compiled in; echo agent).
    Serve {
        /// A TOML file overriding the defaults.
        #[arg(long, env = "VOXBRIDGE_CONFIG")]
        config: Option<PathBuf>,
        /// Listen address (overrides config and VOXBRIDGE_LISTEN); port 0 picks a free port.
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
    },
    /// Run local fakes of Deepgram, OpenAI (chat, speech, Realtime), ElevenLabs and the Twilio
    /// REST API on 127.0.0.1 (for demos and load runs without the cloud) and print the
    /// environment that points `serve` at them.
    #[cfg(feature = "fakes")]
    Fakes(FakesArgs),
    /// Many simulated Twilio calls at once, at real-time pace; prints a load report.
    Load {
        /// The media WebSocket, e.g. ws://127.0.0.1:8080/twilio/media
        url: String,
        /// Concurrent calls.
        #[arg(long, default_value_t = 100)]
        calls: usize,
        /// Seconds over which calls start.
        #[arg(long, default_value_t = 10.0)]
        ramp: f64,
        /// Seconds each call lasts.
        #[arg(long, default_value_t = 60.0)]
        duration: f64,
        /// What every caller says, turn after turn (WAV, any rate).
        #[arg(long, default_value = "fixtures/question-8k.wav")]
        audio: PathBuf,
        /// Also write the report as JSON here.
        #[arg(long)]
        json: Option<PathBuf>,
        /// Read the server's CPU and RSS from /proc/PID (default: its /metrics).
        #[arg(long)]
        pid: Option<u32>,
    },
    /// Place one simulated Twilio call: speak a WAV, hear the reply, print what happened.
    Call {
        /// The media WebSocket, e.g. ws://127.0.0.1:8080/twilio/media
        url: String,
        /// What the caller says: a WAV file of any rate (converted to 8 kHz μ-law).
        #[arg(long, required_unless_present = "silence")]
        audio: Option<PathBuf>,
        /// Write what the caller heard to this WAV (8 kHz, 16-bit).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Give up waiting for the reply after this many seconds.
        #[arg(long, default_value_t = 15)]
        timeout: u64,
        /// DTMF digits to press after speaking.
        #[arg(long)]
        dtmf: Option<String>,
        #[command(flatten)]
        impair: ImpairArgs,
    },
}

/// How the fake Twilio account behaves.
#[cfg(feature = "fakes")]
#[derive(clap::Args)]
struct FakesArgs {
    /// Who answers a number, one behaviour per attempt (the last repeats): NUMBER=SPEC with
    /// SPEC `human[:TURNS]`, `machine`, `busy`, `no_answer`, `fail`, or a sequence such as
    /// `no_answer,human:2`. Repeatable.
    #[arg(long = "twilio-callee", value_name = "NUMBER=SPEC")]
    twilio_callees: Vec<String>,
    /// Who answers numbers without a --twilio-callee.
    #[arg(long, default_value = "human:2", value_name = "SPEC")]
    twilio_default_callee: String,
    /// New calls dialled per second (Twilio's default; 0: no limit).
    #[arg(long, default_value_t = 1.0)]
    twilio_cps: f64,
    /// Open calls beyond which Calls.json answers 429 / 20429.
    #[arg(long)]
    twilio_max_calls: Option<usize>,
    /// Port of the fake Twilio REST API (0: any free port).
    #[arg(long, default_value_t = 0)]
    twilio_port: u16,
}

/// Impairments of the simulated caller's leg (to produce a bad call on demand).
#[derive(clap::Args)]
struct ImpairArgs {
    /// Lose this percentage of inbound frames (random positions, exact rate).
    #[arg(long, default_value_t = 0.0)]
    loss: f64,
    /// Stall-and-burst delivery with this RFC 3550 jitter, ms (up to ~38 for in-order frames).
    #[arg(long, default_value_t = 0.0)]
    jitter: f64,
    /// Amplify the caller's audio by this many dB (over-driven audio clips).
    #[arg(long, default_value_t = 0.0)]
    gain: f64,
    /// The caller says nothing at all for --timeout seconds (dead air).
    #[arg(long)]
    silence: bool,
    /// Seed for the random loss positions.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve { config, listen } => serve(config, listen).await,
        #[cfg(feature = "fakes")]
        Command::Fakes(args) => fakes(args).await,
        Command::Load {
            url,
            calls,
            ramp,
            duration,
            audio,
            json,
            pid,
        } => {
            let cfg = LoadConfig {
                url,
                calls,
                ramp: Duration::from_secs_f64(ramp.max(0.0)),
                duration: Duration::from_secs_f64(duration.max(1.0)),
                audio: wav::read_wav_as_mulaw_8k(&audio)?.into(),
                server_pid: pid,
                progress: true,
            };
            let report = voxbridge::sim::load::run(cfg).await;
            print!("{report}");
            if let Some(path) = json {
                std::fs::write(&path, serde_json::to_string_pretty(&report)?)
                    .with_context(|| format!("writing {}", path.display()))?;
            }
            Ok(())
        }
        Command::Call {
            url,
            audio,
            out,
            timeout,
            dtmf,
            impair,
        } => call(url, audio, out, timeout, dtmf, impair).await,
    }
}

async fn serve(file: Option<PathBuf>, listen: Option<std::net::SocketAddr>) -> anyhow::Result<()> {
    let mut config = Config::load(file.as_deref())?;
    if let Some(addr) = listen {
        config.server.listen = addr;
    }
    voxbridge::logging::init(&config.log);
    let drain = Duration::from_secs(config.server.drain_timeout_secs);
    let services = CallServices::from_config(&config, |var| std::env::var(var).ok()).await?;
    for name in services.profiles.names() {
        let Some(p) = services.profiles.get(name) else {
            continue;
        };
        tracing::info!(
            profile = name,
            engine = p.engine.as_str(),
            stt = p.stt.as_ref().map_or("none", |s| s.name()),
            agent = p.agent.name(),
            tts = p.tts.as_ref().map_or("none", |t| t.name()),
            turn_source = ?p.turn_source,
            "agent profile ready"
        );
    }
    tracing::info!(twilio_rest = services.twilio.is_some(), "providers ready");
    let server = Server::bind_with(config.clone(), services)
        .await
        .with_context(|| format!("binding {}", config.server.listen))?;
    tracing::info!(
        url = %server.media_url(),
        agent = ?config.agent.kind,
        "ready: point a Twilio number's voice webhook at POST /twilio/voice"
    );
    shutdown_signal().await;
    server.shutdown(drain).await;
    Ok(())
}

#[cfg(feature = "fakes")]
async fn fakes(args: FakesArgs) -> anyhow::Result<()> {
    use voxbridge::fakes::deepgram::FakeDeepgram;
    use voxbridge::fakes::elevenlabs::FakeElevenLabs;
    use voxbridge::fakes::openai_chat::FakeOpenAiChat;
    use voxbridge::fakes::openai_realtime::FakeOpenAiRealtime;
    use voxbridge::fakes::openai_speech::FakeOpenAiSpeech;
    voxbridge::logging::init(&LogConfig {
        format: LogFormat::Text,
        level: "warn".into(),
    });
    const KEY: &str = "fake-key";
    let deepgram = FakeDeepgram::start(KEY).await?;
    // Every connection cycles through these, one per caller utterance, for as long as it lasts.
    deepgram.transcripts.cycle([
        "I would like to check the status of my order",
        "When will it arrive?",
        "Can I change the delivery address?",
    ]);
    let chat = FakeOpenAiChat::start(KEY).await?;
    let elevenlabs = FakeElevenLabs::start(KEY).await?;
    let speech = FakeOpenAiSpeech::start(KEY).await?;
    // Speaks its default script (greeting, an order-status answer, a goodbye with end_call).
    let realtime = FakeOpenAiRealtime::start(KEY).await?;
    let twilio = fake_twilio(&args).await?;
    println!("# Local fakes on 127.0.0.1 (Ctrl-C to stop). Point `voxbridge serve` at them:");
    println!("export DEEPGRAM_API_KEY={KEY} OPENAI_API_KEY={KEY} ELEVENLABS_API_KEY={KEY}");
    println!(
        "export VOXBRIDGE_STT_PROVIDER=deepgram VOXBRIDGE_STT_BASE_URL={}",
        deepgram.url()
    );
    println!(
        "export VOXBRIDGE_AGENT_KIND=openai VOXBRIDGE_AGENT_BASE_URL={}",
        chat.url()
    );
    println!(
        "export VOXBRIDGE_TTS_PROVIDER=elevenlabs_ws VOXBRIDGE_TTS_ELEVENLABS_BASE_URL={}",
        elevenlabs.base_url()
    );
    println!(
        "# or the OpenAI voice: VOXBRIDGE_TTS_PROVIDER=openai VOXBRIDGE_TTS_OPENAI_BASE_URL={}",
        speech.base_url()
    );
    println!(
        "# or speech-to-speech: VOXBRIDGE_AGENT_KIND=openai_realtime VOXBRIDGE_REALTIME_BASE_URL={}",
        realtime.url()
    );
    println!(
        "export VOXBRIDGE_TWILIO_API_BASE_URL={} TWILIO_ACCOUNT_SID={} TWILIO_AUTH_TOKEN={}",
        twilio.base_url(),
        twilio.account_sid(),
        twilio.auth_token()
    );
    println!(
        "# the fake Twilio fetches TwiML and opens streams over plain http/ws and signs those URLs:"
    );
    println!("export VOXBRIDGE_SECURITY_PUBLIC_SCHEME=http");
    println!(
        "# fake Twilio callees: {} (others: {}), {} call(s)/s",
        if args.twilio_callees.is_empty() {
            "none scripted".to_string()
        } else {
            args.twilio_callees.join(" ")
        },
        args.twilio_default_callee,
        args.twilio_cps
    );
    shutdown_signal().await;
    Ok(())
}

/// The fake Twilio REST API, configured from the command line.
#[cfg(feature = "fakes")]
async fn fake_twilio(args: &FakesArgs) -> anyhow::Result<voxbridge::fakes::twilio::FakeTwilio> {
    use voxbridge::fakes::twilio::{Callee, FakeTwilio, FakeTwilioConfig};
    let default = Callee::parse_sequence(&args.twilio_default_callee)
        .map_err(|e| anyhow::anyhow!("--twilio-default-callee: {e}"))?;
    anyhow::ensure!(
        default.len() == 1,
        "--twilio-default-callee takes one behaviour, not a sequence"
    );
    anyhow::ensure!(
        args.twilio_cps.is_finite() && args.twilio_cps >= 0.0,
        "--twilio-cps must be 0 or more"
    );
    let config = FakeTwilioConfig {
        cps: args.twilio_cps,
        max_active_calls: args.twilio_max_calls,
        default_callee: default
            .into_iter()
            .next()
            .unwrap_or_else(|| Callee::human(2)),
        ..FakeTwilioConfig::default()
    };
    let twilio = FakeTwilio::start_on(config, args.twilio_port).await?;
    for spec in &args.twilio_callees {
        let (number, seq) = spec
            .split_once('=')
            .with_context(|| format!("--twilio-callee {spec}: expected NUMBER=SPEC"))?;
        let seq = Callee::parse_sequence(seq)
            .map_err(|e| anyhow::anyhow!("--twilio-callee {spec}: {e}"))?;
        twilio.script(number.trim(), seq);
    }
    Ok(twilio)
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => tracing::info!("SIGINT received"),
        _ = term => tracing::info!("SIGTERM received"),
    }
}

async fn call(
    url: String,
    audio: Option<PathBuf>,
    out: Option<PathBuf>,
    timeout: u64,
    dtmf: Option<String>,
    impair: ImpairArgs,
) -> anyhow::Result<()> {
    voxbridge::logging::init(&LogConfig {
        format: LogFormat::Text,
        level: "warn".into(),
    });
    let mut call = SimCall::new(url).step(Step::Silence(Duration::from_millis(200)));
    // A server with TWILIO_AUTH_TOKEN refuses unsigned upgrades (403): sign as Twilio would.
    if let Some(token) = std::env::var("TWILIO_AUTH_TOKEN")
        .ok()
        .filter(|t| !t.is_empty())
    {
        println!("signature         X-Twilio-Signature from TWILIO_AUTH_TOKEN");
        call = call.signed(&token);
    }
    call.impairments = Impairments {
        loss_pct: impair.loss,
        jitter_ms: impair.jitter,
        gain_db: impair.gain,
        seed: impair.seed,
    };
    if impair.silence {
        println!("caller audio      silence ({timeout} s)");
        call = call.step(Step::Silence(Duration::from_secs(timeout)));
    } else if let Some(audio) = audio {
        let speech = wav::read_wav_as_mulaw_8k(&audio)?;
        println!(
            "caller audio      {} ({:.2} s)",
            audio.display(),
            speech.len() as f64 / 8000.0
        );
        call = call.step(Step::Speak(speech.into()));
        for digit in dtmf.iter().flat_map(|d| d.chars()) {
            call = call.step(Step::Dtmf(digit.to_string()));
        }
        call = call.step(Step::WaitForReplyEnd(Duration::from_secs(timeout)));
    }
    let report = call
        .step(Step::Silence(Duration::from_millis(300)))
        .run()
        .await?;
    print!("{report}");
    if let Some(path) = out {
        wav::write_mulaw_8k_as_wav(&path, &report.heard)?;
        println!("heard audio       {}", path.display());
    }
    if report.response_latencies_ms.is_empty() && !impair.silence {
        anyhow::bail!("no reply was heard within {timeout} s");
    }
    Ok(())
}
