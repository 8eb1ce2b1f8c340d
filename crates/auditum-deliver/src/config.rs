//! `[[sinks]]`, `[[alerts]]` and `[[streams]]` (DESIGN §11; the names are the contract), and the
//! rules they must satisfy, each error naming its field.

use auditum_format::rules;
use auditum_format::time::deserialize_duration;
use serde::Deserialize;
use std::time::Duration;

/// Tracked groups per rule at most (memory bound); past it, the group whose newest event was
/// counted longest ago is forgotten, and `auditum_alert_groups_evicted_total` counts it if it was
/// still within its window or cooldown.
pub const DEFAULT_MAX_GROUPS: usize = 100_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SinkFormat {
    Json,
    SplunkHec,
}

/// Where deliveries go.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SinkConfig {
    pub name: String,
    pub url: String,
    pub format: SinkFormat,
    /// The variable holding the secret: the HMAC-SHA256 key (json) or the HEC token (splunk_hec).
    pub secret_env: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupBy {
    ActorId,
    SourceIp,
    TargetId,
    SessionId,
    TenantId,
}

impl GroupBy {
    pub fn as_str(self) -> &'static str {
        match self {
            GroupBy::ActorId => "actor_id",
            GroupBy::SourceIp => "source_ip",
            GroupBy::TargetId => "target_id",
            GroupBy::SessionId => "session_id",
            GroupBy::TenantId => "tenant_id",
        }
    }
}

/// A sliding-window count per group (and always per tenant) that fires at a threshold.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertRule {
    pub name: String,
    /// A tenant id, or `*` for every tenant (each counted apart).
    pub tenant: String,
    /// As `EventFilter.actions`: exact, or a prefix ending in `.*`; empty is every action.
    #[serde(default)]
    pub actions: Vec<String>,
    /// success, failure or denied.
    #[serde(default)]
    pub outcome: Option<String>,
    pub group_by: GroupBy,
    #[serde(deserialize_with = "deserialize_duration")]
    pub window: Duration,
    pub threshold: u32,
    /// At most one alert per group per cooldown; default the window.
    #[serde(default, deserialize_with = "deserialize_optional_duration")]
    pub cooldown: Option<Duration>,
    #[serde(default)]
    pub sinks: Vec<String>,
}

impl AlertRule {
    pub fn cooldown(&self) -> Duration {
        self.cooldown.unwrap_or(self.window)
    }
}

/// Continuous forwarding of matching events to a sink (a SIEM).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamConfig {
    pub name: String,
    pub tenant: String,
    #[serde(default)]
    pub actions: Vec<String>,
    pub sink: String,
}

fn deserialize_optional_duration<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<Duration>, D::Error> {
    deserialize_duration(deserializer).map(Some)
}

/// A rule the configuration breaks: the field and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct Invalid {
    pub field: String,
    pub reason: String,
}

fn invalid(field: String, reason: impl Into<String>) -> Invalid {
    Invalid { field, reason: reason.into() }
}

/// Whether an action matches `actions` as `EventFilter.actions` does.
pub fn action_matches(actions: &[String], action: &str) -> bool {
    actions.is_empty()
        || actions.iter().any(|wanted| match wanted.strip_suffix(".*") {
            Some(prefix) => action.strip_prefix(prefix).is_some_and(|rest| rest.starts_with('.')),
            None => wanted == action,
        })
}

fn check_tenant(field: String, tenant: &str) -> Result<(), Invalid> {
    if tenant == "*" || rules::is_valid_tenant_id(tenant) {
        return Ok(());
    }
    Err(invalid(field, format!("{tenant:?} is neither a tenant id nor *")))
}

fn check_actions(field: String, actions: &[String]) -> Result<(), Invalid> {
    for action in actions {
        let name = action.strip_suffix(".*").unwrap_or(action);
        if name.is_empty() || name.len() > 128 || name.chars().any(char::is_whitespace) {
            return Err(invalid(field, format!("{action:?} is not an action or a prefix like user.*")));
        }
    }
    Ok(())
}

/// Only loopback may be reached over plain http: anything else would send events in clear.
fn check_url(field: String, url: &str) -> Result<(), Invalid> {
    let parsed = reqwest::Url::parse(url).map_err(|error| invalid(field.clone(), format!("{url:?} is not a URL: {error}")))?;
    match parsed.scheme() {
        "https" => Ok(()),
        "http" => {
            let host = parsed.host_str().unwrap_or_default();
            let address = host.trim_start_matches('[').trim_end_matches(']').parse::<std::net::IpAddr>();
            let loopback = host == "localhost" || address.is_ok_and(|address| address.is_loopback());
            if loopback { Ok(()) } else { Err(invalid(field, "plain http is allowed only to a loopback address; use https")) }
        }
        other => Err(invalid(field, format!("scheme {other:?}: use https (or http to a loopback address)"))),
    }
}

/// Checks every sink, rule and stream; `env` looks up the secrets' variables.
pub fn validate(
    sinks: &[SinkConfig],
    alerts: &[AlertRule],
    streams: &[StreamConfig],
    env: impl Fn(&str) -> Option<String>,
) -> Result<(), Invalid> {
    let mut names = std::collections::HashSet::new();
    for (index, sink) in sinks.iter().enumerate() {
        let field = |name: &str| format!("sinks[{index}].{name}");
        if !rules::is_valid_name(&sink.name) {
            return Err(invalid(field("name"), format!("{:?} must be 1-64 characters of [a-z0-9_-]", sink.name)));
        }
        if !names.insert(sink.name.as_str()) {
            return Err(invalid(field("name"), format!("sink {:?} is listed twice", sink.name)));
        }
        check_url(field("url"), &sink.url)?;
        if sink.secret_env.is_empty() {
            return Err(invalid(field("secret_env"), "required: the variable holding the HMAC key or HEC token"));
        }
        if env(&sink.secret_env).is_none_or(|secret| secret.is_empty()) {
            return Err(invalid(field("secret_env"), format!("variable {} is not set (or empty)", sink.secret_env)));
        }
    }
    let known_sink = |name: &str| sinks.iter().any(|sink| sink.name == name);
    let mut rule_names = std::collections::HashSet::new();
    for (index, rule) in alerts.iter().enumerate() {
        let field = |name: &str| format!("alerts[{index}].{name}");
        if !rules::is_valid_name(&rule.name) {
            return Err(invalid(field("name"), format!("{:?} must be 1-64 characters of [a-z0-9_-]", rule.name)));
        }
        if !rule_names.insert(rule.name.as_str()) {
            return Err(invalid(field("name"), format!("rule {:?} is listed twice", rule.name)));
        }
        check_tenant(field("tenant"), &rule.tenant)?;
        check_actions(field("actions"), &rule.actions)?;
        if let Some(outcome) = &rule.outcome
            && !["success", "failure", "denied"].contains(&outcome.as_str())
        {
            return Err(invalid(field("outcome"), format!("{outcome:?} is not success, failure or denied")));
        }
        if rule.window < Duration::from_secs(1) || rule.window > Duration::from_secs(7 * 86_400) {
            return Err(invalid(field("window"), "must be between 1s and 7 days (168h)"));
        }
        if rule.threshold == 0 || rule.threshold > 1_000_000 {
            return Err(invalid(field("threshold"), "must be between 1 and 1000000"));
        }
        if rule.cooldown() > Duration::from_secs(30 * 86_400) {
            return Err(invalid(field("cooldown"), "must be at most 30 days"));
        }
        for (position, sink) in rule.sinks.iter().enumerate() {
            if !known_sink(sink) {
                return Err(invalid(format!("alerts[{index}].sinks[{position}]"), format!("no sink named {sink:?} in [[sinks]]")));
            }
        }
    }
    let mut stream_names = std::collections::HashSet::new();
    for (index, stream) in streams.iter().enumerate() {
        let field = |name: &str| format!("streams[{index}].{name}");
        if !rules::is_valid_name(&stream.name) {
            return Err(invalid(field("name"), format!("{:?} must be 1-64 characters of [a-z0-9_-]", stream.name)));
        }
        if !stream_names.insert(stream.name.as_str()) {
            return Err(invalid(field("name"), format!("stream {:?} is listed twice", stream.name)));
        }
        check_tenant(field("tenant"), &stream.tenant)?;
        check_actions(field("actions"), &stream.actions)?;
        if !known_sink(&stream.sink) {
            return Err(invalid(field("sink"), format!("no sink named {:?} in [[sinks]]", stream.sink)));
        }
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn sink(url: &str) -> SinkConfig {
        SinkConfig { name: "secops".into(), url: url.into(), format: SinkFormat::Json, secret_env: "SECRET".into() }
    }

    /// DESIGN §11's example rule: 5 failed logins of one actor within 5 minutes.
    pub(crate) fn rule() -> AlertRule {
        AlertRule {
            name: "brute-force".into(),
            tenant: "*".into(),
            actions: vec!["user.login".into()],
            outcome: Some("failure".into()),
            group_by: GroupBy::ActorId,
            window: Duration::from_secs(300),
            threshold: 5,
            cooldown: None,
            sinks: vec!["secops".into()],
        }
    }

    #[test]
    fn every_rule_names_its_field() {
        let env = |name: &str| (name == "SECRET").then(|| "s3cr3t".to_string());
        let check = |sinks: &[SinkConfig], alerts: &[AlertRule], streams: &[StreamConfig]| {
            validate(sinks, alerts, streams, env).map_err(|error| error.to_string())
        };
        assert!(check(&[sink("http://127.0.0.1:9/hook")], &[rule()], &[]).is_ok());
        assert!(check(&[sink("http://siem.example/hook")], &[], &[]).unwrap_err().starts_with("sinks[0].url: plain http"));
        let unset = SinkConfig { secret_env: "MISSING".into(), ..sink("https://siem.example/hook") };
        assert!(check(&[unset], &[], &[]).unwrap_err().contains("variable MISSING is not set"));
        let unknown = AlertRule { sinks: vec!["nope".into()], ..rule() };
        assert_eq!(
            check(&[sink("https://a.example")], &[unknown], &[]).unwrap_err(),
            "alerts[0].sinks[0]: no sink named \"nope\" in [[sinks]]"
        );
        let short = AlertRule { window: Duration::from_millis(10), ..rule() };
        assert!(check(&[sink("https://a.example")], &[short], &[]).unwrap_err().starts_with("alerts[0].window"));
        let stream = StreamConfig { name: "siem".into(), tenant: "*".into(), actions: vec![], sink: "other".into() };
        assert!(check(&[sink("https://a.example")], &[], &[stream]).unwrap_err().starts_with("streams[0].sink"));
    }

    #[test]
    fn actions_match_as_event_filters_do() {
        let actions = vec!["user.*".to_string(), "doc.read".to_string()];
        assert!(action_matches(&actions, "user.login") && action_matches(&actions, "doc.read"));
        assert!(!action_matches(&actions, "userx.login") && !action_matches(&actions, "doc.readers") && !action_matches(&actions, "user"));
        assert!(action_matches(&[], "anything"));
    }
}
