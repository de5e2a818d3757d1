//! AWS Signature Version 4 for one request: what Bedrock wants in
//! `Authorization` when the caller holds AWS access keys.
//!
//! Why our own and not `aws-sigv4`: that crate needs Rust 1.94.1 (this
//! workspace promises 1.90) and brings `aws-smithy-types`,
//! `aws-smithy-runtime-api`, `aws-smithy-http`, `aws-credential-types`,
//! `time` and `hmac`; the algorithm is a canonical request, a string to
//! sign and four HMACs, done here with `ring` (already built for TLS) and
//! `sha2`. It is checked against AWS's published example.
//!
//! Invariant: the signature covers the exact body bytes sent; the secret
//! key and the signature live only in the request's headers, never in
//! what is recorded.

use sha2::{Digest, Sha256};

use crate::credentials::aws::Keys;

pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key);
    ring::hmac::sign(&key, data).as_ref().to_vec()
}

/// RFC 3986 encoding as SigV4 wants it: everything but `A-Za-z0-9-._~`
/// (and `/` when `keep_slash`).
pub fn uri_encode(text: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric()
            || matches!(byte, b'-' | b'.' | b'_' | b'~')
            || (keep_slash && byte == b'/')
        {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// The canonical request. `path` is as sent (already encoded once): every
/// service but S3 encodes it again. `headers` are (lowercase name, value),
/// sorted by name.
pub fn canonical_request(
    method: &str,
    path: &str,
    query: &str,
    headers: &[(String, String)],
    payload_hash: &str,
) -> String {
    let canonical_headers: String = headers
        .iter()
        .map(|(name, value)| format!("{name}:{}\n", value.trim()))
        .collect();
    let signed = signed_headers(headers);
    format!(
        "{method}\n{}\n{query}\n{canonical_headers}\n{signed}\n{payload_hash}",
        uri_encode(path, true)
    )
}

pub fn signed_headers(headers: &[(String, String)]) -> String {
    headers
        .iter()
        .map(|(name, _)| name.as_str())
        .collect::<Vec<_>>()
        .join(";")
}

/// `date/region/service/aws4_request`.
pub fn scope(amz_date: &str, region: &str, service: &str) -> String {
    format!("{}/{region}/{service}/aws4_request", &amz_date[..8])
}

/// The signature (hex) of a canonical request.
pub fn signature(
    secret: &str,
    amz_date: &str,
    region: &str,
    service: &str,
    canonical: &str,
) -> String {
    let string_to_sign = format!(
        "{ALGORITHM}\n{amz_date}\n{}\n{}",
        scope(amz_date, region, service),
        sha256_hex(canonical.as_bytes())
    );
    let date = hmac(
        format!("AWS4{secret}").as_bytes(),
        &amz_date.as_bytes()[..8],
    );
    let region = hmac(&date, region.as_bytes());
    let service = hmac(&region, service.as_bytes());
    let signing = hmac(&service, b"aws4_request");
    hex(&hmac(&signing, string_to_sign.as_bytes()))
}

/// A `POST` to sign: where it goes (`host` with a non-default port, the
/// path as sent) and what it carries.
pub struct Post<'a> {
    pub host: &'a str,
    pub path: &'a str,
    pub content_type: &'a str,
    pub body: &'a [u8],
}

/// The headers to add to `post`: `x-amz-date`, `x-amz-security-token`
/// (with a session token) and `authorization`. `amz_date` is
/// `YYYYMMDDTHHMMSSZ` (UTC).
pub fn sign_post(
    keys: &Keys,
    region: &str,
    service: &str,
    amz_date: &str,
    post: &Post<'_>,
) -> Vec<(&'static str, String)> {
    let mut headers = vec![
        ("content-type".to_owned(), post.content_type.to_owned()),
        ("host".to_owned(), post.host.to_owned()),
        ("x-amz-date".to_owned(), amz_date.to_owned()),
    ];
    if let Some(token) = &keys.session_token {
        headers.push(("x-amz-security-token".to_owned(), token.clone()));
    }
    let canonical = canonical_request("POST", post.path, "", &headers, &sha256_hex(post.body));
    let signature = signature(
        &keys.secret_access_key,
        amz_date,
        region,
        service,
        &canonical,
    );
    let mut out = vec![("x-amz-date", amz_date.to_owned())];
    if let Some(token) = &keys.session_token {
        out.push(("x-amz-security-token", token.clone()));
    }
    out.push((
        "authorization",
        format!(
            "{ALGORITHM} Credential={}/{}, SignedHeaders={}, Signature={signature}",
            keys.access_key_id,
            scope(amz_date, region, service),
            signed_headers(&headers)
        ),
    ));
    out
}

/// Now, as SigV4 writes it.
pub fn amz_date_now() -> String {
    jiff::Timestamp::now()
        .strftime("%Y%m%dT%H%M%SZ")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// AWS's worked example ("Signature Version 4 signing process":
    /// IAM ListUsers, 2015-08-30, the documentation's example key).
    #[test]
    fn the_documented_example_signs_as_aws_says() {
        let headers = vec![
            (
                "content-type".to_owned(),
                "application/x-www-form-urlencoded; charset=utf-8".to_owned(),
            ),
            ("host".to_owned(), "iam.amazonaws.com".to_owned()),
            ("x-amz-date".to_owned(), "20150830T123600Z".to_owned()),
        ];
        let canonical = canonical_request(
            "GET",
            "/",
            "Action=ListUsers&Version=2010-05-08",
            &headers,
            &sha256_hex(b""),
        );
        assert_eq!(
            sha256_hex(canonical.as_bytes()),
            "f536975d06c0309214f805bb90ccff089219ecd68b2577efef23edd43b7e1a59"
        );
        assert_eq!(
            signature(
                "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
                "20150830T123600Z",
                "us-east-1",
                "iam",
                &canonical
            ),
            "5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7"
        );
    }

    #[test]
    fn a_model_id_with_a_colon_is_encoded_twice_in_the_canonical_path() {
        let path = format!(
            "/model/{}/converse-stream",
            uri_encode("anthropic.claude-3-5-sonnet-20240620-v1:0", false)
        );
        assert_eq!(
            path,
            "/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse-stream"
        );
        let canonical = canonical_request("POST", &path, "", &[], "x");
        assert!(
            canonical.contains("v1%253A0/converse-stream"),
            "{canonical}"
        );
    }

    #[test]
    fn session_tokens_are_signed_and_sent() {
        let keys = Keys {
            access_key_id: "AKIDEXAMPLE".to_owned(),
            secret_access_key: "secret".to_owned(),
            session_token: Some("token".to_owned()),
        };
        let headers = sign_post(
            &keys,
            "eu-west-1",
            "bedrock",
            "20260101T000000Z",
            &Post {
                host: "h",
                path: "/",
                content_type: "application/json",
                body: b"{}",
            },
        );
        let auth = &headers.last().unwrap().1;
        assert!(auth.starts_with(
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20260101/eu-west-1/bedrock/aws4_request, \
             SignedHeaders=content-type;host;x-amz-date;x-amz-security-token, Signature="
        ));
        assert!(!auth.contains("secret"));
        assert_eq!(amz_date_now().len(), 16);
    }
}
