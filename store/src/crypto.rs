//! Token cryptography: TOTP (RFC 6238, HmacSHA1), JWT HS256, SHA-256 hash tokens, Base32.
//!
//! All functions are pure: time is a parameter.

use std::sync::OnceLock;

use data_encoding::{Encoding, Specification, BASE64URL_NOPAD, HEXLOWER};
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Map, Value};
use sha1::Sha1;
use sha2::{Digest, Sha256};

/// RFC 6238 TOTP with HmacSHA1: counter = floor(unix_ms / (period_s * 1000)) as 8 bytes
/// big-endian, RFC 4226 dynamic truncation, `digits` decimal digits, zero-padded.
///
/// `period_s` 0 is treated as 1; `digits` is clamped to 1..=9.
pub fn totp(key: &[u8], unix_ms: u64, period_s: u64, digits: u32) -> String {
    let counter = unix_ms / (period_s.max(1) * 1000);
    hotp(key, counter, digits)
}

/// RFC 4226 HOTP with HmacSHA1.
pub fn hotp(key: &[u8], counter: u64, digits: u32) -> String {
    let digits = digits.clamp(1, 9);
    let Ok(mut mac) = Hmac::<Sha1>::new_from_slice(key) else {
        // HMAC accepts keys of any length; this branch cannot be taken.
        return String::new();
    };
    mac.update(&counter.to_be_bytes());
    let h = mac.finalize().into_bytes();
    let offset = usize::from(h.get(19).copied().unwrap_or(0) & 0x0f);
    let mut word = [0u8; 4];
    for (i, w) in word.iter_mut().enumerate() {
        *w = h.get(offset + i).copied().unwrap_or(0);
    }
    let bin = u32::from_be_bytes(word) & 0x7fff_ffff;
    let code = bin % 10u32.pow(digits);
    format!("{code:0width$}", width = digits as usize)
}

/// The AMS TOTP key of a subscriber without a stored secret: the bytes of
/// `secret + subscriberId + streamId + type`, padded with `'X'` to a multiple of 8.
pub fn ams_derived_totp_key(
    secret: &str,
    subscriber_id: &str,
    stream_id: &str,
    kind: &str,
) -> Vec<u8> {
    let mut key = format!("{secret}{subscriber_id}{stream_id}{kind}").into_bytes();
    while key.len() % 8 != 0 {
        key.push(b'X');
    }
    key
}

fn base32() -> &'static Encoding {
    static B32: OnceLock<Encoding> = OnceLock::new();
    B32.get_or_init(|| {
        let mut spec = Specification::new();
        spec.symbols.push_str("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567");
        spec.translate.from.push_str("abcdefghijklmnopqrstuvwxyz");
        spec.translate.to.push_str("ABCDEFGHIJKLMNOPQRSTUVWXYZ");
        spec.check_trailing_bits = false;
        spec.encoding()
            .unwrap_or_else(|_| data_encoding::BASE32_NOPAD.clone())
    })
}

/// Decodes Base32 (RFC 4648 alphabet, case-insensitive, `=` padding optional). `None` if invalid
/// or empty.
pub fn base32_decode(s: &str) -> Option<Vec<u8>> {
    let s = s.trim().trim_end_matches('=');
    if s.is_empty() {
        return None;
    }
    base32().decode(s.as_bytes()).ok().filter(|k| !k.is_empty())
}

/// Encodes Base32 without padding.
pub fn base32_encode(bytes: &[u8]) -> String {
    base32().encode(bytes)
}

/// The AMS hash token: hex SHA-256 of `streamId + type + secret`.
pub fn hash_token(stream_id: &str, kind: &str, secret: &str) -> String {
    let mut h = Sha256::new();
    h.update(stream_id.as_bytes());
    h.update(kind.as_bytes());
    h.update(secret.as_bytes());
    HEXLOWER.encode(&h.finalize())
}

/// Compares two byte strings in time independent of where they differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Why a JWT was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum JwtError {
    /// Not three base64url parts of JSON.
    Malformed,
    /// `alg` is not HS256.
    UnsupportedAlg,
    /// The signature does not match.
    BadSignature,
    /// `exp` is past (or `nbf` in the future).
    Expired,
    /// The key is empty.
    NoKey,
    /// No `exp` claim: a token that never expires is refused.
    NoExpiry,
    /// A stream token (`streamId` or `type` publish/play claim) offered to the REST API.
    StreamTokenForRest,
}

impl std::fmt::Display for JwtError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            JwtError::Malformed => "malformed JWT",
            JwtError::UnsupportedAlg => "JWT alg is not HS256",
            JwtError::BadSignature => "JWT signature does not match",
            JwtError::Expired => "JWT expired or not yet valid",
            JwtError::NoKey => "no JWT key configured",
            JwtError::NoExpiry => "JWT has no exp claim",
            JwtError::StreamTokenForRest => "a stream JWT is not a REST API JWT",
        })
    }
}

impl std::error::Error for JwtError {}

fn hs256(key: &[u8]) -> Option<Hmac<Sha256>> {
    Hmac::<Sha256>::new_from_slice(key).ok()
}

/// Signs `claims` as an HS256 JWT.
pub fn jwt_sign(claims: &Map<String, Value>, key: &str) -> Result<String, JwtError> {
    if key.is_empty() {
        return Err(JwtError::NoKey);
    }
    let header = BASE64URL_NOPAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let payload = serde_json::to_vec(claims).map_err(|_| JwtError::Malformed)?;
    let signing_input = format!("{header}.{}", BASE64URL_NOPAD.encode(&payload));
    let mut mac = hs256(key.as_bytes()).ok_or(JwtError::NoKey)?;
    mac.update(signing_input.as_bytes());
    let sig = BASE64URL_NOPAD.encode(&mac.finalize().into_bytes());
    Ok(format!("{signing_input}.{sig}"))
}

/// Verifies an HS256 JWT and returns its claims. `exp` (if present) must be after `now_s`,
/// `nbf` (if present) at or before it.
pub fn jwt_verify(token: &str, key: &str, now_s: u64) -> Result<Map<String, Value>, JwtError> {
    if key.is_empty() {
        return Err(JwtError::NoKey);
    }
    let token = token.trim();
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwtError::Malformed);
    };
    let header: Value = BASE64URL_NOPAD
        .decode(h.as_bytes())
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or(JwtError::Malformed)?;
    if header.get("alg").and_then(Value::as_str) != Some("HS256") {
        return Err(JwtError::UnsupportedAlg);
    }
    let sig = BASE64URL_NOPAD
        .decode(s.as_bytes())
        .map_err(|_| JwtError::Malformed)?;
    let mut mac = hs256(key.as_bytes()).ok_or(JwtError::NoKey)?;
    mac.update(h.as_bytes());
    mac.update(b".");
    mac.update(p.as_bytes());
    mac.verify_slice(&sig).map_err(|_| JwtError::BadSignature)?;
    let claims: Map<String, Value> = BASE64URL_NOPAD
        .decode(p.as_bytes())
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or(JwtError::Malformed)?;
    let now = now_s as f64;
    match claims.get("exp") {
        None => {}
        Some(v) => match v.as_f64() {
            Some(exp) if now < exp => {}
            _ => return Err(JwtError::Expired),
        },
    }
    match claims.get("nbf") {
        None => {}
        Some(v) => match v.as_f64() {
            Some(nbf) if nbf <= now => {}
            _ => return Err(JwtError::Expired),
        },
    }
    Ok(claims)
}

/// Verifies a stream (publish/play) JWT: [`jwt_verify`], and an `exp` claim is required, so a
/// leaked token cannot be used for ever.
pub fn jwt_verify_stream(
    token: &str,
    key: &str,
    now_s: u64,
) -> Result<Map<String, Value>, JwtError> {
    let claims = jwt_verify(token, key, now_s)?;
    if !claims.contains_key("exp") {
        return Err(JwtError::NoExpiry);
    }
    Ok(claims)
}

/// Verifies a REST API JWT: [`jwt_verify_stream`]'s rules (an `exp` is required), and the token
/// must not be a stream token. A stream JWT names its stream (`streamId`) and its action
/// (`type`: `publish` or `play`); one carrying either claim is refused here, so a viewer's
/// play token never opens the admin API, even when an operator set `jwtSecretKey` equal to
/// `jwtStreamSecretKey`. (The other way round a REST token has no `streamId` claim, which the
/// stream check requires.)
pub fn jwt_verify_rest(token: &str, key: &str, now_s: u64) -> Result<Map<String, Value>, JwtError> {
    let claims = jwt_verify_stream(token, key, now_s)?;
    let stream_type = matches!(
        claims.get("type").and_then(Value::as_str),
        Some("publish" | "play")
    );
    if claims.contains_key("streamId") || stream_type {
        return Err(JwtError::StreamTokenForRest);
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;

    const RFC_SEED: &[u8] = b"12345678901234567890";
    /// RFC 6238 appendix B, SHA1 column: (unix seconds, 8-digit TOTP).
    const RFC_VECTORS: &[(u64, &str)] = &[
        (59, "94287082"),
        (1_111_111_109, "07081804"),
        (1_111_111_111, "14050471"),
        (1_234_567_890, "89005924"),
        (2_000_000_000, "69279037"),
        (20_000_000_000, "65353130"),
    ];

    #[test]
    fn totp_rfc6238_sha1_vectors_8_digits() {
        for (t, want) in RFC_VECTORS {
            assert_eq!(totp(RFC_SEED, t * 1000, 30, 8), *want, "t={t}");
        }
    }

    #[test]
    fn totp_rfc6238_sha1_vectors_6_digits() {
        // 6-digit truncation is the same binary value mod 10^6: the last 6 digits.
        for (t, want) in RFC_VECTORS {
            assert_eq!(totp(RFC_SEED, t * 1000, 30, 6), want[2..], "t={t}");
            // milliseconds inside the same window give the same code
            assert_eq!(totp(RFC_SEED, t * 1000 + 999, 30, 6), want[2..]);
        }
    }

    #[test]
    fn hotp_rfc4226_vectors() {
        let want = ["755224", "287082", "359152", "969429", "338314"];
        for (c, w) in want.iter().enumerate() {
            assert_eq!(hotp(RFC_SEED, c as u64, 6), *w);
        }
    }

    #[test]
    fn derived_key_is_padded_with_x() {
        let k = ams_derived_totp_key("sec", "sub1", "s", "play");
        assert_eq!(k, b"secsub1splayXXXX");
        assert_eq!(ams_derived_totp_key("12345678", "", "", "").len(), 8);
    }

    #[test]
    fn base32_round_trip_and_leniency() {
        assert_eq!(
            base32_decode("JBSWY3DPEHPK3PXP").unwrap(),
            b"Hello!\xde\xad\xbe\xef"
        );
        assert_eq!(
            base32_decode("jbswy3dpehpk3pxp").unwrap(),
            b"Hello!\xde\xad\xbe\xef"
        );
        assert_eq!(base32_decode("MZXW6===").unwrap(), b"foo");
        assert!(base32_decode("not base32!").is_none());
        assert!(base32_decode("").is_none());
        assert_eq!(base32_decode(&base32_encode(b"abcde")).unwrap(), b"abcde");
    }

    #[test]
    fn hash_token_is_sha256_hex() {
        // sha256("") is well known; check the concatenation order with a known value.
        assert_eq!(
            hash_token("", "", ""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(hash_token("s1", "play", "k"), hash_token("s1play", "", "k"));
        assert_ne!(
            hash_token("s1", "play", "k"),
            hash_token("s1", "publish", "k")
        );
    }

    #[test]
    fn jwt_round_trip_and_refusals() {
        let key = "0123456789abcdef0123456789abcdef";
        let mut claims = Map::new();
        claims.insert("streamId".into(), "stream1".into());
        claims.insert("type".into(), "publish".into());
        let t = jwt_sign(&claims, key).unwrap();
        assert_eq!(jwt_verify(&t, key, 5).unwrap(), claims);
        assert_eq!(
            jwt_verify(&t, "another key another key another k", 5),
            Err(JwtError::BadSignature)
        );
        claims.insert("exp".into(), 100.into());
        let t = jwt_sign(&claims, key).unwrap();
        assert!(jwt_verify(&t, key, 99).is_ok());
        assert_eq!(jwt_verify(&t, key, 100), Err(JwtError::Expired));
        assert_eq!(jwt_verify("a.b", key, 0), Err(JwtError::Malformed));
        assert_eq!(jwt_verify(&t, "", 0), Err(JwtError::NoKey));
        // alg none is refused even with a "valid" shape
        let none = format!(
            "{}.{}.",
            BASE64URL_NOPAD.encode(br#"{"alg":"none"}"#),
            BASE64URL_NOPAD.encode(br#"{"streamId":"s"}"#)
        );
        assert_eq!(jwt_verify(&none, key, 0), Err(JwtError::UnsupportedAlg));
        // tampered payload
        let mut parts: Vec<&str> = t.split('.').collect();
        let other = BASE64URL_NOPAD.encode(br#"{"streamId":"x","type":"publish"}"#);
        parts[1] = &other;
        assert_eq!(
            jwt_verify(&parts.join("."), key, 0),
            Err(JwtError::BadSignature)
        );
    }

    #[test]
    fn jwt_known_token_from_another_implementation() {
        // HS256 of {"streamId":"stream1","type":"publish"} with key "secret" as made by jwt.io
        // style encoders (header {"alg":"HS256","typ":"JWT"}); we sign the same bytes.
        let mut claims = Map::new();
        claims.insert("streamId".into(), "stream1".into());
        claims.insert("type".into(), "publish".into());
        let t = jwt_sign(&claims, "secret").unwrap();
        assert!(t.starts_with("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."));
        assert!(jwt_verify(&t, "secret", 0).is_ok());
    }

    #[test]
    fn stream_and_rest_jwts_need_exp_and_are_not_interchangeable() {
        let key = "0123456789abcdef0123456789abcdef";
        let sign = |v: Value| jwt_sign(v.as_object().unwrap(), key).unwrap();
        let no_exp = sign(serde_json::json!({"streamId":"s1","type":"play"}));
        assert!(
            jwt_verify(&no_exp, key, 5).is_ok(),
            "the plain verifier is unchanged"
        );
        assert_eq!(jwt_verify_stream(&no_exp, key, 5), Err(JwtError::NoExpiry));
        assert_eq!(jwt_verify_rest(&no_exp, key, 5), Err(JwtError::NoExpiry));
        let stream = sign(serde_json::json!({"streamId":"s1","type":"play","exp":100}));
        assert!(jwt_verify_stream(&stream, key, 5).is_ok());
        assert_eq!(
            jwt_verify_rest(&stream, key, 5),
            Err(JwtError::StreamTokenForRest)
        );
        let typed = sign(serde_json::json!({"type":"publish","exp":100}));
        assert_eq!(
            jwt_verify_rest(&typed, key, 5),
            Err(JwtError::StreamTokenForRest)
        );
        let admin = sign(serde_json::json!({"sub":"admin","exp":100}));
        assert!(jwt_verify_rest(&admin, key, 5).is_ok());
        assert_eq!(jwt_verify_rest(&admin, key, 100), Err(JwtError::Expired));
    }

    #[test]
    fn constant_time_eq_works() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
