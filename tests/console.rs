//! The operator console in a real browser: headless Chromium driven through WebDriver
//! (Debian's `chromedriver`, started here on a free 127.0.0.1 port) against the real server.
//!
//! - sign in with an API token; a call run by `sim` through the cascade (Deepgram, OpenAI and
//!   ElevenLabs fakes) appears on the live page with its figures and leaves it after the
//!   hang-up button ends it; its record page shows the transcript and a recording that the
//!   `<audio>` element loads (duration > 0) and the waveform decodes (two channels);
//! - a campaign created from the form with a CSV (one bad row, reported with its line) runs
//!   against the Twilio REST fake to completion, and its CSV export has a row per contact.
//!
//! Every page is screenshotted into `target/console-screenshots/`; every navigation and every
//! resource it loaded is checked for a status below 500 (Resource Timing `responseStatus`);
//! with axe-core available (`target/axe/axe.min.js`, fetched by `scripts/test`), each page has
//! no serious or critical accessibility violation. Without Chromium/chromedriver (or axe) the
//! browser parts are skipped with a message, unless `VOXBRIDGE_REQUIRE_BROWSER=1`.
//!
//! Without a browser: session, CSRF and origin rules over plain HTTP.

mod common;
mod dialer_support;

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::stack::{call_saying, stack};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};
use voxbridge::fakes::openai_chat::FakeReply;
use voxbridge::server::Server;
use voxbridge::sim::Step;

const TOKEN: &str = "console-test-token-0123456789";

/// Every server in this binary requires [`TOKEN`] (set before any server starts).
fn set_token() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    // SAFETY: set once, before any server (or other thread of this test binary) reads it.
    ONCE.call_once(|| unsafe { std::env::set_var("VOXBRIDGE_API_TOKENS", TOKEN) });
}

/// One browser at a time (two Chromiums on a small machine make the timings flaky).
static BROWSER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn require_browser() -> bool {
    std::env::var("VOXBRIDGE_REQUIRE_BROWSER").is_ok_and(|v| v == "1")
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// chromedriver + headless Chromium with a fresh profile; killed on drop.
struct Browser {
    client: Client,
    driver: Child,
    profile: PathBuf,
    shots: PathBuf,
    axe: Option<String>,
}

impl Drop for Browser {
    /// Kills chromedriver's whole process group: Chromium outlives a killed chromedriver.
    fn drop(&mut self) {
        let group = format!("-{}", self.driver.id());
        let _ = Command::new("kill")
            .args(["-s", "KILL", "--", &group])
            .status();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// The browser, or `None` (skipped) when Chromium or chromedriver is not installed.
async fn browser() -> Option<Browser> {
    let (chromium, driver) = ("/usr/bin/chromium", "/usr/bin/chromedriver");
    if !std::path::Path::new(chromium).exists() || !std::path::Path::new(driver).exists() {
        assert!(
            !require_browser(),
            "VOXBRIDGE_REQUIRE_BROWSER=1 but {chromium} or {driver} is missing \
             (apt-get install chromium chromium-driver)"
        );
        eprintln!("SKIPPED: console browser test: {chromium} or {driver} not installed");
        return None;
    }
    let port = free_port();
    let child = Command::new(driver)
        // Its own process group, with the Chromium it starts, so Drop can end them all.
        .process_group(0)
        .arg(format!("--port={port}"))
        .arg("--allowed-ips=127.0.0.1")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromedriver");
    let profile = std::env::temp_dir().join(format!(
        "voxbridge-console-chromium-{}-{port}",
        std::process::id()
    ));
    let mut b = Browser {
        client: wait_for_driver(port, chromium, &profile).await,
        driver: child,
        profile,
        shots: target_dir().join("console-screenshots"),
        axe: None,
    };
    std::fs::create_dir_all(&b.shots).unwrap();
    let axe = target_dir().join("axe").join("axe.min.js");
    match std::fs::read_to_string(&axe) {
        Ok(js) => b.axe = Some(js),
        Err(_) => {
            assert!(
                !require_browser(),
                "VOXBRIDGE_REQUIRE_BROWSER=1 but {} is missing (scripts/test fetches it)",
                axe.display()
            );
            eprintln!(
                "SKIPPED: accessibility checks: {} not found (scripts/test fetches axe-core)",
                axe.display()
            );
        }
    }
    Some(b)
}

async fn wait_for_driver(port: u16, chromium: &str, profile: &std::path::Path) -> Client {
    let url = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while reqwest::get(format!("{url}/status")).await.is_err() {
        assert!(Instant::now() < deadline, "chromedriver did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut caps = serde_json::Map::new();
    caps.insert("browserName".into(), json!("chrome"));
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": chromium,
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync",
                "--window-size=1366,900",
                format!("--user-data-dir={}", profile.display()),
            ],
        }),
    );
    ClientBuilder::rustls()
        .expect("rustls")
        .capabilities(caps)
        .connect(&url)
        .await
        .expect("WebDriver session")
}

impl Browser {
    async fn goto(&self, url: &str) {
        self.client.goto(url).await.expect("goto");
    }

    /// The page's own status and every resource's, all below 500; a screenshot; axe-core.
    async fn check_page(&self, name: &str) {
        let statuses = self
            .client
            .execute(
                "const n = performance.getEntriesByType('navigation').map(e => [e.name, e.responseStatus]);
                 const r = performance.getEntriesByType('resource').map(e => [e.name, e.responseStatus]);
                 return n.concat(r);",
                vec![],
            )
            .await
            .expect("statuses");
        for entry in statuses.as_array().unwrap() {
            let status = entry[1].as_u64().unwrap_or(0);
            assert!(status < 500, "{name}: {} answered {status}", entry[0]);
        }
        let png = self.client.screenshot().await.expect("screenshot");
        std::fs::write(self.shots.join(format!("{name}.png")), png).unwrap();
        if let Some(axe) = &self.axe {
            self.client.execute(axe, vec![]).await.expect("inject axe");
            let result = self
                .client
                .execute_async(
                    "const done = arguments[arguments.length - 1];
                     axe.run(document, {resultTypes: ['violations']})
                        .then(r => done(r.violations.filter(v => v.impact === 'serious' || v.impact === 'critical')
                            .map(v => ({id: v.id, impact: v.impact, nodes: v.nodes.map(n => n.target.join(' '))}))))
                        .catch(e => done([{id: 'axe-error', impact: String(e)}]));",
                    vec![],
                )
                .await
                .expect("axe run");
            assert_eq!(
                result.as_array().map(Vec::len),
                Some(0),
                "{name}: accessibility violations: {result}"
            );
        }
    }

    /// The text of `css`, waiting up to 10 s for it (a click that submits a form returns
    /// before the next page is there).
    async fn text_of(&self, css: &str) -> String {
        self.client
            .wait()
            .at_most(Duration::from_secs(10))
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css}: {e}"))
            .text()
            .await
            .unwrap()
    }

    /// Poll `script` (returning a value) until `ok` holds, at most `timeout`.
    async fn wait_js(&self, script: &str, timeout: Duration, ok: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let v = self.client.execute(script, vec![]).await.expect("js");
            if ok(&v) {
                return v;
            }
            if Instant::now() >= deadline {
                let page = self
                    .client
                    .execute(
                        "return document.body ? document.body.innerText : '';",
                        vec![],
                    )
                    .await
                    .unwrap_or_default();
                panic!(
                    "timed out waiting for {script}: {v}\npage:\n{}",
                    page.as_str().unwrap_or("")
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn sign_in(&self, base: &str, shot: &str) {
        self.goto(&format!("{base}/console/live")).await;
        let url = self.client.current_url().await.unwrap();
        assert_eq!(url.path(), "/console/signin", "unsigned → sign-in page");
        self.check_page(shot).await;
        let field = self.client.find(Locator::Id("token")).await.unwrap();
        field.send_keys("wrong-token-0000000000").await.unwrap();
        self.client
            .find(Locator::Id("signin"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        assert!(self.text_of("#signin-error").await.contains("not accepted"));
        let field = self.client.find(Locator::Id("token")).await.unwrap();
        field.send_keys(TOKEN).await.unwrap();
        self.client
            .find(Locator::Id("signin"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        // The click returns before the next page has loaded: wait (bounded) for it.
        let mut path = String::new();
        for _ in 0..100 {
            path = self.client.current_url().await.unwrap().path().to_owned();
            if path == "/console/live" {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert_eq!(path, "/console/live", "signed in");
    }
}

fn base(server: &Server) -> String {
    format!("http://{}", server.local_addr())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn live_call_record_and_recording_in_a_browser() {
    set_token();
    let _one = BROWSER.lock().await;
    let Some(b) = browser().await else { return };
    let sqlite = format!(
        "sqlite://{}/console-e2e-{}.db",
        std::env::temp_dir().display(),
        free_port()
    );
    let stack = stack(|c| {
        c.store.url = sqlite;
        c.recording.enabled = true;
    })
    .await;
    let server = &stack.server;
    for t in ["Hello, I have a question", "When do you open tomorrow?"] {
        stack.deepgram.transcripts.push(t);
    }
    for r in ["Hello! How can I help?", "We open at nine."] {
        stack.chat.push_reply(FakeReply::text(r));
    }
    let base = base(server);
    b.sign_in(&base, "01-signin").await;

    // A call in progress shows up with its figures within a couple of seconds.
    let call = call_saying(server.media_url(), &["hello-8k.wav", "question-8k.wav"])
        .step(Step::Silence(Duration::from_secs(30)));
    let sid = call.call_sid.clone();
    let running = tokio::spawn(call.run());
    let row = format!("#live-calls tr[data-sid=\"{sid}\"]");
    b.wait_js(
        &format!(
            "const r = document.querySelector('{row}'); return r ? r.cells[2].textContent : null;"
        ),
        Duration::from_secs(10),
        |v| v.as_str().is_some_and(|d| d != "0:00"),
    )
    .await;
    // Figures move: the duration cell changes between updates.
    let d1 = b.text_of(&format!("{row} td:nth-child(3)")).await;
    tokio::time::sleep(Duration::from_millis(1600)).await;
    let d2 = b.text_of(&format!("{row} td:nth-child(3)")).await;
    assert_ne!(d1, d2, "live duration updates without a reload");
    assert_eq!(
        b.text_of(&format!("{row} td:nth-child(2)")).await,
        "default"
    );
    let level = b.text_of(&format!("{row} td:nth-child(5)")).await;
    assert!(!level.is_empty(), "a level cell");
    // Both turns answered (each reply takes a few seconds through the fakes).
    tokio::time::sleep(Duration::from_secs(12)).await;
    b.check_page("02-live-call").await;

    // The hang-up button ends it; it leaves the list within 2 s.
    // The live list re-renders its rows on every update: a button found just before one is
    // stale by the click, so find and click again (bounded).
    let mut clicked = false;
    for _ in 0..50 {
        if let Ok(button) = b
            .client
            .find(Locator::Css(&format!("{row} button.hangup")))
            .await
            && button.click().await.is_ok()
        {
            clicked = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(clicked, "hang-up button clicked");
    let report = tokio::time::timeout(Duration::from_secs(5), running)
        .await
        .expect("hung up")
        .unwrap()
        .expect("call");
    assert_eq!(report.closed_by_server.as_ref().map(|c| c.0), Some(1000));
    let gone = Instant::now();
    b.wait_js(
        &format!("return document.querySelector('{row}') === null;"),
        Duration::from_secs(2),
        |v| v == &json!(true),
    )
    .await;
    assert!(gone.elapsed() <= Duration::from_secs(2));
    b.check_page("03-live-empty").await;

    // History lists it; a bad filter is a clear message, not an error page.
    let writer = server.state().records.as_ref().unwrap();
    assert!(writer.flush(Duration::from_secs(10)).await);
    b.goto(&format!("{base}/console/calls?band=awful")).await;
    assert!(b.text_of("#filter-error").await.contains("band"));
    b.goto(&format!("{base}/console/calls?direction=inbound"))
        .await;
    b.check_page("04-history").await;
    b.client
        .find(Locator::Css(&format!(
            "a.call-link[href=\"/console/calls/{sid}\"]"
        )))
        .await
        .expect("the call is listed")
        .click()
        .await
        .unwrap();

    // Its page: transcript turns, quality, charts, a playable two-channel recording.
    let turns = b
        .client
        .find_all(Locator::Css("#transcript li.turn"))
        .await
        .unwrap();
    assert!(turns.len() >= 2, "transcript turns: {}", turns.len());
    let transcript = b.text_of("#transcript").await;
    assert!(
        transcript.contains("caller") && transcript.contains("agent"),
        "{transcript}"
    );
    assert!(
        transcript.contains("When do you open tomorrow?")
            && transcript.contains("We open at nine."),
        "what was said and answered: {transcript}"
    );
    assert!(
        b.client
            .find(Locator::Css("svg.chart path.line"))
            .await
            .is_ok()
    );
    let mut duration = Value::Null;
    for _ in 0..20 {
        duration = b
            .wait_js(
                "const a = document.getElementById('recording');
                 return a && (a.readyState >= 1 || a.error) ? (a.error ? -1 : a.duration) : null;",
                Duration::from_secs(10),
                |v| !v.is_null(),
            )
            .await;
        if duration.as_f64().is_some_and(|d| d > 0.0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        b.client.refresh().await.unwrap();
    }
    let secs = duration.as_f64().unwrap_or(0.0);
    assert!(secs > 3.0, "recording duration {duration}");
    b.wait_js(
        "return document.getElementById('waveform').dataset.channels || null;",
        Duration::from_secs(10),
        |v| v == &json!("2"),
    )
    .await;
    // A click on the second turn seeks the player there.
    let start_ms: f64 = turns[1]
        .find(Locator::Css("button.seek"))
        .await
        .unwrap()
        .attr("data-start-ms")
        .await
        .unwrap()
        .unwrap()
        .parse()
        .unwrap();
    turns[1]
        .find(Locator::Css("button.seek"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let at = b
        .wait_js(
            "return document.getElementById('recording').currentTime;",
            Duration::from_secs(5),
            |v| v.as_f64().is_some_and(|t| t > 0.0),
        )
        .await;
    let at = at.as_f64().unwrap();
    assert!(
        (at - start_ms / 1000.0).abs() < 1.5,
        "seeked to {at} for a turn at {start_ms} ms"
    );
    b.client
        .execute("document.getElementById('recording').pause();", vec![])
        .await
        .unwrap();
    b.check_page("05-call-record").await;

    // Sign out: the session is gone.
    b.client
        .find(Locator::Css(".signout button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    b.goto(&format!("{base}/console/live")).await;
    assert_eq!(
        b.client.current_url().await.unwrap().path(),
        "/console/signin"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn campaign_from_csv_runs_to_completion_in_a_browser() {
    set_token();
    let _one = BROWSER.lock().await;
    let Some(b) = browser().await else { return };
    let twilio = dialer_support::fake_twilio(20.0).await;
    let server =
        dialer_support::server(&twilio, &dialer_support::sqlite_url("console"), |_| {}).await;
    let base = base(&server);
    b.sign_in(&base, "06-signin-campaigns").await;
    b.goto(&format!("{base}/console/campaigns")).await;
    b.check_page("07-campaigns").await;

    let mut csv = String::from("phone,name,plan\n");
    for i in 0..6 {
        csv.push_str(&format!("+1555020{i:04},Contact {i},plan-{i}\n"));
        if i == 2 {
            csv.push_str("12345,Not a number,x\n"); // line 5
        }
    }
    let file = std::env::temp_dir().join(format!("voxbridge-console-{}.csv", free_port()));
    std::fs::write(&file, &csv).unwrap();
    let now = chrono::Utc::now();
    let set = |id: &'static str, v: String| {
        let b = &b;
        async move {
            let e = b.client.find(Locator::Id(id)).await.unwrap();
            e.clear().await.unwrap();
            e.send_keys(&v).await.unwrap();
        }
    };
    set("name", "Console campaign".into()).await;
    set("caller_id", dialer_support::CALLER_ID.into()).await;
    set("max_concurrent", "3".into()).await;
    set("cps", "5".into()).await;
    // <input type="time">: typed keys depend on the browser's 12/24-hour locale, so the
    // value is set as the form would hold it (HH:MM).
    for (id, t) in [
        ("window_start", now - chrono::Duration::hours(1)),
        ("window_end", now + chrono::Duration::hours(2)),
    ] {
        b.client
            .execute(
                "document.getElementById(arguments[0]).value = arguments[1];",
                vec![json!(id), json!(t.format("%H:%M").to_string())],
            )
            .await
            .unwrap();
    }
    b.client
        .find(Locator::Id("contacts"))
        .await
        .unwrap()
        .send_keys(file.to_str().unwrap())
        .await
        .unwrap();
    b.client
        .find(Locator::Id("create-campaign"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let flash = b.text_of("#flash").await;
    assert!(flash.contains("6 contacts added"), "{flash}");
    assert!(
        flash.contains("Line 5:"),
        "row error with its line: {flash}"
    );
    assert_eq!(b.text_of("#campaign-state").await, "draft");
    b.check_page("08-campaign-draft").await;

    b.client
        .find(Locator::Id("action-start"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let state = b
        .wait_js(
            "const s = document.getElementById('campaign-state'); return s ? s.textContent : '';",
            Duration::from_secs(120),
            |v| v == &json!("completed"),
        )
        .await;
    assert_eq!(state, json!("completed"));
    let answered = b.text_of("td[data-outcome=\"answered\"]").await;
    assert_eq!(answered, "6");
    let links = b
        .client
        .find_all(Locator::Css("#contacts-table a[href^=\"/console/calls/\"]"))
        .await
        .unwrap();
    assert_eq!(links.len(), 6, "each contact links to its call");
    b.check_page("09-campaign-completed").await;

    // The CSV export through the page's link.
    let csv = b
        .client
        .execute_async(
            "const done = arguments[arguments.length - 1];
             fetch(document.getElementById('export').href).then(r => r.text()).then(done, e => done(String(e)));",
            vec![],
        )
        .await
        .unwrap();
    let csv = csv.as_str().unwrap().to_owned();
    let lines: Vec<&str> = csv.lines().collect();
    assert!(
        lines[0].starts_with("line,phone,name,state,outcome"),
        "{csv}"
    );
    assert_eq!(lines.len(), 7, "{csv}");
    assert!(
        lines[1..].iter().all(|l| l.contains(",done,answered,")),
        "{csv}"
    );

    // A contact's call page opens from the table.
    links[0].click().await.unwrap();
    assert!(b.text_of("h1").await.starts_with("Call"));
    b.check_page("10-campaign-call").await;
    let _ = std::fs::remove_file(file);
}

/// Session, CSRF and origin rules, over plain HTTP (no browser needed).
#[tokio::test]
async fn sessions_csrf_and_origin_are_enforced() {
    set_token();
    let server = common::start_server(|_| {}).await;
    let base = base(&server);
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    // Not signed in: pages redirect to sign-in, the event stream too; assets are public.
    let r = http
        .get(format!("{base}/console/live"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/console/signin");
    let r = http
        .get(format!("{base}/console/assets/console.css"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let origin = base.clone();
    // A wrong token: 401 and no cookie; a sign-in from another origin: refused.
    let r = http
        .post(format!("{base}/console/signin"))
        .header("origin", &origin)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(serde_urlencoded::to_string([("token", "nope")]).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.headers().get("set-cookie").is_none());
    let r = http
        .post(format!("{base}/console/signin"))
        .header("origin", "https://evil.example")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(serde_urlencoded::to_string([("token", TOKEN)]).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // The right token: a session cookie, HttpOnly and SameSite=Strict (no Secure over http).
    let r = http
        .post(format!("{base}/console/signin"))
        .header("origin", &origin)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(serde_urlencoded::to_string([("token", TOKEN)]).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let pair = cookie.split(';').next().unwrap().to_owned();
    let page = http
        .get(format!("{base}/console/live"))
        .header("cookie", &pair)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert!(
        page.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("frame-ancestors 'none'")
    );
    let body = page.text().await.unwrap();
    let csrf = body
        .split("name=\"csrf-token\" content=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap()
        .to_owned();
    assert_eq!(csrf.len(), 64);
    // State changes: no token, a wrong token, a foreign origin: 403; right: through.
    let hangup = |token: &str, origin: &str| {
        http.post(format!("{base}/console/calls/CAnone/hangup"))
            .header("cookie", &pair)
            .header("origin", origin)
            .header("x-csrf-token", token)
            .send()
    };
    assert_eq!(hangup("", &origin).await.unwrap().status(), 403);
    assert_eq!(
        hangup(&"0".repeat(64), &origin).await.unwrap().status(),
        403
    );
    assert_eq!(
        hangup(&csrf, "https://evil.example")
            .await
            .unwrap()
            .status(),
        403
    );
    assert_eq!(
        hangup(&csrf, &origin).await.unwrap().status(),
        404,
        "no such call"
    );
    // Bad input never gives a 5xx: records are off here (503 is not bad input), a bad call id.
    let r = http
        .get(format!("{base}/console/calls/bad%20sid"))
        .header("cookie", &pair)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = http
        .get(format!("{base}/console/nowhere"))
        .header("cookie", &pair)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    // Sign-out ends the session (with the CSRF token), and the cookie no longer works.
    let r = http
        .post(format!("{base}/console/signout"))
        .header("cookie", &pair)
        .header("origin", &origin)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(serde_urlencoded::to_string([("csrf", csrf.as_str())]).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let r = http
        .get(format!("{base}/console/live"))
        .header("cookie", &pair)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let (_, metrics) = common::http_get(&server, "/metrics").await;
    assert!(
        metrics.contains("voxbridge_console_refused_total{reason=\"csrf\"}"),
        "{metrics}"
    );
}
