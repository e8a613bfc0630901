//! Which hosts a grant allows: entries of `allow`, and the loopback rule.

use std::net::IpAddr;

/// One entry of `allow`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Entry {
    host: Host,
    port: Option<u16>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Host {
    /// Any host (never a loopback one).
    Any,
    /// The subdomains of a domain (never a loopback one).
    Below(String),
    /// This host exactly (lowercase; an IP address in its canonical form).
    Exactly(String),
}

/// Parses an `allow` entry: `host`, `host:port`, `[v6]:port`, `*.domain` or `*`.
pub(crate) fn parse(entry: &str) -> Result<Entry, String> {
    let bad = |why: &str| format!("allow entry {entry:?}: {why}");
    let entry_l = entry.trim().to_ascii_lowercase();
    if entry_l.is_empty() {
        return Err(bad("empty"));
    }
    if entry_l.contains("://") || entry_l.contains('/') {
        return Err(bad("a host (and port), not a URL"));
    }
    let (host, port) = split_port(&entry_l).map_err(|e| bad(&e))?;
    let host = match host {
        "*" => Host::Any,
        h if h.starts_with("*.") && h.len() > 2 && !h[2..].contains('*') => {
            Host::Below(h[2..].to_string())
        }
        h if h.contains('*') => return Err(bad("a wildcard may only be `*` or `*.domain`")),
        h => Host::Exactly(canonical(h)),
    };
    Ok(Entry { host, port })
}

fn split_port(s: &str) -> Result<(&str, Option<u16>), String> {
    if let Some(rest) = s.strip_prefix('[') {
        let (v6, after) = rest.split_once(']').ok_or("an unclosed `[`")?;
        return match after.strip_prefix(':') {
            Some(p) => Ok((v6, Some(p.parse().map_err(|_| "a bad port")?))),
            None if after.is_empty() => Ok((v6, None)),
            None => Err("text after `]`".into()),
        };
    }
    match s.rsplit_once(':') {
        // A bare IPv6 address has several colons and no port.
        Some((h, _)) if h.contains(':') => Ok((s, None)),
        Some((h, p)) => Ok((h, Some(p.parse().map_err(|_| "a bad port")?))),
        None => Ok((s, None)),
    }
}

impl Entry {
    /// Whether the entry is `*`, any host.
    pub(crate) fn is_any(&self) -> bool {
        self.host == Host::Any
    }

    /// Whether the entry is a whole top-level domain (`*.com`).
    pub(crate) fn is_top_level(&self) -> bool {
        matches!(&self.host, Host::Below(d) if !d.contains('.'))
    }

    /// Whether every target `other` allows, this entry allows too.
    pub(crate) fn covers(&self, other: &Entry) -> bool {
        let port = match (self.port, other.port) {
            (None, _) => true,
            (Some(p), Some(q)) => p == q,
            (Some(_), None) => false,
        };
        let below = |host: &str, domain: &str| {
            host.len() > domain.len()
                && host.ends_with(domain)
                && host.as_bytes()[host.len() - domain.len() - 1] == b'.'
        };
        port && match (&self.host, &other.host) {
            (_, Host::Any) => self.host == Host::Any,
            (Host::Any, Host::Below(_)) => true,
            (Host::Any, Host::Exactly(h)) => !is_internal_name(h),
            (Host::Below(d), Host::Below(e)) => d == e || below(e, d),
            (Host::Below(d), Host::Exactly(h)) => below(h, d) && !is_internal_name(h),
            (Host::Exactly(_), Host::Below(_)) => false,
            (Host::Exactly(h), Host::Exactly(g)) => h == g,
        }
    }
}

/// `host` lowercased, and an IP address in its canonical form.
pub(crate) fn canonical(host: &str) -> String {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    match host.parse::<IpAddr>() {
        Ok(ip) => ip.to_string(),
        Err(_) => host.to_ascii_lowercase(),
    }
}

/// Whether `host` names this machine or its private network: `localhost` (and names below
/// it) or an internal address (see [`is_internal_ip`]).
pub(crate) fn is_internal_name(host: &str) -> bool {
    let host = canonical(host);
    host == "localhost"
        || host.ends_with(".localhost")
        || host.parse::<IpAddr>().is_ok_and(is_internal_ip)
}

/// Whether `ip` reaches this machine or a private network rather than the internet:
/// loopback, unspecified, private (10/8, 172.16/12, 192.168/16), shared (100.64/10),
/// link-local (169.254/16, where cloud metadata services live; fe80::/10), unique local
/// (fc00::/7) and broadcast addresses, IPv4 written as IPv6 included.
pub(crate) fn is_internal_ip(ip: IpAddr) -> bool {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    };
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_loopback()
                || v4.is_unspecified()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_broadcast()
                || (a == 100 && (64..128).contains(&b))
        }
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
        }
    }
}

impl Entry {
    /// Whether this entry allows `host` (canonical) on `port`; `literal` says it must name the
    /// host itself (a loopback target).
    fn allows(&self, host: &str, port: u16, literal: bool) -> bool {
        if self.port.is_some_and(|p| p != port) {
            return false;
        }
        match &self.host {
            Host::Exactly(h) => h == host,
            Host::Any => !literal,
            Host::Below(domain) => {
                !literal
                    && host.len() > domain.len()
                    && host.ends_with(domain.as_str())
                    && host.as_bytes()[host.len() - domain.len() - 1] == b'.'
            }
        }
    }

    /// Whether the entry names `host` itself (not by a wildcard), on `port`.
    fn names(&self, host: &str, port: u16) -> bool {
        self.port.is_none_or(|p| p == port) && matches!(&self.host, Host::Exactly(h) if h == host)
    }
}

/// Whether `allow` lets the actor reach `host` (as written in the URL) on `port`.
pub(crate) fn allowed(allow: &[Entry], host: &str, port: u16) -> bool {
    let host = canonical(host);
    let literal = is_internal_name(&host);
    allow.iter().any(|e| e.allows(&host, port, literal))
}

/// Whether `allow` names `host` on `port` literally (so it may resolve to an internal
/// address).
pub(crate) fn named(allow: &[Entry], host: &str, port: u16) -> bool {
    let host = canonical(host);
    allow.iter().any(|e| e.names(&host, port))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]
    use super::*;

    fn list(entries: &[&str]) -> Vec<Entry> {
        entries.iter().map(|e| parse(e).unwrap()).collect()
    }

    #[test]
    fn entries_match_hosts_ports_and_subdomains_but_loopback_only_literally() {
        let allow = list(&["api.example.com", "*.example.org", "example.net:8443", "*"]);
        assert!(allowed(&allow, "API.example.com", 443));
        assert!(allowed(&allow, "a.b.example.org", 80));
        assert!(allowed(&allow, "example.net", 8443));
        assert!(allowed(&allow, "anything.else", 80), "`*` allows any host");
        for local in [
            "localhost",
            "127.0.0.1",
            "127.9.9.9",
            "[::1]",
            "0.0.0.0",
            "x.localhost",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "[fd00::1]",
            "[fe80::1]",
            "[::ffff:127.0.0.1]",
            "[::ffff:169.254.169.254]",
        ] {
            assert!(!allowed(&allow, local, 80), "{local} needs a literal entry");
        }
        for public in ["8.8.8.8", "172.32.0.1", "100.128.0.1", "[2001:db8::1]"] {
            assert!(allowed(&allow, public, 80), "{public} is not internal");
        }
        let narrow = list(&[
            "*.example.org",
            "example.net:8443",
            "127.0.0.1:9000",
            "[::1]",
        ]);
        assert!(
            !allowed(&narrow, "example.org", 80),
            "the domain itself is not below it"
        );
        assert!(!allowed(&narrow, "badexample.org", 80));
        assert!(!allowed(&narrow, "example.net", 443));
        assert!(allowed(&narrow, "127.0.0.1", 9000));
        assert!(!allowed(&narrow, "127.0.0.1", 9001));
        assert!(allowed(&narrow, "::1", 5));
        assert!(named(&narrow, "127.0.0.1", 9000) && !named(&narrow, "a.example.org", 80));
        assert!(
            !named(&narrow, "127.0.0.1", 22),
            "a named entry holds for its port only"
        );
    }

    #[test]
    fn bad_entries_say_why() {
        for (entry, says) in [
            ("http://x.com", "not a URL"),
            ("x.com/path", "not a URL"),
            ("", "empty"),
            ("x.com:http", "bad port"),
            ("a*.com", "wildcard"),
            ("[::1", "unclosed"),
        ] {
            let e = parse(entry).unwrap_err();
            assert!(e.contains(says), "{entry}: {e}");
        }
    }
}
