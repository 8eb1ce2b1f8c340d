//! Ambient request context: set once per request by middleware, picked up by every `log()` inside
//! it. A tokio task-local, so concurrent tasks keep their own; explicit event fields win.

use auditum_proto::pb;
use std::future::Future;

/// What a request contributes to every event logged while handling it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestContext {
    pub request_id: Option<String>,
    pub correlation_id: Option<String>,
    pub session_id: Option<String>,
    pub source_ip: Option<String>,
    pub user_agent: Option<String>,
    /// The authenticated principal, used when an event names no actor.
    pub actor: Option<pb::Actor>,
}

impl RequestContext {
    pub fn request_id(mut self, value: impl Into<String>) -> Self {
        self.request_id = Some(value.into());
        self
    }
    pub fn correlation_id(mut self, value: impl Into<String>) -> Self {
        self.correlation_id = Some(value.into());
        self
    }
    pub fn session_id(mut self, value: impl Into<String>) -> Self {
        self.session_id = Some(value.into());
        self
    }
    pub fn source_ip(mut self, value: impl Into<String>) -> Self {
        self.source_ip = Some(value.into());
        self
    }
    pub fn user_agent(mut self, value: impl Into<String>) -> Self {
        self.user_agent = Some(value.into());
        self
    }
    pub fn actor(mut self, actor: pb::Actor) -> Self {
        self.actor = Some(actor);
        self
    }

    /// `self` with the unset fields taken from `outer` (a nested scope refines its parent).
    fn over(self, outer: &RequestContext) -> RequestContext {
        let pick = |inner: Option<String>, outer: &Option<String>| inner.or_else(|| outer.clone());
        RequestContext {
            request_id: pick(self.request_id, &outer.request_id),
            correlation_id: pick(self.correlation_id, &outer.correlation_id),
            session_id: pick(self.session_id, &outer.session_id),
            source_ip: pick(self.source_ip, &outer.source_ip),
            user_agent: pick(self.user_agent, &outer.user_agent),
            actor: self.actor.or_else(|| outer.actor.clone()),
        }
    }

    /// Fills the event's empty context fields (and a missing actor) from this context.
    pub(crate) fn apply(&self, event: &mut pb::AuditEvent) {
        let fill = |field: &mut String, value: &Option<String>| {
            if field.is_empty()
                && let Some(value) = value
            {
                field.clone_from(value);
            }
        };
        let has_any = self.request_id.is_some()
            || self.correlation_id.is_some()
            || self.session_id.is_some()
            || self.source_ip.is_some()
            || self.user_agent.is_some();
        if has_any {
            let context = event.context.get_or_insert_with(Default::default);
            fill(&mut context.request_id, &self.request_id);
            fill(&mut context.correlation_id, &self.correlation_id);
            fill(&mut context.session_id, &self.session_id);
            fill(&mut context.source_ip, &self.source_ip);
            fill(&mut context.user_agent, &self.user_agent);
        }
        if event.actor.is_none() {
            event.actor.clone_from(&self.actor);
        }
    }
}

tokio::task_local! {
    static CURRENT: RequestContext;
}

/// Runs `future` with `context` as the ambient request context (merged over any enclosing scope).
pub async fn scope<F: Future>(context: RequestContext, future: F) -> F::Output {
    let merged = match current() {
        Some(outer) => context.over(&outer),
        None => context,
    };
    CURRENT.scope(merged, future).await
}

/// As [`scope`], for synchronous code.
pub fn sync_scope<R>(context: RequestContext, f: impl FnOnce() -> R) -> R {
    let merged = match current() {
        Some(outer) => context.over(&outer),
        None => context,
    };
    CURRENT.sync_scope(merged, f)
}

/// The ambient context of the current task, if any.
pub fn current() -> Option<RequestContext> {
    CURRENT.try_with(Clone::clone).ok()
}

/// Applies the ambient context to `event` without cloning it.
pub(crate) fn apply_current(event: &mut pb::AuditEvent) {
    let _ = CURRENT.try_with(|context| context.apply(event));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn explicit_fields_win_and_nested_scopes_refine() {
        let outer = RequestContext::default().request_id("req-1").source_ip("10.0.0.1");
        let event = scope(outer, async {
            scope(RequestContext::default().session_id("s-1"), async {
                let mut event =
                    pb::AuditEvent { context: Some(pb::Context { request_id: "mine".into(), ..Default::default() }), ..Default::default() };
                apply_current(&mut event);
                event
            })
            .await
        })
        .await;
        let context = event.context.unwrap();
        assert_eq!((context.request_id.as_str(), context.source_ip.as_str(), context.session_id.as_str()), ("mine", "10.0.0.1", "s-1"));
        assert!(current().is_none(), "the scope ends with its future");
    }
}
