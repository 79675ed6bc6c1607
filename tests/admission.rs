//! Admission, attacked as an attacker would, against the real server on loopback: a flood of
//! half-sent requests, keep-alive idlers, more connections than a client may have, more media
//! upgrades than `max_calls`, and forged `X-Forwarded-For` hops. Every timeout is small and
//! every wait bounded. Floods come from other loopback addresses (127.0.0.2, …) so that the
//! per-address cap is what it would be in production.

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use common::*;
use futures_util::future::join_all;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::{self, Message};
use voxbridge::server::Server;
use voxbridge::sim::{SimCall, Step};
use voxbridge::twilio::messages::start_json;

const END_OF_TURN_MS: u64 = 600;

fn lo(last: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 0, last)
}

/// A TCP connection to the server from the loopback address `from`.
async fn connect_from(from: Ipv4Addr, to: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().expect("socket");
    socket.bind(SocketAddr::new(from.into(), 0)).expect("bind");
    socket.connect(to).await.expect("connect")
}

/// Read until the server closes (EOF or reset); `Some(elapsed since start)` if it did in time.
async fn closed_within(
    stream: &mut TcpStream,
    start: Instant,
    limit: Duration,
) -> Option<Duration> {
    let wait = async {
        let mut buf = [0u8; 1024];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return start.elapsed(),
                Ok(_) => continue,
            }
        }
    };
    tokio::time::timeout(limit, wait).await.ok()
}

/// One HTTP/1.1 request on a raw connection; the response head and body as text.
async fn raw_get(stream: &mut TcpStream, path: &str) -> String {
    let req = format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n");
    stream.write_all(req.as_bytes()).await.expect("write");
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
        .await
        .expect("response in time")
        .expect("read");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

/// A /metrics series, scraped from loopback address `from` (not the one being capped).
async fn metric_from(server: &Server, from: Ipv4Addr, series: &str) -> f64 {
    let client = reqwest::Client::builder()
        .local_address(IpAddr::V4(from))
        .build()
        .expect("client");
    let body = client
        .get(format!("http://{}/metrics", server.local_addr()))
        .send()
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("body");
    body.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

fn refused(reason: &str) -> String {
    format!("voxbridge_requests_refused_total{{reason=\"{reason}\"}}")
}

/// The open-file limit, raised to `want` when the hard limit allows; returns the soft limit now.
fn raise_fd_limit(want: u64) -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read/write the struct passed.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 1024;
        }
        if lim.rlim_cur < want {
            let raised = libc::rlimit {
                rlim_cur: want.min(lim.rlim_max),
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                lim.rlim_cur = raised.rlim_cur;
            }
        }
    }
    lim.rlim_cur
}

/// One flood connection: connect from `from`, send `head` (maybe nothing), and wait for the
/// server to close; how long that took from the moment the connection was begun — before the
/// server could accept it, so never less than its timeout (`None`: not within `limit`).
async fn flood_one(
    from: Ipv4Addr,
    to: SocketAddr,
    head: &'static [u8],
    limit: Duration,
) -> Option<Duration> {
    let begun = Instant::now();
    let mut s = connect_from(from, to).await;
    if !head.is_empty() {
        s.write_all(head).await.expect("half a request");
    }
    closed_within(&mut s, begun, limit).await
}

#[tokio::test]
async fn half_request_flood_is_closed_in_time_while_a_call_goes_on() {
    const HEADER_TIMEOUT: Duration = Duration::from_secs(2);
    /// The attack: 3,000 connections (scaled down only if the open-file limit is too
    /// low: each costs two descriptors here, the client's and the server's).
    const WANTED: usize = 3000;
    let fd_limit = raise_fd_limit(2 * WANTED as u64 + 2048);
    let flood = WANTED.min((fd_limit as usize).saturating_sub(1024) / 2);
    let silent = flood / 6;
    let half = flood - silent;
    println!(
        "open-file limit {fd_limit}: flooding with {half} half requests and {silent} silent connections"
    );
    assert!(
        flood >= 1000,
        "open-file limit {fd_limit} too low for a meaningful flood"
    );

    let server = start_server(|c| c.limits.header_read_timeout_secs = 2).await;
    let addr = server.local_addr();
    let timeouts_before = metric_from(&server, lo(99), &refused("header_timeout")).await;

    // A real call spanning the flood: the caller speaks while the flood connects and is closed,
    // and speaks again after.
    let mut summaries = Summaries::of(&server);
    let hello = fixture("hello-8k.wav");
    let call = SimCall::new(server.media_url())
        .step(Step::Silence(Duration::from_millis(300)))
        .step(Step::Speak(hello.clone()))
        .step(Step::WaitForReplyEnd(Duration::from_secs(20)))
        .step(Step::Silence(Duration::from_millis(300)))
        .step(Step::Speak(hello.clone()))
        .step(Step::WaitForReplyEnd(Duration::from_secs(20)))
        .step(Step::Silence(Duration::from_millis(200)));
    let call_sid = call.call_sid.clone();
    let call = tokio::spawn(call.run());

    // From 20 loopback addresses (under the per-address cap of 200 each), half a request head
    // — or nothing at all.
    let limit = HEADER_TIMEOUT + Duration::from_secs(5);
    let flood_start = Instant::now();
    let head: &'static [u8] = b"POST /twilio/voice HTTP/1.1\r\nHost: voice.example.com\r\nX-Slow: ";
    let closes = join_all((0..flood).map(|i| {
        let from = lo(2 + (i % 20) as u8);
        flood_one(from, addr, if i < half { head } else { b"" }, limit)
    }))
    .await;
    let flood_took = flood_start.elapsed();
    let open = closes.iter().filter(|c| c.is_none()).count();
    let late = closes
        .iter()
        .flatten()
        .filter(|c| **c > HEADER_TIMEOUT + Duration::from_secs(1))
        .count();
    assert_eq!(
        open, 0,
        "{open} of {flood} still open {limit:?} after connecting ({late} closed over 1 s late)"
    );
    let earliest = closes.iter().flatten().min().copied().unwrap_or_default();
    let latest = closes.iter().flatten().max().copied().unwrap_or_default();
    println!(
        "flood of {flood}: each closed {earliest:?}..{latest:?} after its connect began (header timeout {HEADER_TIMEOUT:?}), {late} over 1 s late; all done {flood_took:?} after the first"
    );
    assert!(
        earliest >= HEADER_TIMEOUT,
        "closed before the header timeout: {earliest:?}"
    );

    let report = call.await.expect("task").expect("call");
    println!("{report}");
    assert_eq!(report.timeouts, 0, "a reply never finished");
    assert!(
        report.closed_by_server.is_none(),
        "{:?}",
        report.closed_by_server
    );
    assert_eq!(report.response_latencies_ms.len(), 2, "{report}");
    for &latency in &report.response_latencies_ms {
        assert!(
            (END_OF_TURN_MS..=END_OF_TURN_MS + 300).contains(&latency),
            "latency {latency} ms"
        );
    }
    let said = decode(&hello);
    let heard = decode(&report.heard);
    let half_call = heard.len() / 2;
    for part in [&heard[..half_call], &heard[half_call..]] {
        let (_, corr) = best_alignment(trim_silence(&said), part);
        assert!(corr > 0.95, "reply correlates {corr:.3} with what was said");
    }
    let summary = summaries.get(&call_sid).await;
    assert_eq!(summary.end_reason.as_str(), "stop");

    let timeouts = metric_from(&server, lo(99), &refused("header_timeout")).await - timeouts_before;
    assert!(
        timeouts >= flood as f64,
        "header_timeout counted {timeouts} for {flood}"
    );

    // Shutdown with half-sent requests open still completes promptly.
    let mut lingering = connect_from(lo(98), addr).await;
    lingering
        .write_all(b"GET /healthz HTTP/1.1\r\n")
        .await
        .expect("write");
    tokio::time::sleep(Duration::from_millis(100)).await;
    let stopped = tokio::time::timeout(
        Duration::from_secs(4),
        server.shutdown(Duration::from_secs(1)),
    )
    .await;
    assert!(stopped.is_ok(), "shutdown hung on a half-sent request");
}

/// An upgraded media socket that never sends `start` is closed (1008) at the start timeout,
/// whether it is silent or chatters to keep the idle clock from running; counted.
#[tokio::test]
async fn media_socket_without_start_is_closed_at_the_start_timeout() {
    let server = start_server(|c| {
        c.limits.start_timeout_secs = 2;
        c.limits.idle_timeout_secs = 30;
    })
    .await;
    let series = "voxbridge_calls_refused_total{reason=\"start_timeout\"}";
    let before = metric(&server, series).await;
    let url = server.media_url();
    let (mut silent, _) = tokio_tungstenite::connect_async(url.clone())
        .await
        .expect("upgrade");
    let (mut chatty, _) = tokio_tungstenite::connect_async(url.clone())
        .await
        .expect("upgrade");
    let opened = Instant::now();
    silent
        .send(Message::text(voxbridge::twilio::messages::connected_json()))
        .await
        .expect("connected");
    let chatter = async {
        // `connected`, then junk every 200 ms: it resets the idle clock, never the start one.
        loop {
            if chatty
                .send(Message::text("{\"event\":\"hello\"}"))
                .await
                .is_err()
            {
                break;
            }
            tokio::select! {
                m = chatty.next() => match m {
                    Some(Ok(Message::Close(frame))) => return frame.map(|f| u16::from(f.code)),
                    Some(Ok(_)) => {}
                    _ => return None,
                },
                _ = tokio::time::sleep(Duration::from_millis(200)) => {}
            }
        }
        None
    };
    let quiet = async {
        while let Some(Ok(m)) = silent.next().await {
            if let Message::Close(frame) = m {
                return frame.map(|f| u16::from(f.code));
            }
        }
        None
    };
    let (chatty_code, quiet_code) = tokio::time::timeout(Duration::from_secs(6), async {
        tokio::join!(chatter, quiet)
    })
    .await
    .expect("closed in time");
    let took = opened.elapsed();
    println!("streams without start closed after {took:?}");
    assert_eq!(quiet_code, Some(1008));
    assert_eq!(chatty_code, Some(1008));
    assert!(
        took >= Duration::from_millis(1950),
        "closed early: {took:?}"
    );
    assert!(took <= Duration::from_millis(3500), "closed late: {took:?}");
    // Our reply to the server's close goes out as the sockets are read to their end.
    while let Some(Ok(_)) = silent.next().await {}
    while let Some(Ok(_)) = chatty.next().await {}
    assert_eq!(metric(&server, series).await - before, 2.0);
    let mut active = server.state().calls.active();
    for _ in 0..50 {
        if active == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        active = server.state().calls.active();
    }
    assert_eq!(active, 0, "streams still active after their close");
}

#[tokio::test]
async fn keepalive_idle_and_later_headers_have_their_own_deadlines() {
    let server = start_server(|c| {
        c.limits.header_read_timeout_secs = 2;
        c.limits.keepalive_idle_secs = 1;
    })
    .await;
    let addr = server.local_addr();

    // Answered, then idle: closed after keepalive_idle (1 s), not the header timeout.
    let mut idle = connect_from(lo(20), addr).await;
    assert!(
        raw_get(&mut idle, "/healthz")
            .await
            .starts_with("HTTP/1.1 200")
    );
    let start = Instant::now();
    let closed = closed_within(&mut idle, start, Duration::from_secs(4)).await;
    let closed = closed.expect("idle keep-alive connection closed");
    assert!(
        (Duration::from_millis(900)..Duration::from_millis(1900)).contains(&closed),
        "{closed:?}"
    );

    // Answered, then half of the next request: the header timeout (2 s) runs from its first
    // byte, so the idle deadline does not cut it short…
    let mut slow = connect_from(lo(21), addr).await;
    assert!(
        raw_get(&mut slow, "/healthz")
            .await
            .starts_with("HTTP/1.1 200")
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    slow.write_all(b"GET /healthz HTTP/1.1\r\n")
        .await
        .expect("write");
    let start = Instant::now();
    let closed = closed_within(&mut slow, start, Duration::from_secs(5)).await;
    let closed = closed.expect("slow second request closed");
    assert!(
        (Duration::from_millis(1900)..Duration::from_millis(3500)).contains(&closed),
        "{closed:?}"
    );

    // …and a prompt client is served many requests on one connection.
    let mut busy = connect_from(lo(22), addr).await;
    for _ in 0..5 {
        assert!(
            raw_get(&mut busy, "/healthz")
                .await
                .starts_with("HTTP/1.1 200")
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test]
async fn connection_caps_refuse_the_excess_and_count_it() {
    let server = start_server(|c| c.limits.max_connections_per_ip = 5).await;
    let addr = server.local_addr();
    let per_ip = refused("too_many_connections_per_ip");
    let before = metric_from(&server, lo(39), &per_ip).await;

    let mut held = Vec::new();
    for _ in 0..5 {
        held.push(connect_from(lo(30), addr).await);
    }
    // The sixth to tenth from that address are closed at once…
    for _ in 0..5 {
        let mut extra = connect_from(lo(30), addr).await;
        let start = Instant::now();
        let closed = closed_within(&mut extra, start, Duration::from_secs(1)).await;
        assert!(
            closed.is_some(),
            "connection over the per-address cap left open"
        );
    }
    // …while another address is served.
    let mut other = connect_from(lo(31), addr).await;
    assert!(
        raw_get(&mut other, "/healthz")
            .await
            .starts_with("HTTP/1.1 200")
    );
    let counted = metric_from(&server, lo(39), &per_ip).await - before;
    assert!(
        counted >= 5.0,
        "too_many_connections_per_ip counted {counted}"
    );
    let open = server.state().admission.connections.open();
    assert!(open >= 6, "open connections {open}");

    // Closing one gives its place back.
    drop(held.pop());
    let mut again = None;
    for _ in 0..50 {
        let mut s = connect_from(lo(30), addr).await;
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
            .await
            .expect("write");
        let mut buf = [0u8; 64];
        if let Ok(Ok(n)) = tokio::time::timeout(Duration::from_secs(1), s.read(&mut buf)).await
            && n > 0
        {
            again = Some(String::from_utf8_lossy(&buf[..n]).into_owned());
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(again.is_some_and(|r| r.starts_with("HTTP/1.1 200")));

    // The global cap, across addresses.
    let server = start_server(|c| {
        c.limits.max_calls = 1;
        c.limits.max_connections = 3;
        c.limits.max_connections_per_ip = 0;
    })
    .await;
    let addr = server.local_addr();
    let global = refused("too_many_connections");
    let before = metric_from(&server, lo(49), &global).await;
    let mut held = Vec::new();
    for i in 0..3 {
        held.push(connect_from(lo(40 + i), addr).await);
    }
    let mut fourth = connect_from(lo(45), addr).await;
    let closed = closed_within(&mut fourth, Instant::now(), Duration::from_secs(1)).await;
    assert!(closed.is_some(), "connection over the global cap left open");
    drop(held.pop());
    tokio::time::sleep(Duration::from_millis(100)).await;
    let counted = metric_from(&server, lo(49), &global).await - before;
    assert!(counted >= 1.0, "too_many_connections counted {counted}");
}

#[tokio::test]
async fn n_plus_100_concurrent_upgrades_admit_exactly_n() {
    const N: usize = 20;
    let server = start_server(|c| {
        c.limits.max_calls = N;
        c.limits.idle_timeout_secs = 30;
        c.limits.start_timeout_secs = 30;
    })
    .await;
    let refused_series = "voxbridge_calls_refused_total{reason=\"max_calls\"}";
    let before = metric(&server, refused_series).await;
    let url = server.media_url();
    let attempts =
        join_all((0..N + 100).map(|_| tokio_tungstenite::connect_async(url.clone()))).await;
    let mut admitted = Vec::new();
    let mut unavailable = 0;
    for attempt in attempts {
        match attempt {
            Ok((ws, _)) => admitted.push(ws),
            Err(tungstenite::Error::Http(resp)) if resp.status() == 503 => unavailable += 1,
            Err(e) => panic!("unexpected upgrade failure: {e}"),
        }
    }
    assert_eq!(admitted.len(), N, "admitted");
    assert_eq!(unavailable, 100, "refused with 503");
    assert_eq!(metric(&server, refused_series).await - before, 100.0);

    // The admitted ones are real calls, held open.
    for (i, ws) in admitted.iter_mut().enumerate() {
        let start = start_json(1, "AC1", &format!("MZ{i}"), &format!("CAheld{i}"), &[]);
        ws.send(Message::text(start)).await.expect("start");
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(server.state().calls.active(), N);
    assert!(
        tokio_tungstenite::connect_async(url.clone()).await.is_err(),
        "a call over max_calls admitted"
    );

    // Ending one frees exactly one place.
    let mut first = admitted.remove(0);
    first.close(None).await.expect("close");
    while let Some(Ok(_)) = first.next().await {}
    let mut replacement = None;
    for _ in 0..100 {
        if let Ok((ws, _)) = tokio_tungstenite::connect_async(url.clone()).await {
            replacement = Some(ws);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(replacement.is_some(), "the freed place was not given out");
    assert!(
        tokio_tungstenite::connect_async(url.clone()).await.is_err(),
        "two calls took one place"
    );
}

#[tokio::test]
async fn forged_forwarded_for_hops_do_not_change_the_bucket() {
    let server = start_server(|c| {
        c.security.trust_proxy = true;
        c.limits.per_ip_per_minute = 5;
    })
    .await;
    let client = reqwest::Client::new();
    let get = |xff: String| {
        let req = client
            .get(format!("http://{}/healthz", server.local_addr()))
            .header("x-forwarded-for", xff);
        async move { req.send().await.expect("GET").status().as_u16() }
    };
    // Behind our (loopback) proxy, one client forging a different leftmost hop each time.
    let mut statuses = Vec::new();
    for i in 0..8 {
        statuses.push(get(format!("198.51.100.{i}, 203.0.113.7")).await);
    }
    assert_eq!(statuses, [200, 200, 200, 200, 200, 429, 429, 429]);
    // Another client behind the same proxy has its own bucket.
    assert_eq!(get("203.0.113.8".into()).await, 200);
    // A trusted hop right of the client is walked past; the forged one left of it is not.
    assert_eq!(get("203.0.113.7, 10.1.2.3".into()).await, 429);

    // A peer outside trusted_proxies is taken at its word: its header is ignored.
    let server = start_server(|c| {
        c.security.trust_proxy = true;
        c.security.trusted_proxies = vec!["192.0.2.0/24".into()];
        c.limits.per_ip_per_minute = 3;
    })
    .await;
    let url = format!("http://{}/healthz", server.local_addr());
    let mut statuses = Vec::new();
    for i in 0..5 {
        let resp = client
            .get(&url)
            .header("x-forwarded-for", format!("203.0.113.{i}"))
            .send()
            .await
            .expect("GET");
        statuses.push(resp.status().as_u16());
    }
    assert_eq!(statuses, [200, 200, 200, 429, 429]);
}

/// The fakes are never reachable from outside the machine.
#[cfg(feature = "fakes")]
#[tokio::test]
async fn fakes_listen_on_loopback_only() {
    use voxbridge::fakes;
    let deepgram = fakes::deepgram::FakeDeepgram::start("k")
        .await
        .expect("fake");
    let chat = fakes::openai_chat::FakeOpenAiChat::start("k")
        .await
        .expect("fake");
    let eleven = fakes::elevenlabs::FakeElevenLabs::start("k")
        .await
        .expect("fake");
    let speech = fakes::openai_speech::FakeOpenAiSpeech::start("k")
        .await
        .expect("fake");
    let realtime = fakes::openai_realtime::FakeOpenAiRealtime::start("k")
        .await
        .expect("fake");
    let plain = fakes::FakeServer::start(axum::Router::new(), 0)
        .await
        .expect("fake");
    for addr in [
        deepgram.server.addr,
        chat.server.addr,
        eleven.server.addr,
        speech.server.addr,
        realtime.server.addr,
        plain.addr,
    ] {
        assert_eq!(addr.ip(), IpAddr::V4(Ipv4Addr::LOCALHOST), "{addr}");
    }
    for url in [
        deepgram.url(),
        chat.url(),
        eleven.base_url(),
        speech.base_url(),
        realtime.url(),
    ] {
        assert!(url.contains("://127.0.0.1:"), "{url}");
    }
}
