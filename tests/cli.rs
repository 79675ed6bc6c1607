//! The `voxbridge` binary itself: config errors, and SIGTERM draining live calls.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::fixture;
use voxbridge::sim::{SimCall, Step};

fn voxbridge() -> Command {
    Command::new(env!("CARGO_BIN_EXE_voxbridge"))
}

#[test]
fn bad_config_names_the_key_and_exits_nonzero() {
    let dir = std::env::temp_dir().join(format!("voxbridge-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp");
    let path = dir.join("bad.toml");
    std::fs::write(&path, "[turn]\nend_of_turn_ms = \"soon\"\n").expect("write");
    let out = voxbridge()
        .args(["serve", "--config"])
        .arg(&path)
        .output()
        .expect("run");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("turn.end_of_turn_ms"), "{stderr}");

    let out = voxbridge()
        .args(["serve"])
        .env("VOXBRIDGE_LISTEN", "not-an-address")
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("server.listen"));
}

#[tokio::test]
async fn sigterm_drains_then_closes_calls() {
    let mut child = voxbridge()
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("VOXBRIDGE_SERVER_DRAIN_TIMEOUT_SECS", "2")
        .env("VOXBRIDGE_LOG_FORMAT", "text")
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let stderr = child.stderr.take().expect("stderr");
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(rest) = line.split("addr=").nth(1) {
                let addr = rest.split_whitespace().next().unwrap_or("").to_owned();
                let _ = addr_tx.send(addr);
            }
            eprintln!("server: {line}");
        }
    });
    let addr = addr_rx
        .recv_timeout(Duration::from_secs(10))
        .expect("listen address logged");
    let url = format!("ws://{addr}/twilio/media");

    // A long call: it is still going when SIGTERM arrives, and outlives the 2 s drain.
    let call = SimCall::new(&url)
        .step(Step::Speak(fixture("hello-8k.wav")))
        .step(Step::Silence(Duration::from_secs(20)));
    let call = tokio::spawn(call.run());
    tokio::time::sleep(Duration::from_secs(1)).await;
    let pid = child.id().to_string();
    let sent = Instant::now();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill")
            .success()
    );

    // New calls are refused while draining.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        SimCall::new(&url).run().await.is_err(),
        "a new call was accepted while draining"
    );

    let report = call.await.expect("task").expect("call");
    let closed_after = sent.elapsed();
    assert_eq!(
        report.closed_by_server.as_ref().map(|c| c.0),
        Some(1001),
        "{report}"
    );
    assert!(
        closed_after >= Duration::from_millis(1800),
        "closed after {closed_after:?}"
    );

    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "server did not exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "exit status {status}");
}
