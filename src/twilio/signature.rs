//! Twilio request signatures (`X-Twilio-Signature`) and voxbridge's per-stream tokens.
//!
//! Twilio signs each request with HMAC-SHA1 keyed by the account's auth token, over the full
//! public URL followed by every POST parameter sorted by name (name then value, no
//! separators), base64-encoded. A WebSocket upgrade has no body: only its `wss://` URL is
//! signed, and Twilio advises also trying the URL with a trailing `/`. Comparisons are
//! constant-time (`Mac::verify_slice`). Pure functions: no I/O, no clock but the one passed in.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;
use sha2::Sha256;

type HmacSha1 = Hmac<Sha1>;
type HmacSha256 = Hmac<Sha256>;

/// The signature Twilio computes for `url` and POST `params`.
pub fn compute(auth_token: &str, url: &str, params: &[(String, String)]) -> String {
    let Ok(mut mac) = HmacSha1::new_from_slice(auth_token.as_bytes()) else {
        return String::new(); // HMAC takes keys of any length; unreachable
    };
    feed(&mut mac, url, params);
    STANDARD.encode(mac.finalize().into_bytes())
}

fn feed(mac: &mut HmacSha1, url: &str, params: &[(String, String)]) {
    mac.update(url.as_bytes());
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    sorted.sort();
    for (name, value) in sorted {
        mac.update(name.as_bytes());
        mac.update(value.as_bytes());
    }
}

/// Does `signature` match `url` + `params`? Constant-time.
pub fn verify(auth_token: &str, url: &str, params: &[(String, String)], signature: &str) -> bool {
    let Ok(expected) = STANDARD.decode(signature.trim()) else {
        return false;
    };
    let Ok(mut mac) = HmacSha1::new_from_slice(auth_token.as_bytes()) else {
        return false;
    };
    feed(&mut mac, url, params);
    mac.verify_slice(&expected).is_ok()
}

/// The URL variants Twilio may have signed: as given, without the port (Twilio drops it for
/// HTTPS callbacks), and — for WebSocket upgrades — with and without a trailing `/`.
pub fn candidate_urls(scheme: &str, host: &str, path_and_query: &str) -> Vec<String> {
    let mut hosts = vec![host.to_owned()];
    if let Some((bare, port)) = host.rsplit_once(':')
        && port.chars().all(|c| c.is_ascii_digit())
        && !bare.ends_with(']')
    {
        hosts.push(bare.to_owned());
    }
    let (path, query) = match path_and_query.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (path_and_query, None),
    };
    let slashed = if path.ends_with('/') {
        path.trim_end_matches('/').to_owned()
    } else {
        format!("{path}/")
    };
    let mut urls = Vec::new();
    for h in &hosts {
        for p in [path, slashed.as_str()] {
            let url = match query {
                Some(q) => format!("{scheme}://{h}{p}?{q}"),
                None => format!("{scheme}://{h}{p}"),
            };
            if !urls.contains(&url) {
                urls.push(url);
            }
        }
    }
    urls
}

/// A short-lived token binding a media stream to the call the webhook answered:
/// `{expiry_unix}.{base64url(HMAC-SHA256(secret, call_sid "." expiry))}`.
pub fn stream_token(secret: &str, call_sid: &str, expires_at_unix: u64) -> String {
    format!(
        "{expires_at_unix}.{}",
        token_mac(secret, call_sid, expires_at_unix)
    )
}

fn token_mac(secret: &str, call_sid: &str, expiry: u64) -> String {
    let Ok(mut mac) = HmacSha256::new_from_slice(secret.as_bytes()) else {
        return String::new();
    };
    mac.update(call_sid.as_bytes());
    mac.update(b".");
    mac.update(expiry.to_string().as_bytes());
    URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
}

/// Why a stream token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenError {
    Missing,
    Malformed,
    Mismatch,
    Expired,
}

impl TokenError {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenError::Missing => "missing",
            TokenError::Malformed => "malformed",
            TokenError::Mismatch => "mismatch",
            TokenError::Expired => "expired",
        }
    }
}

/// Check a stream token for `call_sid` at time `now_unix`. Constant-time on the MAC.
pub fn check_stream_token(
    secret: &str,
    call_sid: &str,
    token: Option<&str>,
    now_unix: u64,
) -> Result<(), TokenError> {
    let token = token.ok_or(TokenError::Missing)?;
    let (expiry, mac) = token.split_once('.').ok_or(TokenError::Malformed)?;
    let expiry: u64 = expiry.parse().map_err(|_| TokenError::Malformed)?;
    let given = URL_SAFE_NO_PAD
        .decode(mac)
        .map_err(|_| TokenError::Malformed)?;
    let mut h = HmacSha256::new_from_slice(secret.as_bytes()).map_err(|_| TokenError::Malformed)?;
    h.update(call_sid.as_bytes());
    h.update(b".");
    h.update(expiry.to_string().as_bytes());
    h.verify_slice(&given).map_err(|_| TokenError::Mismatch)?;
    if now_unix > expiry {
        return Err(TokenError::Expired);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(from: &str) -> Vec<(String, String)> {
        [
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", from),
            ("Digits", "1234"),
            ("From", from),
            ("To", "+18005551212"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    #[test]
    fn reference_test_vectors() {
        let url = "https://example.com/myapp.php?foo=1&bar=2";
        let sig = compute("12345", url, &params("+14158675310"));
        assert_eq!(sig, "L/OH5YylLD5NRKLltdqwSvS0BnU=");
        assert!(verify("12345", url, &params("+14158675310"), &sig));
        let url = "https://mycompany.com/myapp.php?foo=1&bar=2";
        assert_eq!(
            compute("12345", url, &params("+12349013030")),
            "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
        );
    }

    #[test]
    fn verify_rejects_tampering() {
        let url = "https://example.com/myapp.php?foo=1&bar=2";
        let p = params("+14158675310");
        assert!(!verify("12345", url, &p, "L/OH5YylLD5NRKLltdqwSvS0BnX="));
        assert!(!verify("wrong", url, &p, "L/OH5YylLD5NRKLltdqwSvS0BnU="));
        assert!(!verify(
            "12345",
            "https://example.com/other",
            &p,
            "L/OH5YylLD5NRKLltdqwSvS0BnU="
        ));
        assert!(!verify("12345", url, &p, "not base64!"));
        assert!(!verify("12345", url, &p, ""));
    }

    #[test]
    fn url_candidates() {
        let c = candidate_urls("wss", "voice.example.com:443", "/twilio/media");
        assert!(c.contains(&"wss://voice.example.com:443/twilio/media".to_string()));
        assert!(c.contains(&"wss://voice.example.com/twilio/media".to_string()));
        assert!(c.contains(&"wss://voice.example.com/twilio/media/".to_string()));
        let q = candidate_urls("https", "h.example", "/twilio/voice?x=1");
        assert_eq!(q[0], "https://h.example/twilio/voice?x=1");
        assert!(q.contains(&"https://h.example/twilio/voice/?x=1".to_string()));
    }

    #[test]
    fn stream_tokens() {
        let t = stream_token("s3cret", "CA1", 1000);
        assert_eq!(check_stream_token("s3cret", "CA1", Some(&t), 999), Ok(()));
        assert_eq!(
            check_stream_token("s3cret", "CA1", Some(&t), 1001),
            Err(TokenError::Expired)
        );
        assert_eq!(
            check_stream_token("s3cret", "CA2", Some(&t), 999),
            Err(TokenError::Mismatch)
        );
        assert_eq!(
            check_stream_token("other", "CA1", Some(&t), 999),
            Err(TokenError::Mismatch)
        );
        assert_eq!(
            check_stream_token("s3cret", "CA1", None, 999),
            Err(TokenError::Missing)
        );
        assert_eq!(
            check_stream_token("s3cret", "CA1", Some("x"), 999),
            Err(TokenError::Malformed)
        );
        let forged = format!("99999.{}", t.split_once('.').map(|x| x.1).unwrap_or(""));
        assert_eq!(
            check_stream_token("s3cret", "CA1", Some(&forged), 999),
            Err(TokenError::Mismatch)
        );
    }
}
