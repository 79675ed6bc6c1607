//! The deployment and monitoring files fit together: checked without Docker, Prometheus or a
//! network, so a renamed metric, a moved file or an alert without a test fails `cargo test`.
//!
//! - `docker/docker-compose.yml`: every service has an `image` or a `build` (whose context and
//!   Dockerfile exist), every bind-mount source exists in the repository (paths relative to
//!   `docker/`), named volumes are declared, and Prometheus' rule files are mounted where its
//!   config looks for them.
//! - `monitoring/prometheus.yml`: scrapes job `voxbridge`, sends to Alertmanager, and the rule
//!   files it names exist (relative to the config file).
//! - `monitoring/grafana/`: the dashboard JSON parses, every panel queries the provisioned
//!   datasource by uid, and every query names only metrics voxbridge exports ([`METRICS`], `up`,
//!   `process_*`); the dashboard provider's path is where compose mounts the dashboards.
//! - `monitoring/alerts.yml`: every alert has a `severity` (warning | critical), `summary`,
//!   `description` and a `runbook_url` pointing at a section of `monitoring/RUNBOOK.md`, queries
//!   only known metrics, and has at least one firing case in `monitoring/alerts_test.yml`.
//!
//! What the files *mean* is tested elsewhere: `promtool check config`, `promtool check rules`,
//! `promtool test rules` and `amtool check-config` in CI, and `scripts/prometheus-e2e.sh`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use yaml_rust2::{Yaml, YamlLoader};

/// Every metric voxbridge exports (histograms by base name). Keep in sync with `src/metrics.rs`
/// and the README's metrics table.
const METRICS: &[&str] = &[
    "voxbridge_active_calls",
    "voxbridge_calls_total",
    "voxbridge_calls_refused_total",
    "voxbridge_media_frames_received_total",
    "voxbridge_media_frames_sent_total",
    "voxbridge_protocol_errors_total",
    "voxbridge_response_latency_seconds",
    "voxbridge_responses_total",
    "voxbridge_barge_ins_total",
    "voxbridge_dtmf_digits_total",
    "voxbridge_outbound_backpressure_total",
    "voxbridge_status_callbacks_total",
    "voxbridge_call_mos",
    "voxbridge_call_jitter_seconds",
    "voxbridge_call_packet_loss_ratio",
    "voxbridge_call_clipping_ratio",
    "voxbridge_call_silence_ratio",
    "voxbridge_calls_by_quality_total",
    "voxbridge_call_quality_issues_total",
    "voxbridge_quality_alerts_total",
    "voxbridge_media_frames_lost_total",
    "voxbridge_playout_underruns_total",
    "voxbridge_provider_errors_total",
    "voxbridge_alert_webhook_deliveries_total",
    "voxbridge_call_reports_dropped_total",
];

/// The histograms among [`METRICS`]: queried as `<name>_bucket`, `_count` and `_sum`.
const HISTOGRAMS: &[&str] = &[
    "voxbridge_response_latency_seconds",
    "voxbridge_call_mos",
    "voxbridge_call_jitter_seconds",
    "voxbridge_call_packet_loss_ratio",
    "voxbridge_call_clipping_ratio",
    "voxbridge_call_silence_ratio",
];

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    let path = repo().join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

fn load_yaml(rel: &str) -> Yaml {
    let mut docs =
        YamlLoader::load_from_str(&read(rel)).unwrap_or_else(|e| panic!("parse {rel}: {e}"));
    assert_eq!(docs.len(), 1, "{rel}: expected one YAML document");
    docs.remove(0)
}

fn hash_keys(yaml: &Yaml) -> Vec<String> {
    yaml.as_hash()
        .map(|h| {
            h.keys()
                .filter_map(|k| k.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

fn strings(yaml: &Yaml) -> Vec<String> {
    yaml.as_vec()
        .map(|v| {
            v.iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// `path` exists and, resolved, lies inside the repository.
fn exists_in_repo(path: &Path) -> bool {
    let (Ok(resolved), Ok(root)) = (path.canonicalize(), repo().canonicalize()) else {
        return false;
    };
    resolved.starts_with(root)
}

// ------------------------------------------------------------------------------------------
// PromQL: the metric names an expression selects.

/// Operators, modifiers and aggregations (these may be followed by `by (…)` instead of `(`).
const PROMQL_KEYWORDS: &[&str] = &[
    "and",
    "or",
    "unless",
    "bool",
    "offset",
    "inf",
    "nan",
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
];
/// Keywords followed by a parenthesised label list (not metric names).
const LABEL_LIST_KEYWORDS: &[&str] = &[
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
];

/// Metric names selected by a PromQL (or Grafana-templated PromQL) expression: identifiers that
/// are not functions, keywords or label names. String literals, label matchers `{…}` (where
/// Grafana's `$instance` lives), ranges `[…]` (`$__rate_interval`) and `by (…)`-style label
/// lists are skipped.
fn promql_metric_names(expr: &str) -> BTreeSet<String> {
    let chars: Vec<char> = expr.chars().collect();
    let mut names = BTreeSet::new();
    let mut i = 0;
    let skip_to = |mut i: usize, close: char| {
        let open = chars[i];
        let mut depth = 0;
        while i < chars.len() {
            if chars[i] == open {
                depth += 1;
            } else if chars[i] == close {
                depth -= 1;
                if depth == 0 {
                    return i + 1;
                }
            } else if chars[i] == '"' || chars[i] == '\'' {
                let quote = chars[i];
                i += 1;
                while i < chars.len() && chars[i] != quote {
                    i += if chars[i] == '\\' { 2 } else { 1 };
                }
            }
            i += 1;
        }
        panic!("unbalanced {open:?} in {expr:?}");
    };
    while i < chars.len() {
        let c = chars[i];
        match c {
            '{' => i = skip_to(i, '}'),
            '[' => i = skip_to(i, ']'),
            '"' | '\'' | '`' => {
                i += 1;
                while i < chars.len() && chars[i] != c {
                    i += if chars[i] == '\\' { 2 } else { 1 };
                }
                i += 1;
            }
            '0'..='9' | '.' => {
                // a number or a duration (0.95, 1e3, 5m)
                while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                    i += 1;
                }
            }
            '$' => {
                // a Grafana variable outside a selector, e.g. a whole `$query`: not allowed
                panic!("template variable outside a selector or range in {expr:?}");
            }
            c if c.is_ascii_alphabetic() || c == '_' || c == ':' => {
                let start = i;
                while i < chars.len()
                    && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == ':')
                {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                let mut next = i;
                while next < chars.len() && chars[next].is_whitespace() {
                    next += 1;
                }
                let followed_by_paren = chars.get(next) == Some(&'(');
                if LABEL_LIST_KEYWORDS.contains(&word.as_str()) {
                    if followed_by_paren {
                        i = skip_to(next, ')');
                    }
                } else if followed_by_paren || PROMQL_KEYWORDS.contains(&word.as_str()) {
                    // a function or aggregation (its arguments are scanned next), or a keyword
                } else {
                    names.insert(word);
                }
            }
            _ => i += 1,
        }
    }
    names
}

/// Metric names in `expr` that voxbridge does not export.
fn unknown_metrics(expr: &str) -> Vec<String> {
    promql_metric_names(expr)
        .into_iter()
        .filter(|name| {
            let base = ["_bucket", "_count", "_sum"]
                .iter()
                .find_map(|suffix| {
                    name.strip_suffix(suffix)
                        .filter(|base| HISTOGRAMS.contains(base))
                })
                .unwrap_or(name);
            !(METRICS.contains(&base) || base == "up" || base.starts_with("process_"))
        })
        .collect()
}

#[test]
fn promql_metric_name_extraction() {
    let expr = r#"histogram_quantile(0.95, sum by (job, le) (rate(voxbridge_call_mos_bucket{job="voxbridge", instance=~"$instance", le!="{x}"}[$__rate_interval])))
        / on (job) group_left (provider) clamp_min(sum without (reason) (voxbridge_calls_total offset 5m), 1) > 0.1
        and on(job) up == 1 unless absent(process_open_fds) or sum(increase(my_app_total[1h])) by (instance)"#;
    let expected: BTreeSet<String> = [
        "voxbridge_call_mos_bucket",
        "voxbridge_calls_total",
        "up",
        "process_open_fds",
        "my_app_total",
    ]
    .map(String::from)
    .into();
    assert_eq!(promql_metric_names(expr), expected);
    assert_eq!(unknown_metrics(expr), vec!["my_app_total".to_owned()]);
    // A renamed histogram, or a suffix on a counter, is caught.
    assert_eq!(
        unknown_metrics("rate(voxbridge_call_moss_bucket[5m]) + voxbridge_calls_total_count"),
        vec!["voxbridge_call_moss_bucket", "voxbridge_calls_total_count"]
    );
}

// ------------------------------------------------------------------------------------------
// docker/docker-compose.yml

/// One volume entry of a compose service: (source, target, is a bind mount).
fn volume_entry(volume: &Yaml) -> (String, String, bool) {
    if let Some(short) = volume.as_str() {
        let mut parts = short.split(':');
        let source = parts.next().unwrap_or_default().to_owned();
        let target = parts.next().unwrap_or_default().to_owned();
        let bind = source.starts_with('.') || source.starts_with('/') || source.starts_with('~');
        (source, target, bind)
    } else {
        let source = volume["source"].as_str().unwrap_or_default().to_owned();
        let target = volume["target"].as_str().unwrap_or_default().to_owned();
        (source, target, volume["type"].as_str() == Some("bind"))
    }
}

#[test]
fn compose_services_have_an_image_or_build_and_mounts_exist() {
    let compose = load_yaml("docker/docker-compose.yml");
    let docker_dir = repo().join("docker");
    let services = compose["services"]
        .as_hash()
        .expect("docker-compose.yml: services");
    let names = hash_keys(&compose["services"]);
    for required in ["voxbridge", "prometheus", "alertmanager", "grafana"] {
        assert!(names.iter().any(|n| n == required), "no service {required}");
    }
    let declared_volumes = hash_keys(&compose["volumes"]);

    let mut bind_mounts = 0;
    for (name, service) in services {
        let name = name.as_str().expect("service name");
        let build = &service["build"];
        assert!(
            service["image"].as_str().is_some() || !build.is_badvalue(),
            "service {name} has neither image nor build"
        );
        if !build.is_badvalue() {
            let (context, dockerfile) = match build.as_str() {
                Some(context) => (context, "Dockerfile"),
                None => (
                    build["context"].as_str().unwrap_or("."),
                    build["dockerfile"].as_str().unwrap_or("Dockerfile"),
                ),
            };
            let context = docker_dir.join(context);
            assert!(
                exists_in_repo(&context),
                "service {name}: build context {} missing",
                context.display()
            );
            assert!(
                context.join(dockerfile).is_file(),
                "service {name}: dockerfile {dockerfile} not in {}",
                context.display()
            );
        }
        for volume in service["volumes"].as_vec().into_iter().flatten() {
            let (source, target, bind) = volume_entry(volume);
            assert!(
                target.starts_with('/'),
                "service {name}: volume {volume:?} has no absolute target"
            );
            if bind {
                bind_mounts += 1;
                assert!(
                    source.starts_with("../") || source.starts_with("./"),
                    "service {name}: bind mount {source} must be relative to docker/"
                );
                assert!(
                    exists_in_repo(&docker_dir.join(&source)),
                    "service {name}: bind mount source {source} (relative to docker/) does not exist in the repository"
                );
            } else {
                assert!(
                    declared_volumes.contains(&source),
                    "service {name}: named volume {source} is not declared under top-level volumes"
                );
            }
        }
    }
    assert!(
        bind_mounts >= 5,
        "expected the monitoring files to be bind-mounted"
    );

    let voxbridge = &compose["services"]["voxbridge"];
    let env = &voxbridge["environment"];
    assert_eq!(env["VOXBRIDGE_LOG_FORMAT"].as_str(), Some("json"));
    let reports = env["VOXBRIDGE_QUALITY_REPORTS_DIR"]
        .as_str()
        .expect("VOXBRIDGE_QUALITY_REPORTS_DIR");
    assert!(
        voxbridge["volumes"]
            .as_vec()
            .into_iter()
            .flatten()
            .map(volume_entry)
            .any(|(_, target, bind)| !bind && target == reports),
        "the reports directory {reports} is not on a named volume"
    );
    let healthcheck = format!("{:?}", voxbridge["healthcheck"]["test"]);
    assert!(
        healthcheck.contains("/healthz"),
        "healthcheck: {healthcheck}"
    );
}

#[test]
fn compose_mounts_prometheus_rule_files_where_the_config_expects_them() {
    let compose = load_yaml("docker/docker-compose.yml");
    let config = load_yaml("monitoring/prometheus.yml");
    let mounts: Vec<(String, String, bool)> = compose["services"]["prometheus"]["volumes"]
        .as_vec()
        .expect("prometheus volumes")
        .iter()
        .map(volume_entry)
        .collect();
    let target_of = |source: &str| {
        mounts
            .iter()
            .find(|(s, _, bind)| *bind && s == source)
            .map(|(_, t, _)| t.clone())
    };
    let config_target =
        target_of("../monitoring/prometheus.yml").expect("prometheus.yml is mounted");
    let config_dir = Path::new(&config_target).parent().expect("config dir");
    let command = format!("{:?}", compose["services"]["prometheus"]["command"]);
    assert!(
        command.contains(&format!("--config.file={config_target}")),
        "prometheus must run with the mounted config: {command}"
    );
    for rule_file in strings(&config["rule_files"]) {
        let source = format!("../monitoring/{rule_file}");
        let target = target_of(&source)
            .unwrap_or_else(|| panic!("rule file {rule_file} is not mounted into prometheus"));
        assert_eq!(
            Path::new(&target),
            config_dir.join(&rule_file),
            "rule file {rule_file} mounted elsewhere than the config expects"
        );
    }
}

// ------------------------------------------------------------------------------------------
// monitoring/prometheus.yml

#[test]
fn prometheus_config_scrapes_voxbridge_and_its_rule_files_exist() {
    let config = load_yaml("monitoring/prometheus.yml");
    let rule_files = strings(&config["rule_files"]);
    assert!(
        rule_files.iter().any(|f| f == "alerts.yml"),
        "rule_files: {rule_files:?}"
    );
    for rule_file in &rule_files {
        assert!(
            !rule_file.contains('*'),
            "{rule_file}: name files explicitly"
        );
        let path = repo().join("monitoring").join(rule_file);
        assert!(path.is_file(), "rule file {} missing", path.display());
    }
    let jobs = config["scrape_configs"].as_vec().expect("scrape_configs");
    let voxbridge = jobs
        .iter()
        .find(|job| job["job_name"].as_str() == Some("voxbridge"))
        .expect("a scrape job named voxbridge (the alerts select job=\"voxbridge\")");
    let targets: Vec<String> = voxbridge["static_configs"]
        .as_vec()
        .into_iter()
        .flatten()
        .flat_map(|sc| strings(&sc["targets"]))
        .collect();
    assert_eq!(targets, ["voxbridge:8080"]);
    let alertmanagers: Vec<String> = config["alerting"]["alertmanagers"]
        .as_vec()
        .into_iter()
        .flatten()
        .flat_map(|am| am["static_configs"].as_vec().cloned().unwrap_or_default())
        .flat_map(|sc| strings(&sc["targets"]))
        .collect();
    assert_eq!(alertmanagers, ["alertmanager:9093"]);
}

// ------------------------------------------------------------------------------------------
// Grafana

fn collect_panels<'a>(panels: &'a serde_json::Value, out: &mut Vec<&'a serde_json::Value>) {
    for panel in panels.as_array().into_iter().flatten() {
        out.push(panel);
        collect_panels(&panel["panels"], out);
    }
}

#[test]
fn grafana_dashboard_queries_known_metrics_from_the_provisioned_datasource() {
    let datasources = load_yaml("monitoring/grafana/provisioning/datasources/prometheus.yml");
    let datasource = &datasources["datasources"][0];
    assert_eq!(datasource["type"].as_str(), Some("prometheus"));
    assert_eq!(datasource["url"].as_str(), Some("http://prometheus:9090"));
    let uid = datasource["uid"].as_str().expect("datasource uid");

    let dashboard: serde_json::Value =
        serde_json::from_str(&read("monitoring/grafana/dashboards/voxbridge.json"))
            .expect("dashboard JSON");
    assert!(dashboard["uid"].is_string() && dashboard["title"].is_string());
    let mut panels = Vec::new();
    collect_panels(&dashboard["panels"], &mut panels);

    let mut used = BTreeSet::new();
    let mut queries = 0;
    for panel in panels.iter().filter(|p| p["type"] != "row") {
        let title = panel["title"].as_str().unwrap_or("?");
        assert_eq!(
            panel["datasource"]["uid"].as_str(),
            Some(uid),
            "panel {title:?}: datasource must be the provisioned uid {uid}"
        );
        let targets = panel["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "panel {title:?} has no query");
        for target in targets {
            let expr = target["expr"].as_str().expect("target expr");
            queries += 1;
            let unknown = unknown_metrics(expr);
            assert!(
                unknown.is_empty(),
                "panel {title:?} queries unknown metrics {unknown:?}: {expr}"
            );
            if let Some(ds) = target.get("datasource") {
                assert_eq!(ds["uid"].as_str(), Some(uid), "panel {title:?}");
            }
            used.extend(promql_metric_names(expr));
        }
    }
    assert!(queries >= 10, "only {queries} queries");
    for wanted in [
        "voxbridge_active_calls",
        "voxbridge_calls_total",
        "voxbridge_calls_by_quality_total",
        "voxbridge_call_mos_bucket",
        "voxbridge_call_jitter_seconds_bucket",
        "voxbridge_call_packet_loss_ratio_bucket",
        "voxbridge_response_latency_seconds_bucket",
        "voxbridge_protocol_errors_total",
        "voxbridge_barge_ins_total",
        "voxbridge_quality_alerts_total",
        "voxbridge_provider_errors_total",
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
    ] {
        assert!(used.contains(wanted), "no panel shows {wanted}");
    }

    // The dashboard provider reads the directory compose mounts the dashboards into.
    let providers = load_yaml("monitoring/grafana/provisioning/dashboards/voxbridge.yml");
    let path = providers["providers"][0]["options"]["path"]
        .as_str()
        .expect("provider path");
    let compose = load_yaml("docker/docker-compose.yml");
    let grafana_mounts: Vec<(String, String, bool)> = compose["services"]["grafana"]["volumes"]
        .as_vec()
        .expect("grafana volumes")
        .iter()
        .map(volume_entry)
        .collect();
    assert!(
        grafana_mounts
            .iter()
            .any(|(s, t, bind)| *bind && s == "../monitoring/grafana/dashboards" && t == path),
        "compose must mount ../monitoring/grafana/dashboards at {path}"
    );
    for dir in ["datasources", "dashboards"] {
        let source = format!("../monitoring/grafana/provisioning/{dir}");
        assert!(
            grafana_mounts
                .iter()
                .any(|(s, t, _)| *s == source && *t == format!("/etc/grafana/provisioning/{dir}")),
            "compose must mount {source}"
        );
    }
}

// ------------------------------------------------------------------------------------------
// Alert rules, their runbook and their tests

/// GitHub's anchor for a Markdown heading.
fn github_anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

#[test]
fn every_alert_is_annotated_has_a_runbook_section_and_a_firing_test() {
    let rules = load_yaml("monitoring/alerts.yml");
    let runbook = read("monitoring/RUNBOOK.md");
    let anchors: BTreeSet<String> = runbook
        .lines()
        .filter_map(|line| line.strip_prefix("## "))
        .map(github_anchor)
        .collect();

    let mut alerts = BTreeSet::new();
    for group in rules["groups"].as_vec().expect("groups") {
        for rule in group["rules"].as_vec().expect("rules") {
            let Some(name) = rule["alert"].as_str() else {
                continue; // a recording rule
            };
            assert!(alerts.insert(name.to_owned()), "alert {name} defined twice");
            let severity = rule["labels"]["severity"].as_str();
            assert!(
                matches!(severity, Some("warning" | "critical")),
                "{name}: severity {severity:?}"
            );
            for key in ["summary", "description", "runbook_url"] {
                let value = rule["annotations"][key].as_str().unwrap_or("");
                assert!(!value.trim().is_empty(), "{name}: no {key} annotation");
            }
            let runbook_url = rule["annotations"]["runbook_url"].as_str().unwrap_or("");
            let (page, anchor) = runbook_url
                .split_once('#')
                .unwrap_or_else(|| panic!("{name}: runbook_url {runbook_url} has no #anchor"));
            assert!(
                page.ends_with("monitoring/RUNBOOK.md"),
                "{name}: runbook_url {runbook_url}"
            );
            assert!(
                anchors.contains(anchor),
                "{name}: RUNBOOK.md has no section for #{anchor}"
            );
            assert!(!rule["for"].is_badvalue(), "{name}: no `for:`");
            let expr = rule["expr"].as_str().expect("expr");
            let unknown = unknown_metrics(expr);
            assert!(
                unknown.is_empty(),
                "{name} uses unknown metrics {unknown:?}"
            );
        }
    }
    assert!(alerts.len() >= 9, "only {} alerts", alerts.len());

    let tests = load_yaml("monitoring/alerts_test.yml");
    assert!(
        strings(&tests["rule_files"])
            .iter()
            .any(|f| f == "alerts.yml"),
        "alerts_test.yml must load alerts.yml"
    );
    let mut fired = BTreeSet::new();
    let mut tested = BTreeSet::new();
    for case in tests["tests"].as_vec().expect("tests") {
        for check in case["alert_rule_test"].as_vec().into_iter().flatten() {
            let name = check["alertname"].as_str().expect("alertname").to_owned();
            assert!(
                alerts.contains(&name),
                "alerts_test.yml tests unknown alert {name}"
            );
            if check["exp_alerts"].as_vec().is_some_and(|v| !v.is_empty()) {
                fired.insert(name.clone());
            }
            tested.insert(name);
        }
    }
    let never_fired: Vec<_> = alerts.difference(&fired).collect();
    assert!(
        never_fired.is_empty(),
        "alerts without a firing case in alerts_test.yml: {never_fired:?}"
    );
    assert_eq!(tested, alerts);
}
