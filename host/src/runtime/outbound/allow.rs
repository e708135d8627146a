//! A plugin's allow-list: which destinations its outbound requests may
//! reach, with which methods, and which tenant secrets each may carry.
//!
//! An entry is a URL of scheme and authority only, or an object with
//! `methods` and `secrets` beside it:
//!
//! ```json
//! ["https://api.example.com",
//!  {"url": "https://*.slack.com", "methods": ["POST"], "secrets": ["SLACK_TOKEN"]},
//!  "http://10.1.2.3:8080"]
//! ```
//!
//! `*.example.com` matches every name below `example.com` (not the name
//! itself). The port is the scheme's unless written. No entry, no request.

use std::collections::BTreeSet;
use std::net::IpAddr;

/// Entries per plugin. Bounds the work of matching each request and the
/// bytes stored with every version.
pub const MAX_ALLOW_ENTRIES: usize = 64;
/// Bytes of one entry's URL.
pub const MAX_ALLOW_URL_BYTES: usize = 255;
/// Secrets one entry may name.
pub const MAX_SECRETS_PER_ENTRY: usize = 16;
/// Methods one entry may name, and bytes of one. With the caps above they
/// bound a plugin's settings (stored with every version, read with every
/// claimed job) to about 110 KiB, whatever a tenant sends.
pub const MAX_METHODS_PER_ENTRY: usize = 16;
pub const MAX_METHOD_BYTES: usize = 32;

/// One entry as its owner wrote it (and as it is stored and shown).
pub use corral_client::api::AllowEntry;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Http,
    Https,
}

impl Scheme {
    pub fn default_port(self) -> u16 {
        match self {
            Scheme::Http => 80,
            Scheme::Https => 443,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum HostPattern {
    Name(String),
    /// `*.example.com`: stored as `.example.com`.
    Below(String),
    Ip(IpAddr),
}

impl HostPattern {
    /// `api.example.com`, `*.example.com` or an IP literal.
    fn parse(host: &str) -> Result<HostPattern, &'static str> {
        let host = normalize_host(host);
        if let Some(below) = host.strip_prefix("*.") {
            if !is_dns_name(below) || !below.contains('.') {
                return Err("a wildcard needs a name of two labels or more after `*.`");
            }
            Ok(HostPattern::Below(format!(".{below}")))
        } else if let Some(ip) = parse_ip(&host) {
            Ok(HostPattern::Ip(ip))
        } else if is_dns_name(&host) {
            Ok(HostPattern::Name(host))
        } else {
            Err("not a host name (letters, digits, `-` and `.`; `*.` only at the start)")
        }
    }

    /// Whether every host `other` matches, this matches too.
    fn covers(&self, other: &HostPattern) -> bool {
        match (self, other) {
            (HostPattern::Name(a), HostPattern::Name(b)) => a == b,
            (HostPattern::Below(s), HostPattern::Name(b)) => b.len() > s.len() && b.ends_with(s),
            (HostPattern::Below(s), HostPattern::Below(t)) => t.ends_with(s.as_str()),
            (HostPattern::Ip(a), HostPattern::Ip(b)) => a == b,
            _ => false,
        }
    }
}

impl std::fmt::Display for HostPattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HostPattern::Name(name) => f.write_str(name),
            HostPattern::Below(suffix) => write!(f, "*{suffix}"),
            HostPattern::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]"),
            HostPattern::Ip(ip) => write!(f, "{ip}"),
        }
    }
}

/// Patterns an operator may give (`--outbound-hosts`): bounds the work of
/// checking every entry of every allow-list against them.
pub const MAX_HOST_LIMIT_PATTERNS: usize = 256;

/// The hosts an operator lets tenants' allow-lists name at all
/// (`corral serve --outbound-hosts`): names, `*.suffix` and IP literals.
/// Empty lets every host be named.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostLimit(Vec<HostPattern>);

impl HostLimit {
    pub fn parse(patterns: &[String]) -> Result<HostLimit, String> {
        if patterns.len() > MAX_HOST_LIMIT_PATTERNS {
            return Err(format!(
                "--outbound-hosts has {} patterns; the limit is {MAX_HOST_LIMIT_PATTERNS}",
                patterns.len()
            ));
        }
        patterns
            .iter()
            .map(|p| HostPattern::parse(p).map_err(|why| format!("--outbound-hosts `{p}`: {why}")))
            .collect::<Result<Vec<_>, _>>()
            .map(HostLimit)
    }

    pub fn is_unrestricted(&self) -> bool {
        self.0.is_empty()
    }

    fn permits(&self, rule: &Rule) -> bool {
        self.is_unrestricted() || self.0.iter().any(|p| p.covers(&rule.host))
    }
}

/// A parsed entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub scheme: Scheme,
    host: HostPattern,
    pub port: u16,
    methods: BTreeSet<String>,
    pub secrets: BTreeSet<String>,
}

/// A parsed allow-list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowList(Vec<Rule>);

impl AllowList {
    /// Parse a plugin's entries, with a message naming the first bad one.
    pub fn parse(entries: &[AllowEntry]) -> Result<AllowList, String> {
        if entries.len() > MAX_ALLOW_ENTRIES {
            return Err(format!(
                "the allow-list has {} entries; the limit is {MAX_ALLOW_ENTRIES}",
                entries.len()
            ));
        }
        entries
            .iter()
            .map(Rule::parse)
            .collect::<Result<Vec<_>, _>>()
            .map(AllowList)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The first entry that lets `method` reach `scheme://host:port`.
    pub fn find(&self, method: &str, scheme: Scheme, host: &str, port: u16) -> Option<&Rule> {
        let host = normalize_host(host);
        self.0.iter().find(|rule| {
            rule.scheme == scheme
                && rule.port == port
                && rule.host_matches(&host)
                && (rule.methods.is_empty() || rule.methods.contains(method))
        })
    }

    /// Refuse, naming it, the first entry whose host `limit` does not permit.
    pub fn check_hosts(&self, limit: &HostLimit) -> Result<(), String> {
        match self.0.iter().find(|rule| !limit.permits(rule)) {
            Some(rule) => Err(format!(
                "allow-list entry `{}://{}:{}`: this deployment does not let plugins reach that host (its operator's --outbound-hosts)",
                rule.scheme.as_str(),
                rule.host,
                rule.port
            )),
            None => Ok(()),
        }
    }

    /// Only the entries `limit` permits (settings stored before the
    /// operator narrowed it lose the rest).
    pub fn restricted(self, limit: &HostLimit) -> AllowList {
        AllowList(self.0.into_iter().filter(|r| limit.permits(r)).collect())
    }

    /// Every secret some entry names (what an attempt needs decrypted).
    pub fn secret_names(&self) -> BTreeSet<String> {
        self.0
            .iter()
            .flat_map(|r| r.secrets.iter().cloned())
            .collect()
    }
}

impl Rule {
    fn parse(entry: &AllowEntry) -> Result<Rule, String> {
        let (url, methods, secrets) = match entry {
            AllowEntry::Url(url) => (url, &[][..], &[][..]),
            AllowEntry::Rule {
                url,
                methods,
                secrets,
            } => (url, &methods[..], &secrets[..]),
        };
        let bad = |why: &str| format!("allow-list entry `{url}`: {why}");
        if url.len() > MAX_ALLOW_URL_BYTES {
            return Err(format!(
                "an allow-list entry is {} bytes; the limit is {MAX_ALLOW_URL_BYTES}",
                url.len()
            ));
        }
        let (scheme, rest) = if let Some(rest) = url.strip_prefix("https://") {
            (Scheme::Https, rest)
        } else if let Some(rest) = url.strip_prefix("http://") {
            (Scheme::Http, rest)
        } else {
            return Err(bad("must start with https:// or http://"));
        };
        let authority = rest.strip_suffix('/').unwrap_or(rest);
        if authority.contains(['/', '?', '#', '@']) {
            return Err(bad(
                "name a scheme and a host (and port) only: no path, query or user",
            ));
        }
        let uri: http::uri::Authority = authority.parse().map_err(|_| bad("not a host"))?;
        let port = match uri.port_u16() {
            Some(0) => return Err(bad("port 0")),
            Some(port) => port,
            None if authority.ends_with(':') => return Err(bad("an empty port")),
            None => scheme.default_port(),
        };
        let host = HostPattern::parse(uri.host()).map_err(bad)?;
        if methods.len() > MAX_METHODS_PER_ENTRY {
            return Err(bad(&format!(
                "names {} methods; the limit is {MAX_METHODS_PER_ENTRY}",
                methods.len()
            )));
        }
        let mut allowed = BTreeSet::new();
        for method in methods {
            if method.len() > MAX_METHOD_BYTES {
                return Err(bad(&format!(
                    "a method of {} bytes; the limit is {MAX_METHOD_BYTES}",
                    method.len()
                )));
            }
            let upper = method.to_ascii_uppercase();
            if http::Method::from_bytes(upper.as_bytes()).is_err() || upper.is_empty() {
                return Err(bad(&format!("`{method}` is not an HTTP method")));
            }
            allowed.insert(upper);
        }
        if secrets.len() > MAX_SECRETS_PER_ENTRY {
            return Err(bad(&format!(
                "names {} secrets; the limit is {MAX_SECRETS_PER_ENTRY}",
                secrets.len()
            )));
        }
        for secret in secrets {
            if !crate::model::is_secret_name(secret) {
                return Err(bad(&format!(
                    "`{secret}` is not a secret name ({})",
                    crate::model::SECRET_NAME_RULE
                )));
            }
        }
        Ok(Rule {
            scheme,
            host,
            port,
            methods: allowed,
            secrets: secrets.iter().cloned().collect(),
        })
    }

    fn host_matches(&self, host: &str) -> bool {
        match &self.host {
            HostPattern::Name(name) => name == host,
            HostPattern::Below(suffix) => host.len() > suffix.len() && host.ends_with(suffix),
            HostPattern::Ip(ip) => parse_ip(host) == Some(*ip),
        }
    }
}

/// Lower case, without a trailing dot (`Example.COM.` is `example.com`).
fn normalize_host(host: &str) -> String {
    host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase()
}

/// An IP literal (`10.0.0.1`, `[::1]`).
pub fn parse_ip(host: &str) -> Option<IpAddr> {
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    bare.parse().ok()
}

/// Labels of letters, digits and `-`, not starting or ending with `-`.
fn is_dns_name(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
        // An all-digit name would be an IP address in another spelling.
        && !host.bytes().all(|b| b.is_ascii_digit() || b == b'.')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(entries: serde_json::Value) -> AllowList {
        let entries: Vec<AllowEntry> = serde_json::from_value(entries).unwrap();
        AllowList::parse(&entries).unwrap()
    }

    fn refused(entry: serde_json::Value) -> String {
        let entries: Vec<AllowEntry> = serde_json::from_value(serde_json::json!([entry])).unwrap();
        AllowList::parse(&entries).unwrap_err()
    }

    #[test]
    fn entries_match_scheme_host_port_and_method() {
        let l = list(serde_json::json!([
            "https://api.example.com",
            {"url": "https://*.slack.com:8443", "methods": ["post"], "secrets": ["SLACK"]},
            "http://10.1.2.3:8080/",
            "http://[::1]:9000",
        ]));
        assert!(
            l.find("GET", Scheme::Https, "API.example.com.", 443)
                .is_some()
        );
        assert!(l.find("GET", Scheme::Http, "api.example.com", 80).is_none());
        assert!(
            l.find("GET", Scheme::Https, "api.example.com", 8443)
                .is_none()
        );
        assert!(
            l.find("GET", Scheme::Https, "evil.api.example.com", 443)
                .is_none()
        );
        let slack = l
            .find("POST", Scheme::Https, "hooks.slack.com", 8443)
            .unwrap();
        assert!(slack.secrets.contains("SLACK"));
        assert!(
            l.find("GET", Scheme::Https, "hooks.slack.com", 8443)
                .is_none()
        );
        assert!(l.find("POST", Scheme::Https, "slack.com", 8443).is_none());
        assert!(
            l.find("POST", Scheme::Https, "evilslack.com", 8443)
                .is_none()
        );
        assert!(l.find("GET", Scheme::Http, "10.1.2.3", 8080).is_some());
        assert!(l.find("GET", Scheme::Http, "[::1]", 9000).is_some());
        assert_eq!(l.secret_names(), BTreeSet::from(["SLACK".to_string()]));
    }

    #[test]
    fn an_operators_host_limit_bounds_what_allow_lists_may_name() {
        let limit = HostLimit::parse(&["*.example.com".into(), "api.slack.com".into()]).unwrap();
        let permitted = list(serde_json::json!([
            "https://api.example.com",
            "https://*.eu.example.com",
            "https://*.example.com",
            "https://api.slack.com:8443",
        ]));
        assert_eq!(permitted.check_hosts(&limit), Ok(()));
        for entry in [
            "https://example.com",
            "https://*.co.uk",
            "https://hooks.slack.com",
            "https://evil-example.com",
            "http://10.0.0.1",
        ] {
            let l = list(serde_json::json!([entry]));
            let error = l.check_hosts(&limit).unwrap_err();
            assert!(error.contains("--outbound-hosts"), "{entry}: {error}");
            assert!(l.restricted(&limit).is_empty(), "{entry}");
        }
        assert_eq!(permitted.check_hosts(&HostLimit::default()), Ok(()));
        assert!(HostLimit::parse(&["*.com".into()]).is_err());
        assert!(HostLimit::parse(&vec!["a.example.com".to_string(); 257]).is_err());
    }

    #[test]
    fn bad_entries_are_refused_by_name() {
        for (entry, why) in [
            (serde_json::json!("ftp://x.com"), "https://"),
            (serde_json::json!("https://x.com/path"), "no path"),
            (serde_json::json!("https://user@x.com"), "no path"),
            (serde_json::json!("https://*.com"), "two labels"),
            (serde_json::json!("https://a.*.com"), "not a host name"),
            (serde_json::json!("https://x.com:0"), "port 0"),
            (serde_json::json!("https://x_y.com"), "not a host name"),
            (
                serde_json::json!({"url": "https://x.com", "methods": ["GE T"]}),
                "not an HTTP method",
            ),
            (
                serde_json::json!({"url": "https://x.com", "secrets": ["no spaces"]}),
                "not a secret name",
            ),
        ] {
            let message = refused(entry.clone());
            assert!(message.contains(why), "{entry}: {message}");
        }
        let methods: Vec<String> = (0..=MAX_METHODS_PER_ENTRY)
            .map(|i| format!("M{i}"))
            .collect();
        let message = refused(serde_json::json!({"url": "https://x.com", "methods": methods}));
        assert!(message.contains("methods; the limit"), "{message}");
        let long = "M".repeat(1_000_000);
        let message = refused(serde_json::json!({"url": "https://x.com", "methods": [long]}));
        assert!(message.contains("a method of 1000000 bytes"), "{message}");
        let many: Vec<AllowEntry> = (0..=MAX_ALLOW_ENTRIES)
            .map(|i| AllowEntry::Url(format!("https://h{i}.example.com")))
            .collect();
        assert!(AllowList::parse(&many).unwrap_err().contains("limit"));
    }
}
