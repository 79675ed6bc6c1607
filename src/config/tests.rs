use super::*;
use std::collections::HashMap;

fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |k| map.get(k).cloned()
}

#[test]
fn embedded_defaults_are_valid() {
    let c = Config::load_with_env(None, env_of(&[])).expect("defaults");
    assert_eq!(c.turn.end_of_turn_ms, 600);
    assert_eq!(c.playout.lead_ms, 120);
    assert_eq!(c.limits.max_message_bytes, 65536);
    assert_eq!(c.agent.kind, AgentKind::Echo);
}

#[test]
fn env_overrides_and_aliases() {
    let c = Config::load_with_env(
        None,
        env_of(&[
            ("VOXBRIDGE_LISTEN", "127.0.0.1:0"),
            ("VOXBRIDGE_TURN_END_OF_TURN_MS", "800"),
            ("VOXBRIDGE_LOG_FORMAT", "json"),
        ]),
    )
    .expect("config");
    assert_eq!(c.server.listen.to_string(), "127.0.0.1:0");
    assert_eq!(c.turn.end_of_turn_ms, 800);
    assert_eq!(c.log.format, LogFormat::Json);
}

#[test]
fn errors_name_the_key() {
    let e = Config::from_toml_str("[server]\nlisten = \"nonsense\"").unwrap_err();
    assert!(e.to_string().contains("server.listen"), "{e}");
    let e = Config::from_toml_str("[server]\nlisen = \"1.2.3.4:5\"").unwrap_err();
    assert!(e.to_string().contains("server.lisen") && e.to_string().contains("unknown"));
    let e = Config::from_toml_str("[playout]\nchunk_ms = 10").unwrap_err();
    assert!(e.to_string().contains("playout.chunk_ms"), "{e}");
    let e = Config::from_toml_str("[agent]\nkind = \"oracle\"").unwrap_err();
    assert!(e.to_string().contains("agent.kind"), "{e}");
    let e = Config::load_with_env(None, env_of(&[("VOXBRIDGE_TURN_END_OF_TURN_MS", "soon")]))
        .unwrap_err();
    assert!(e.to_string().contains("turn.end_of_turn_ms"), "{e}");
}

#[test]
fn recording_defaults_and_checks() {
    let c = Config::default();
    assert!(c.recording.enabled);
    assert_eq!(c.recording.dir, "data/recordings");
    assert_eq!(c.recording.retention_days, 30);
    let e = Config::from_toml_str("[recording]\ndir = \"\"").unwrap_err();
    assert!(e.to_string().contains("recording.dir"), "{e}");
    let e = Config::from_toml_str("[recording]\nwriter_queue = 0").unwrap_err();
    assert!(e.to_string().contains("recording.writer_queue"), "{e}");
    let off = Config::from_toml_str("[recording]\nenabled = false\ndir = \"\"").unwrap();
    assert!(!off.recording.enabled);
}

#[test]
fn file_overrides_defaults() {
    let dir = std::env::temp_dir().join(format!("voxbridge-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp dir");
    let path = dir.join("c.toml");
    std::fs::write(&path, "[playout]\nlead_ms = 200\n").expect("write");
    let c = Config::load_with_env(Some(&path), env_of(&[])).expect("config");
    assert_eq!(c.playout.lead_ms, 200);
    assert_eq!(c.turn.end_of_turn_ms, 600);
    let missing = Config::load_with_env(Some(&dir.join("nope.toml")), env_of(&[]));
    assert!(missing.unwrap_err().to_string().contains("nope.toml"));
}

#[test]
fn admission_keys() {
    let c = Config::default();
    assert_eq!(c.limits.header_read_timeout_secs, 10);
    assert_eq!(c.limits.max_connections_per_ip, 200);
    assert_eq!(c.limits.start_timeout_secs, 10);
    assert!(c.limits.max_connections > c.limits.max_calls);
    let nets = c
        .security
        .trusted_proxy_networks()
        .expect("default networks");
    assert_eq!(nets.len(), 6);
    let e = Config::from_toml_str("[limits]\nmax_calls = 100\nmax_connections = 100").unwrap_err();
    assert!(e.to_string().contains("limits.max_connections"), "{e}");
    let e = Config::from_toml_str("[security]\ntrusted_proxies = [\"10.0.0.0/33\"]").unwrap_err();
    assert!(e.to_string().contains("security.trusted_proxies"), "{e}");
    let e = Config::from_toml_str("[limits]\nheader_read_timeout_secs = 0").unwrap_err();
    assert!(e.to_string().contains("header_read_timeout_secs"), "{e}");
    let c = Config::load_with_env(
        None,
        env_of(&[(
            "VOXBRIDGE_SECURITY_TRUSTED_PROXIES",
            "10.1.0.0/16, 192.0.2.7",
        )]),
    )
    .expect("env list");
    assert_eq!(c.security.trusted_proxies, ["10.1.0.0/16", "192.0.2.7"]);
    let nets = c.security.trusted_proxy_networks().expect("nets");
    assert_eq!(nets[1].to_string(), "192.0.2.7/32");
}
