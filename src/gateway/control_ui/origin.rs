//! Which browser pages may open the gateway's WebSocket: the check made on
//! every upgrade, before the socket exists.
//!
//! Why: a browser lets any web page open a WebSocket to any address, the
//! gateway's loopback port included, and sends the page's `Origin`. With
//! no auth (allowed on loopback) such a page would be an operator; with a
//! token it could still try tokens. So, as OpenClaw does
//! (`gateway.controlUi.allowedOrigins`, docs/gateway/config-gateway.md):
//!
//! - no `Origin` header: not a browser (OpenClaw's CLI, TUI, nodes, this
//!   repo's tests); allowed, the connect handshake authenticates it;
//! - an origin listed in `allowedOrigins` (exact `scheme://host[:port]`,
//!   or `"*"`): allowed;
//! - the page's own origin (its host and port are the `Host` the request
//!   was sent to) on a private host (loopback, RFC 1918, link-local,
//!   CGNAT/Tailscale, IPv6 ULA, `localhost`, `.local`, `.ts.net`): allowed.
//!   A public name is not enough: DNS rebinding makes an attacker's name
//!   point at this port with a matching `Host`. OpenClaw's
//!   `dangerouslyAllowHostHeaderOriginFallback` lifts that restriction;
//! - anything else, `Origin: null` included: refused.
//!
//! Pure: the caller passes the headers and the config.

use std::net::IpAddr;

/// What the config says about origins.
#[derive(Debug, Clone, Copy, Default)]
pub struct OriginPolicy<'a> {
    pub allowed_origins: &'a [String],
    pub host_header_fallback: bool,
}

/// Why an upgrade was allowed (for the diagnostic log and tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Allowed {
    NoOrigin,
    Listed,
    SameOrigin,
}

/// Checks a WebSocket upgrade's `Origin` against its `Host`. The error is
/// the message the refused client gets.
pub fn check(
    origin: Option<&str>,
    host: Option<&str>,
    policy: &OriginPolicy,
) -> Result<Allowed, String> {
    let Some(origin) = origin.map(str::trim) else {
        return Ok(Allowed::NoOrigin);
    };
    let refused = || {
        format!(
            "origin not allowed: {origin} (open the control UI from the gateway's own address, \
             or add the origin to gateway.controlUi.allowedOrigins)"
        )
    };
    let parsed = parse_origin(origin);
    let listed = policy.allowed_origins.iter().any(|allowed| {
        let allowed = allowed.trim();
        allowed == "*" || (parsed.is_some() && parse_origin(allowed) == parsed)
    });
    if listed {
        return Ok(Allowed::Listed);
    }
    let Some(parsed) = parsed else {
        return Err(refused());
    };
    let Some((host_name, host_port)) = host.and_then(split_authority) else {
        return Err(refused());
    };
    let same = parsed.host == host_name && parsed.port == host_port.unwrap_or(parsed.port);
    if same && (policy.host_header_fallback || is_private_host(&parsed.host)) {
        Ok(Allowed::SameOrigin)
    } else {
        Err(refused())
    }
}

/// An origin's parts, normalised: lowercase, the scheme's default port
/// made explicit, IPv6 without brackets.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Origin {
    scheme: String,
    host: String,
    port: u16,
}

fn parse_origin(text: &str) -> Option<Origin> {
    let text = text.to_ascii_lowercase();
    let (scheme, rest) = text.split_once("://")?;
    let default_port = match scheme {
        "http" => 80,
        "https" => 443,
        _ => return None,
    };
    // An origin has no path, query, user info or fragment (one trailing
    // slash is tolerated in a configured entry).
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    if authority.contains(['/', '?', '#', '@']) {
        return None;
    }
    let (host, port) = split_authority(authority)?;
    Some(Origin {
        scheme: scheme.to_owned(),
        host,
        port: port.unwrap_or(default_port),
    })
}

/// `host[:port]` or `[v6][:port]`, the host lowercased without brackets.
fn split_authority(authority: &str) -> Option<(String, Option<u16>)> {
    let authority = authority.trim().to_ascii_lowercase();
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        let port = match after {
            "" => None,
            after => Some(after.strip_prefix(':')?),
        };
        (host.to_owned(), port)
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) if !host.contains(':') => (host.to_owned(), Some(port)),
            Some(_) => return None,
            None => (authority.clone(), None),
        }
    };
    if host.is_empty() {
        return None;
    }
    let port = match port {
        None => None,
        Some(port) => Some(port.parse::<u16>().ok()?),
    };
    Some((host, port))
}

/// Hosts a DNS-rebinding attacker cannot name: private addresses, and the
/// names that resolve only locally or inside a tailnet.
fn is_private_host(host: &str) -> bool {
    if let Ok(address) = host.parse::<IpAddr>() {
        return match address {
            IpAddr::V4(v4) => {
                let [a, b, ..] = v4.octets();
                v4.is_loopback()
                    || v4.is_private()
                    || v4.is_link_local()
                    // 100.64.0.0/10: carrier-grade NAT, Tailscale's range.
                    || (a == 100 && (64..128).contains(&b))
            }
            IpAddr::V6(v6) => {
                let first = v6.segments()[0];
                v6.is_loopback()
                    || (first & 0xfe00) == 0xfc00 // unique local
                    || (first & 0xffc0) == 0xfe80 // link-local
                    || v6.to_ipv4_mapped().is_some_and(|v4| is_private_host(&v4.to_string()))
            }
        };
    }
    host == "localhost"
        || host.ends_with(".localhost")
        || host.ends_with(".local")
        || host.ends_with(".ts.net")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(allowed: &[String]) -> OriginPolicy<'_> {
        OriginPolicy {
            allowed_origins: allowed,
            host_header_fallback: false,
        }
    }

    #[test]
    fn clients_without_an_origin_are_left_to_the_handshake() {
        assert_eq!(
            check(None, Some("127.0.0.1:18789"), &policy(&[])),
            Ok(Allowed::NoOrigin)
        );
    }

    #[test]
    fn a_private_page_of_the_same_origin_is_allowed() {
        let none = policy(&[]);
        for (origin, host) in [
            ("http://127.0.0.1:18789", "127.0.0.1:18789"),
            ("http://localhost:18789", "LOCALHOST:18789"),
            ("http://[::1]:18789", "[::1]:18789"),
            ("http://192.168.1.20:18789", "192.168.1.20:18789"),
            ("https://box.tail1234.ts.net", "box.tail1234.ts.net"),
            ("http://printer.local", "printer.local:80"),
            ("http://100.101.102.103:18789", "100.101.102.103:18789"),
        ] {
            assert_eq!(
                check(Some(origin), Some(host), &none),
                Ok(Allowed::SameOrigin),
                "{origin} on {host}"
            );
        }
    }

    #[test]
    fn other_origins_are_refused_unless_listed() {
        let none = policy(&[]);
        for (origin, host) in [
            // Another port is another origin.
            ("http://127.0.0.1:8080", "127.0.0.1:18789"),
            ("https://evil.example", "127.0.0.1:18789"),
            // DNS rebinding: the attacker's name with a matching Host.
            ("http://evil.example:18789", "evil.example:18789"),
            ("null", "127.0.0.1:18789"),
            ("http://127.0.0.1:18789/path", "127.0.0.1:18789"),
            ("file://", "127.0.0.1:18789"),
        ] {
            let refused = check(Some(origin), Some(host), &none).unwrap_err();
            assert!(refused.contains("allowedOrigins"), "{refused}");
        }
        assert!(check(Some("http://127.0.0.1:18789"), None, &none).is_err());
        let listed = ["https://Control.Example/".to_owned()];
        assert_eq!(
            check(
                Some("https://control.example"),
                Some("10.0.0.1:18789"),
                &policy(&listed)
            ),
            Ok(Allowed::Listed)
        );
        assert!(
            check(
                Some("https://control.example:8443"),
                Some("10.0.0.1:18789"),
                &policy(&listed)
            )
            .is_err()
        );
        let any = ["*".to_owned()];
        assert_eq!(
            check(Some("null"), Some("x"), &policy(&any)),
            Ok(Allowed::Listed)
        );
    }

    #[test]
    fn the_host_header_fallback_allows_public_same_origin_pages_only() {
        let fallback = OriginPolicy {
            allowed_origins: &[],
            host_header_fallback: true,
        };
        assert_eq!(
            check(
                Some("https://gw.example.com"),
                Some("gw.example.com"),
                &fallback
            ),
            Ok(Allowed::SameOrigin)
        );
        assert!(
            check(
                Some("https://evil.example"),
                Some("gw.example.com"),
                &fallback
            )
            .is_err()
        );
    }
}
