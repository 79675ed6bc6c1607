//! The one place that decides our public URL: the one Twilio signs (webhooks and the media
//! upgrade) and the one the TwiML tells Twilio to stream to.
//!
//! Host: `server.public_host` when set; else, from a trusted proxy, `X-Forwarded-Host`; else
//! the request's `Host`; else `localhost`. Scheme: `security.public_scheme` (`https`/`http`),
//! or a trusted proxy's `X-Forwarded-Proto`; the WebSocket form of it is `wss`/`ws`.
//! A host that is not a plain authority (`name[:port]`, `[v6]:port`) is ignored, so request
//! headers can never inject anything into a URL or into TwiML. Pure: no I/O.

use axum::http::{HeaderMap, header};

use crate::config::Config;

/// The scheme and host Twilio reaches us at, for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicOrigin {
    /// TLS in front of us (`https`/`wss`) or not.
    pub secure: bool,
    /// `name[:port]`.
    pub host: String,
}

impl PublicOrigin {
    /// The origin of a request with `headers`; `via_trusted_proxy` lets `X-Forwarded-Proto` and
    /// `X-Forwarded-Host` count (see [`super::client_ip::Client`]).
    pub fn of(config: &Config, headers: &HeaderMap, via_trusted_proxy: bool) -> Self {
        let first_value = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.split(',').next())
                .map(str::trim)
        };
        let forwarded = |name: &str| first_value(name).filter(|_| via_trusted_proxy);
        let configured = Some(config.server.public_host.as_str());
        let host = [
            configured,
            forwarded("x-forwarded-host"),
            first_value(header::HOST.as_str()),
        ]
        .into_iter()
        .flatten()
        .find(|h| valid_authority(h))
        .unwrap_or("localhost")
        .to_owned();
        let secure = match forwarded("x-forwarded-proto").map(str::to_ascii_lowercase) {
            Some(p) if p == "https" || p == "wss" => true,
            Some(p) if p == "http" || p == "ws" => false,
            _ => config.security.public_scheme != "http",
        };
        Self { secure, host }
    }

    /// `https` or `http`.
    pub fn http_scheme(&self) -> &'static str {
        if self.secure { "https" } else { "http" }
    }

    /// `wss` or `ws`.
    pub fn ws_scheme(&self) -> &'static str {
        if self.secure { "wss" } else { "ws" }
    }

    /// The scheme of a request of this kind.
    pub fn scheme(&self, websocket: bool) -> &'static str {
        if websocket {
            self.ws_scheme()
        } else {
            self.http_scheme()
        }
    }

    /// `wss://HOST{path}` (or `ws://`), e.g. the TwiML `<Stream url>`.
    pub fn ws_url(&self, path: &str) -> String {
        format!("{}://{}{path}", self.ws_scheme(), self.host)
    }
}

/// `host`, `host:port`, `1.2.3.4:5`, `[2001:db8::1]:443` — nothing else (no path, quote, space).
fn valid_authority(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 255
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']' | '_'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn host_order_and_scheme() {
        let mut config = Config::default();
        let h = headers(&[
            ("host", "internal:8080"),
            ("x-forwarded-host", "voice.example.com"),
            ("x-forwarded-proto", "http"),
        ]);
        // Not from a trusted proxy: forwarded headers are ignored.
        let o = PublicOrigin::of(&config, &h, false);
        assert_eq!(
            (o.http_scheme(), o.host.as_str()),
            ("https", "internal:8080")
        );
        assert_eq!(
            o.ws_url("/twilio/media"),
            "wss://internal:8080/twilio/media"
        );
        // From one: they count.
        let o = PublicOrigin::of(&config, &h, true);
        assert_eq!(
            (o.scheme(true), o.host.as_str()),
            ("ws", "voice.example.com")
        );
        // Configured host wins over everything.
        config.server.public_host = "media.example.org".into();
        let o = PublicOrigin::of(&config, &h, true);
        assert_eq!(o.host, "media.example.org");
        // public_scheme = http gives ws:// streams.
        config.server.public_host.clear();
        config.security.public_scheme = "http".into();
        let o = PublicOrigin::of(&config, &headers(&[("host", "h:1")]), false);
        assert_eq!(o.ws_url("/m"), "ws://h:1/m");
    }

    #[test]
    fn hostile_hosts_are_ignored() {
        let config = Config::default();
        for bad in ["evil/\"><x", "a b", "", "x\"y"] {
            let o = PublicOrigin::of(&config, &headers(&[("host", bad)]), false);
            assert_eq!(o.host, "localhost", "{bad:?}");
        }
        let o = PublicOrigin::of(&config, &headers(&[("host", "[2001:db8::1]:443")]), false);
        assert_eq!(o.host, "[2001:db8::1]:443");
        let o = PublicOrigin::of(&config, &HeaderMap::new(), false);
        assert_eq!(o.host, "localhost");
    }
}
