//! Choosing a call's agent profile, and with it its engine and providers.
//!
//! The stream's `agent` parameter wins (a TwiML `<Parameter name="agent">`, set by the voice
//! webhook's `?agent=` or by the dialer for an outbound call); else the called number's entry
//! in `[numbers]`; else the default profile (`[agent]`). An unknown name falls back to the
//! default and is logged — a call is never refused over it. Built once at start-up; read-only.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::SystemTime;

use tracing::warn;

use crate::call::context::{CallContext, Direction};
use crate::call::frames::StreamStart;
use crate::call::services::AgentServices;
use crate::config::profiles::DEFAULT_PROFILE;

/// Every agent profile's providers, and the numbers that select them.
pub struct Profiles {
    by_name: BTreeMap<String, Arc<AgentServices>>,
    numbers: BTreeMap<String, String>,
}

impl Profiles {
    /// `profiles` must include the default one (a missing default is replaced by echo).
    pub fn new(profiles: Vec<AgentServices>, numbers: BTreeMap<String, String>) -> Self {
        let mut by_name: BTreeMap<String, Arc<AgentServices>> = profiles
            .into_iter()
            .map(|p| (p.name.clone(), Arc::new(p)))
            .collect();
        by_name
            .entry(DEFAULT_PROFILE.to_owned())
            .or_insert_with(|| Arc::new(AgentServices::echo()));
        Self { by_name, numbers }
    }

    /// Just one profile, the default.
    pub fn single(mut profile: AgentServices) -> Self {
        profile.name = DEFAULT_PROFILE.to_owned();
        Self::new(vec![profile], BTreeMap::new())
    }

    pub fn get(&self, name: &str) -> Option<&Arc<AgentServices>> {
        self.by_name.get(name)
    }

    pub fn default_profile(&self) -> &Arc<AgentServices> {
        // `new` always inserts the default.
        match self.by_name.get(DEFAULT_PROFILE) {
            Some(p) => p,
            None => unreachable!("Profiles::new inserts the default profile"),
        }
    }

    /// The default profile, to adjust before the server starts (tests; None once shared).
    pub fn default_mut(&mut self) -> Option<&mut AgentServices> {
        self.by_name.get_mut(DEFAULT_PROFILE).and_then(Arc::get_mut)
    }

    /// Add or replace a profile before the server starts.
    pub fn insert(&mut self, profile: AgentServices) {
        self.by_name.insert(profile.name.clone(), Arc::new(profile));
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.by_name.keys().map(String::as_str)
    }

    /// The profile for a call with these stream parameters (see the module doc).
    pub fn choose(&self, parameters: &BTreeMap<String, String>) -> &Arc<AgentServices> {
        let param = |k: &str| {
            parameters
                .get(k)
                .map(String::as_str)
                .filter(|v| !v.is_empty())
        };
        if let Some(name) = param("agent") {
            match self.by_name.get(name) {
                Some(p) => return p,
                None => warn!(
                    profile = name,
                    "unknown agent profile asked for: using the default"
                ),
            }
        }
        if let Some(p) = param("To")
            .and_then(|to| self.numbers.get(to))
            .and_then(|name| self.by_name.get(name))
        {
            return p;
        }
        self.default_profile()
    }

    /// The context of a call whose stream just started, and its profile.
    pub fn context(&self, start: &StreamStart) -> (CallContext, Arc<AgentServices>) {
        let profile = Arc::clone(self.choose(&start.parameters));
        let param = |k: &str| start.parameters.get(k).cloned().unwrap_or_default();
        let direction = match start.parameters.get("direction").map(String::as_str) {
            Some("outbound") | Some("outbound-api") => Direction::Outbound,
            _ => Direction::Inbound,
        };
        let mut parameters = start.parameters.clone();
        parameters.remove("token");
        let ctx = CallContext {
            call_sid: start.call_sid.clone(),
            stream_sid: start.stream_sid.clone(),
            direction,
            from: param("From"),
            to: param("To"),
            profile: profile.name.clone(),
            engine: profile.engine,
            parameters,
            started_at: SystemTime::now(),
        };
        (ctx, profile)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::call::context::EngineKind;

    fn named(name: &str, engine: EngineKind) -> AgentServices {
        let mut p = AgentServices::echo();
        p.name = name.to_owned();
        p.engine = engine;
        p
    }

    #[test]
    fn parameter_then_number_then_default() {
        let numbers = BTreeMap::from([("+15550002222".to_owned(), "support".to_owned())]);
        let p = Profiles::new(
            vec![
                named("default", EngineKind::Echo),
                named("sales", EngineKind::Cascade),
                named("support", EngineKind::OpenaiRealtime),
            ],
            numbers,
        );
        let params = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        assert_eq!(p.choose(&params(&[("agent", "sales")])).name, "sales");
        assert_eq!(
            p.choose(&params(&[("agent", "sales"), ("To", "+15550002222")]))
                .name,
            "sales"
        );
        assert_eq!(p.choose(&params(&[("To", "+15550002222")])).name, "support");
        assert_eq!(p.choose(&params(&[("agent", "ghost")])).name, "default");
        assert_eq!(p.choose(&params(&[])).name, "default");
        let start = StreamStart {
            call_sid: "CA1".into(),
            stream_sid: "MZ1".into(),
            parameters: params(&[("To", "+15550002222"), ("token", "t"), ("From", "+1")]),
            mulaw_8k: true,
            format: String::new(),
        };
        let (ctx, prof) = p.context(&start);
        assert_eq!(ctx.engine, EngineKind::OpenaiRealtime);
        assert_eq!(prof.name, "support");
        assert_eq!(
            (ctx.from.as_str(), ctx.direction),
            ("+1", Direction::Inbound)
        );
        assert!(!ctx.parameters.contains_key("token"));
    }
}
