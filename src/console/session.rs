//! Console sign-in sessions and cross-site request protection.
//!
//! An operator signs in with an API token (the same `VOXBRIDGE_API_TOKENS` as the REST API) and
//! gets a cookie holding a random session id (256 bits from the OS). The server keeps the
//! sessions in a bounded map keyed by the id's SHA-256 (so the map never holds the cookie value
//! itself), each with its own CSRF token, an idle expiry and an absolute one. When the map is
//! full, expired sessions go first, then the least recently used one.
//!
//! State-changing requests must carry the session's CSRF token (form field `csrf` or header
//! `X-CSRF-Token`) and come from our own origin (`Origin`, else `Referer`, naming the request's
//! `Host` or `server.public_host`). This module holds no API token and renders nothing.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, HeaderValue, header};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The session cookie's name.
pub const COOKIE: &str = "voxbridge_console";
/// The header a `fetch` carries the CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// How many sessions, and for how long.
#[derive(Debug, Clone, Copy)]
pub struct SessionLimits {
    /// Most sessions kept at once.
    pub max: usize,
    /// A session unused this long ends.
    pub idle: Duration,
    /// A session ends this long after sign-in, used or not.
    pub absolute: Duration,
}

impl Default for SessionLimits {
    fn default() -> Self {
        Self {
            max: 1000,
            idle: Duration::from_secs(2 * 3600),
            absolute: Duration::from_secs(12 * 3600),
        }
    }
}

/// The operator's open session, as a request sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed {
    /// The CSRF token of this session (for forms and `fetch`).
    pub csrf: String,
    /// A one-time message for the next page (e.g. an upload's rejected rows).
    pub flash: Vec<String>,
}

struct Session {
    csrf: String,
    created: Instant,
    last_seen: Instant,
    flash: Vec<String>,
}

/// The randomness source failed (the OS could not give us bytes).
#[derive(Debug, thiserror::Error)]
#[error("no random bytes from the OS: {0}")]
pub struct NoRandom(String);

/// The server-side session map (bounded).
pub struct Sessions {
    map: Mutex<HashMap<[u8; 32], Session>>,
    limits: SessionLimits,
}

/// Most flash lines kept for one page.
const MAX_FLASH: usize = 50;

impl Sessions {
    pub fn new(limits: SessionLimits) -> Self {
        Self {
            map: Mutex::new(HashMap::new()),
            limits,
        }
    }

    pub fn limits(&self) -> SessionLimits {
        self.limits
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Session>> {
        // A panic while holding the lock leaves a consistent map (every update is one insert
        // or remove), so a poisoned lock is still usable.
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn expired(&self, s: &Session, now: Instant) -> bool {
        now.duration_since(s.last_seen) >= self.limits.idle
            || now.duration_since(s.created) >= self.limits.absolute
    }

    /// Open a session: its cookie value and CSRF token.
    pub fn create(&self, now: Instant) -> Result<(String, String), NoRandom> {
        let id = random_token()?;
        let csrf = random_token()?;
        let mut map = self.lock();
        if map.len() >= self.limits.max {
            map.retain(|_, s| !self.expired(s, now));
        }
        while map.len() >= self.limits.max.max(1) {
            let Some(oldest) = map.iter().min_by_key(|(_, s)| s.last_seen).map(|(k, _)| *k) else {
                break;
            };
            map.remove(&oldest);
        }
        map.insert(
            key(&id),
            Session {
                csrf: csrf.clone(),
                created: now,
                last_seen: now,
                flash: Vec::new(),
            },
        );
        Ok((id, csrf))
    }

    /// The session behind a cookie value, if it is open (and marks it used); takes its flash.
    pub fn lookup(&self, id: &str, now: Instant) -> Option<Signed> {
        let k = key(id);
        let mut map = self.lock();
        let s = map.get(&k)?;
        if self.expired(s, now) {
            map.remove(&k);
            return None;
        }
        let s = map.get_mut(&k)?;
        s.last_seen = now;
        Some(Signed {
            csrf: s.csrf.clone(),
            flash: std::mem::take(&mut s.flash),
        })
    }

    /// Whether the session is still open (does not mark it used).
    pub fn is_open(&self, id: &str, now: Instant) -> bool {
        self.lock()
            .get(&key(id))
            .is_some_and(|s| !self.expired(s, now))
    }

    /// Leave a message for the session's next page (at most [`MAX_FLASH`] lines).
    pub fn flash(&self, id: &str, lines: Vec<String>) {
        if let Some(s) = self.lock().get_mut(&key(id)) {
            s.flash = lines;
            if s.flash.len() > MAX_FLASH {
                let more = s.flash.len() - MAX_FLASH + 1;
                s.flash.truncate(MAX_FLASH - 1);
                s.flash.push(format!("… and {more} more"));
            }
        }
    }

    /// Sign out.
    pub fn remove(&self, id: &str) {
        self.lock().remove(&key(id));
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn key(id: &str) -> [u8; 32] {
    Sha256::digest(id.as_bytes()).into()
}

/// 32 random bytes from the OS, as 64 hex digits.
pub fn random_token() -> Result<String, NoRandom> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| NoRandom(e.to_string()))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Whether a presented CSRF token is the session's (constant time).
pub fn csrf_matches(expected: &str, presented: &str) -> bool {
    !expected.is_empty()
        && expected.len() == presented.len()
        && bool::from(expected.as_bytes().ct_eq(presented.as_bytes()))
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
}

/// The `Set-Cookie` value opening a session (`Secure` when we are served over https).
pub fn set_cookie(id: &str, secure: bool, max_age: Duration) -> Option<HeaderValue> {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{COOKIE}={id}; Path=/console; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
        max_age.as_secs()
    ))
    .ok()
}

/// The `Set-Cookie` value that removes the session cookie.
pub fn clear_cookie(secure: bool) -> HeaderValue {
    if secure {
        HeaderValue::from_static(
            "voxbridge_console=; Path=/console; HttpOnly; SameSite=Strict; Max-Age=0; Secure",
        )
    } else {
        HeaderValue::from_static(
            "voxbridge_console=; Path=/console; HttpOnly; SameSite=Strict; Max-Age=0",
        )
    }
}

/// Whether a state-changing request comes from our own pages: its `Origin` (else `Referer`)
/// names the request's `Host` or the configured public host. A request with neither is refused
/// (current browsers send `Origin` on every POST).
pub fn same_origin(headers: &HeaderMap, public_host: &str) -> bool {
    let source = headers
        .get(header::ORIGIN)
        .or_else(|| headers.get(header::REFERER))
        .and_then(|v| v.to_str().ok());
    let Some(source) = source else {
        return false;
    };
    let Some(authority) = authority_of(source) else {
        return false;
    };
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    host.is_some_and(|h| h.eq_ignore_ascii_case(authority))
        || (!public_host.is_empty() && public_host.eq_ignore_ascii_case(authority))
}

/// `host[:port]` of an `http(s)://` URL.
fn authority_of(url: &str) -> Option<&str> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))?;
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..end];
    (!authority.is_empty() && !authority.contains('@')).then_some(authority)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(max: usize) -> SessionLimits {
        SessionLimits {
            max,
            idle: Duration::from_secs(60),
            absolute: Duration::from_secs(600),
        }
    }

    #[test]
    fn sessions_open_expire_and_sign_out() {
        let s = Sessions::new(limits(10));
        let t0 = Instant::now();
        let (id, csrf) = s.create(t0).unwrap();
        assert_eq!(id.len(), 64);
        assert_ne!(id, csrf);
        assert_eq!(s.lookup(&id, t0).unwrap().csrf, csrf);
        assert!(s.lookup("nope", t0).is_none());
        // Idle expiry, refreshed by use.
        let t1 = t0 + Duration::from_secs(50);
        assert!(s.lookup(&id, t1).is_some());
        assert!(s.lookup(&id, t1 + Duration::from_secs(50)).is_some());
        assert!(s.lookup(&id, t1 + Duration::from_secs(200)).is_none());
        assert!(s.is_empty(), "an expired session is removed");
        // Absolute expiry, however often used.
        let (id, _) = s.create(t0).unwrap();
        let mut t = t0;
        while t < t0 + Duration::from_secs(570) {
            t += Duration::from_secs(30);
            assert!(s.lookup(&id, t).is_some());
        }
        assert!(s.lookup(&id, t0 + Duration::from_secs(601)).is_none());
        // Sign-out.
        let (id, _) = s.create(t0).unwrap();
        s.remove(&id);
        assert!(s.lookup(&id, t0).is_none());
    }

    #[test]
    fn the_map_is_bounded_and_evicts_the_least_recently_used() {
        let s = Sessions::new(limits(3));
        let t0 = Instant::now();
        let ids: Vec<String> = (0..3)
            .map(|i| s.create(t0 + Duration::from_secs(i)).unwrap().0)
            .collect();
        assert!(s.lookup(&ids[0], t0 + Duration::from_secs(5)).is_some());
        let (new, _) = s.create(t0 + Duration::from_secs(6)).unwrap();
        assert_eq!(s.len(), 3);
        assert!(s.is_open(&ids[0], t0 + Duration::from_secs(6)));
        assert!(
            !s.is_open(&ids[1], t0 + Duration::from_secs(6)),
            "LRU evicted"
        );
        assert!(s.is_open(&new, t0 + Duration::from_secs(6)));
    }

    #[test]
    fn flash_is_taken_once_and_bounded() {
        let s = Sessions::new(limits(3));
        let t0 = Instant::now();
        let (id, _) = s.create(t0).unwrap();
        s.flash(&id, (0..80).map(|i| format!("line {i}")).collect());
        let f = s.lookup(&id, t0).unwrap().flash;
        assert_eq!(f.len(), MAX_FLASH);
        assert_eq!(f.last().unwrap(), "… and 31 more");
        assert!(s.lookup(&id, t0).unwrap().flash.is_empty());
    }

    #[test]
    fn csrf_tokens() {
        let t = random_token().unwrap();
        assert!(csrf_matches(&t, &t));
        assert!(!csrf_matches(&t, &t[..63]));
        assert!(!csrf_matches(&t, &random_token().unwrap()));
        assert!(!csrf_matches("", ""));
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn origin_checks() {
        let host = ("host", "127.0.0.1:8080");
        assert!(same_origin(
            &headers(&[host, ("origin", "http://127.0.0.1:8080")]),
            ""
        ));
        assert!(same_origin(
            &headers(&[host, ("referer", "http://127.0.0.1:8080/console/live")]),
            ""
        ));
        assert!(!same_origin(
            &headers(&[host, ("origin", "https://evil.example")]),
            ""
        ));
        assert!(!same_origin(&headers(&[host, ("origin", "null")]), ""));
        assert!(!same_origin(&headers(&[host]), ""), "no Origin, no Referer");
        assert!(!same_origin(
            &headers(&[host, ("origin", "http://127.0.0.1:8080@evil.example")]),
            ""
        ));
        assert!(same_origin(
            &headers(&[
                ("host", "10.0.0.5:8080"),
                ("origin", "https://voice.example.com")
            ]),
            "voice.example.com"
        ));
    }

    #[test]
    fn cookies() {
        let h = headers(&[("cookie", "a=1; voxbridge_console=abc ; b=2")]);
        assert_eq!(cookie(&h, COOKIE), Some("abc"));
        assert_eq!(cookie(&h, "b"), Some("2"));
        assert_eq!(cookie(&h, "c"), None);
        let c = set_cookie("abc", true, Duration::from_secs(60)).unwrap();
        let c = c.to_str().unwrap();
        for part in [
            "HttpOnly",
            "SameSite=Strict",
            "Secure",
            "Path=/console",
            "Max-Age=60",
        ] {
            assert!(c.contains(part), "{c}");
        }
        let plain = set_cookie("abc", false, Duration::from_secs(60)).unwrap();
        assert!(!plain.to_str().unwrap().contains("Secure"));
        assert!(set_cookie("a\nb", false, Duration::from_secs(1)).is_none());
    }
}
