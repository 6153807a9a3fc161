//! Which groups may use which upstream, and which of its tools. With no rule for an upstream, every signed-in
//! person may use it (the behaviour without policy); once an upstream has a rule, only members of a group
//! with a rule for it (or for `*`) may, and then only the tools one of their rules allows and none denies.
//! Rules and each person's groups are read again after `GUARD_CACHE_SECS`, like a revocation.
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sea_orm::DbErr;

use crate::store::{Store, policy_rule};

/// One rule: `group` may use `upstream` (or every upstream, `*`), all its tools or those `allow` matches,
/// never those `deny` matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub group: String,
    pub upstream: String,
    pub allow: Vec<String>,
    pub deny: Vec<String>,
}

impl Rule {
    pub fn from_row(row: &policy_rule::Model) -> Rule {
        Rule {
            group: row.group_name.clone(),
            upstream: row.upstream.clone(),
            allow: serde_json::from_str(&row.allow_tools).unwrap_or_default(),
            deny: serde_json::from_str(&row.deny_tools).unwrap_or_default(),
        }
    }

    pub fn to_row(&self) -> policy_rule::Model {
        policy_rule::Model {
            group_name: self.group.clone(),
            upstream: self.upstream.clone(),
            allow_tools: serde_json::to_string(&self.allow).expect("strings serialize"),
            deny_tools: serde_json::to_string(&self.deny).expect("strings serialize"),
        }
    }

    /// Checks what can be checked without the database: a printable group name, tool patterns without spaces.
    pub fn validate(&self) -> Result<(), String> {
        check_group_name(&self.group)?;
        let pattern = |p: &String| !p.is_empty() && p.len() <= 128 && p.bytes().all(|b| b.is_ascii_graphic());
        if !self.allow.iter().chain(&self.deny).all(pattern) {
            return Err("a tool pattern is 1–128 printable characters without spaces".into());
        }
        Ok(())
    }

    /// The rule in words, for refusals and lists.
    pub fn describe(&self) -> String {
        let mut text = format!("group {} may use {}", self.group, self.upstream);
        if !self.allow.is_empty() {
            text.push_str(&format!(" (tools {})", self.allow.join(", ")));
        }
        if !self.deny.is_empty() {
            text.push_str(&format!(" except {}", self.deny.join(", ")));
        }
        text
    }

    fn covers(&self, upstream: &str) -> bool {
        self.upstream == upstream || self.upstream == "*"
    }
}

/// A group name: 1–128 printable characters (groups come from providers' claims too, so spaces are allowed).
pub fn check_group_name(group: &str) -> Result<(), String> {
    if group.is_empty() || group.len() > 128 || group.chars().any(char::is_control) {
        return Err("a group name is 1–128 printable characters".into());
    }
    Ok(())
}

/// Whether `name` matches `pattern`, where `*` stands for any run of characters.
pub fn matches(pattern: &str, name: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == name;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !name.starts_with(first) || name.len() < first.len() + last.len() || !name.ends_with(last) {
        return false;
    }
    let mut rest = &name[first.len()..name.len() - last.len()];
    for middle in &parts[1..parts.len() - 1] {
        match rest.find(middle) {
            Some(at) => rest = &rest[at + middle.len()..],
            None => return false,
        }
    }
    true
}

/// The rules and one person's groups, as of one request.
#[derive(Debug, Clone)]
pub struct PolicyView {
    rules: Arc<Vec<Rule>>,
    groups: Arc<BTreeSet<String>>,
    /// A token a client holds for itself has no person, and so no groups.
    person: bool,
}

impl PolicyView {
    /// `Ok` when the person may use `upstream` (and `tool` of it, when named); else the refusal in words,
    /// naming the rules.
    pub fn allows(&self, upstream: &str, tool: Option<&str>) -> Result<(), String> {
        let covering: Vec<&Rule> = self.rules.iter().filter(|r| r.covers(upstream)).collect();
        if covering.is_empty() {
            return Ok(());
        }
        let mine: Vec<&Rule> = covering.iter().copied().filter(|r| self.groups.contains(&r.group)).collect();
        if mine.is_empty() {
            let groups: BTreeSet<&str> = covering.iter().map(|r| r.group.as_str()).collect();
            let who = if self.person { "you are in none of them" } else { "a client's own token has no groups" };
            return Err(format!(
                "policy: upstream {upstream} is for the groups {}; {who}",
                groups.into_iter().collect::<Vec<_>>().join(", ")
            ));
        }
        let Some(tool) = tool else {
            return Ok(());
        };
        if let Some((rule, pattern)) =
            mine.iter().find_map(|r| r.deny.iter().find(|p| matches(p, tool)).map(|p| (r, p)))
        {
            return Err(format!(
                "policy: tool {tool} of upstream {upstream} is denied to group {} ({pattern})",
                rule.group
            ));
        }
        if mine.iter().any(|r| r.allow.is_empty() || r.allow.iter().any(|p| matches(p, tool))) {
            return Ok(());
        }
        let rules: Vec<String> = mine.iter().map(|r| r.describe()).collect();
        Err(format!("policy: tool {tool} of upstream {upstream} is not among those allowed ({})", rules.join("; ")))
    }
}

/// A value read at a moment.
type Remembered<T> = (Arc<T>, Instant);

/// The policy service: rules and people's groups, cached for `ttl`.
pub struct Policy {
    store: Store,
    ttl: Duration,
    rules: Mutex<Option<Remembered<Vec<Rule>>>>,
    groups: Mutex<HashMap<String, Remembered<BTreeSet<String>>>>,
}

impl Policy {
    pub fn new(store: Store, ttl: Duration) -> Arc<Policy> {
        Arc::new(Policy { store, ttl, rules: Mutex::default(), groups: Mutex::default() })
    }

    /// The view for one request of `user_id` (`None`: a client's own token).
    pub async fn view(&self, user_id: Option<&str>) -> Result<PolicyView, DbErr> {
        let rules = self.rules().await?;
        let groups = match user_id {
            Some(user) if !rules.is_empty() => self.groups_of(user).await?,
            _ => Arc::default(),
        };
        Ok(PolicyView { rules, groups, person: user_id.is_some() })
    }

    async fn rules(&self) -> Result<Arc<Vec<Rule>>, DbErr> {
        if let Some((rules, at)) = self.rules.lock().expect("rules lock").as_ref()
            && at.elapsed() < self.ttl
        {
            return Ok(rules.clone());
        }
        let rules: Arc<Vec<Rule>> = Arc::new(self.store.policy_rules().await?.iter().map(Rule::from_row).collect());
        *self.rules.lock().expect("rules lock") = Some((rules.clone(), Instant::now()));
        Ok(rules)
    }

    async fn groups_of(&self, user_id: &str) -> Result<Arc<BTreeSet<String>>, DbErr> {
        if let Some((groups, at)) = self.groups.lock().expect("groups lock").get(user_id)
            && at.elapsed() < self.ttl
        {
            return Ok(groups.clone());
        }
        let groups: Arc<BTreeSet<String>> =
            Arc::new(self.store.user_groups(user_id).await?.into_iter().map(|g| g.name).collect());
        let mut cache = self.groups.lock().expect("groups lock");
        if cache.len() > 100_000 {
            cache.clear();
        }
        cache.insert(user_id.to_owned(), (groups.clone(), Instant::now()));
        Ok(groups)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(rules: Vec<Rule>, groups: &[&str]) -> PolicyView {
        PolicyView {
            rules: Arc::new(rules),
            groups: Arc::new(groups.iter().map(|g| g.to_string()).collect()),
            person: true,
        }
    }

    fn rule(group: &str, upstream: &str, allow: &[&str], deny: &[&str]) -> Rule {
        Rule {
            group: group.into(),
            upstream: upstream.into(),
            allow: allow.iter().map(|s| s.to_string()).collect(),
            deny: deny.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn patterns_match_with_stars() {
        assert!(matches("read_*", "read_file"));
        assert!(matches("*_file", "read_file"));
        assert!(matches("*", "anything"));
        assert!(matches("a*c*e", "abcde"));
        assert!(!matches("a*c*e", "abde"));
        assert!(!matches("read_*", "write_file"));
        assert!(matches("exact", "exact") && !matches("exact", "exactly"));
    }

    #[test]
    fn an_upstream_without_rules_is_for_everyone_and_one_with_rules_for_its_groups_only() {
        let open = view(vec![], &[]);
        assert!(open.allows("files", Some("read_file")).is_ok());
        let rules = vec![rule("eng", "files", &[], &["delete_*"]), rule("support", "files", &["read_*"], &[])];
        assert!(view(rules.clone(), &["eng"]).allows("files", Some("write_file")).is_ok());
        let denied = view(rules.clone(), &["eng"]).allows("files", Some("delete_all")).unwrap_err();
        assert!(denied.contains("denied to group eng") && denied.contains("delete_*"), "{denied}");
        assert!(view(rules.clone(), &["support"]).allows("files", Some("read_file")).is_ok());
        assert!(view(rules.clone(), &["support"]).allows("files", Some("write_file")).is_err());
        let outsider = view(rules.clone(), &["sales"]).allows("files", None).unwrap_err();
        assert!(outsider.contains("eng, support"), "{outsider}");
        assert!(view(rules.clone(), &["sales"]).allows("other", Some("x")).is_ok(), "other upstreams stay open");
        assert!(view(vec![rule("all", "*", &[], &[])], &["sales"]).allows("other", None).is_err());
    }
}
