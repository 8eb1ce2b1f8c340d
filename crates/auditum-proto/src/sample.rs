//! Realistic sample events (~500 bytes with before/after JSON), for the demo, tests and benchmarks.

use crate::pb;
use prost_types::{Struct, Value, value::Kind};
use rand::Rng;
use rand::seq::SliceRandom;

const TENANTS: [&str; 5] = ["acme", "globex", "initech", "umbrella", "hooli"];
const ACTIONS: [&str; 12] = [
    "user.login",
    "user.logout",
    "user.role.updated",
    "user.password.changed",
    "invoice.created",
    "invoice.paid",
    "api_key.created",
    "api_key.revoked",
    "export.requested",
    "settings.sso.updated",
    "project.deleted",
    "member.invited",
];
const ROLES: [&str; 4] = ["viewer", "editor", "admin", "owner"];
const SERVICES: [&str; 4] = ["admin-api", "billing", "auth", "gateway"];
const USER_AGENTS: [&str; 3] = [
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36",
    "acme-sdk-go/2.4.1",
];

pub fn string_value(text: &str) -> Value {
    Value { kind: Some(Kind::StringValue(text.to_string())) }
}

pub fn number_value(number: f64) -> Value {
    Value { kind: Some(Kind::NumberValue(number)) }
}

pub fn struct_of(fields: Vec<(&str, Value)>) -> Struct {
    Struct { fields: fields.into_iter().map(|(key, value)| (key.to_string(), value)).collect() }
}

/// A plausible event for tenant, actor and action drawn at random; `occurred_at_micros` as given.
pub fn realistic_event(rng: &mut impl Rng, occurred_at_micros: i64) -> pb::AuditEvent {
    let tenant = *TENANTS.choose(rng).unwrap_or(&"acme");
    let action = *ACTIONS.choose(rng).unwrap_or(&"user.login");
    let user = rng.gen_range(1..=2000);
    let target = rng.gen_range(1..=5000);
    let before_role = *ROLES.choose(rng).unwrap_or(&"viewer");
    let after_role = *ROLES.choose(rng).unwrap_or(&"admin");
    let denied = rng.gen_bool(0.05);
    pb::AuditEvent {
        subject_id: String::new(),
        id: String::new(),
        tenant_id: tenant.to_string(),
        occurred_at: Some(prost_types::Timestamp {
            seconds: occurred_at_micros.div_euclid(1_000_000),
            nanos: (occurred_at_micros.rem_euclid(1_000_000) * 1000) as i32,
        }),
        action: action.to_string(),
        actor: Some(pb::Actor { id: format!("user-{user}"), r#type: pb::ActorType::User as i32, name: format!("User {user}") }),
        target: Some(pb::Target { r#type: "user".into(), id: format!("user-{target}"), name: format!("Member {target}") }),
        outcome: Some(pb::Outcome {
            result: if denied { pb::OutcomeResult::Denied as i32 } else { pb::OutcomeResult::Success as i32 },
            error_code: if denied { "permission_denied".into() } else { String::new() },
            reason: String::new(),
        }),
        context: Some(pb::Context {
            request_id: format!("req-{:016x}", rng.r#gen::<u64>()),
            correlation_id: format!("trace-{:016x}", rng.r#gen::<u64>()),
            session_id: format!("sess-{}", user * 7 % 9973),
            source_ip: format!("10.{}.{}.{}", user % 256, target % 256, rng.gen_range(1..255)),
            user_agent: USER_AGENTS.choose(rng).unwrap_or(&"curl/8").to_string(),
            service: SERVICES.choose(rng).unwrap_or(&"admin-api").to_string(),
        }),
        before: Some(struct_of(vec![("role", string_value(before_role)), ("mfa_enabled", Value { kind: Some(Kind::BoolValue(false)) })])),
        after: Some(struct_of(vec![("role", string_value(after_role)), ("mfa_enabled", Value { kind: Some(Kind::BoolValue(true)) })])),
        metadata: Some(struct_of(vec![
            ("ticket", number_value(f64::from(rng.gen_range(1000..99999)))),
            ("reason", string_value("quarterly access review")),
            ("password", string_value("hunter2")),
        ])),
    }
}

/// Zipf-distributed ranks 0..n (rank 0 most frequent), sampled by binary search on the CDF.
pub struct Zipf {
    cdf: Vec<f64>,
}

impl Zipf {
    pub fn new(n: usize, exponent: f64) -> Zipf {
        let mut total = 0.0;
        let mut cdf: Vec<f64> = (1..=n.max(1))
            .map(|rank| {
                total += 1.0 / (rank as f64).powf(exponent);
                total
            })
            .collect();
        cdf.iter_mut().for_each(|value| *value /= total);
        Zipf { cdf }
    }

    pub fn sample(&self, rng: &mut impl Rng) -> usize {
        let x: f64 = rng.r#gen();
        self.cdf.partition_point(|value| *value < x).min(self.cdf.len() - 1)
    }
}

/// The benchmark archive's event mix: 100,000 actors (Zipf), each belonging to one of
/// `tenants` tenants (Zipf), 200 actions (Zipf), ~500-byte events.
pub struct ArchiveMix {
    actors: Zipf,
    actor_tenant: Vec<u32>,
    actions: Zipf,
    action_names: Vec<String>,
}

pub const ARCHIVE_ACTORS: usize = 100_000;

impl ArchiveMix {
    pub fn new(tenants: usize, rng: &mut impl Rng) -> ArchiveMix {
        let tenant_zipf = Zipf::new(tenants, 1.1);
        let actor_tenant = (0..ARCHIVE_ACTORS).map(|_| tenant_zipf.sample(rng) as u32).collect();
        let domains = ["user", "auth", "billing", "invoice", "project", "member", "api_key", "settings", "data", "admin"];
        let objects = ["account", "role", "session", "token", "policy", "report", "webhook", "file", "team", "plan"];
        let verbs = ["created", "updated"];
        let mut action_names = Vec::with_capacity(200);
        for domain in domains {
            for object in objects {
                for verb in verbs {
                    action_names.push(format!("{domain}.{object}.{verb}"));
                }
            }
        }
        ArchiveMix { actors: Zipf::new(ARCHIVE_ACTORS, 1.0), actor_tenant, actions: Zipf::new(200, 1.0), action_names }
    }

    pub fn tenant_name(tenant: u32) -> String {
        format!("tenant-{tenant:04}")
    }

    pub fn actor_name(actor: usize) -> String {
        format!("user-{actor:06}")
    }

    /// The tenant an actor belongs to.
    pub fn tenant_of(&self, actor: usize) -> String {
        Self::tenant_name(self.actor_tenant[actor])
    }

    pub fn action_name(&self, rank: usize) -> &str {
        &self.action_names[rank]
    }

    pub fn event(&self, rng: &mut impl Rng, occurred_at_micros: i64) -> pb::AuditEvent {
        let mut event = realistic_event(rng, occurred_at_micros);
        let actor = self.actors.sample(rng);
        event.tenant_id = self.tenant_of(actor);
        event.action = self.action_names[self.actions.sample(rng)].clone();
        if let Some(event_actor) = event.actor.as_mut() {
            event_actor.id = Self::actor_name(actor);
            event_actor.name = format!("User {actor}");
        }
        event
    }
}
