//! Who may do what where: users, groups, repository patterns and the actions pull, push, delete.
//!
//! A rule names its callers (users, groups, `*` for any signed-in user, `anonymous`), the
//! repositories it covers (exact names or patterns where `*` matches any run of characters,
//! `/` included: `team-a/*`, `*`) and the actions it grants. A caller may do what any rule
//! grants it; nothing is granted otherwise.

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;

/// An action on a repository, as the docker token protocol names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Pull,
    Push,
    Delete,
}

impl Action {
    pub const ALL: [Action; 3] = [Action::Pull, Action::Push, Action::Delete];

    pub fn as_str(self) -> &'static str {
        match self {
            Action::Pull => "pull",
            Action::Push => "push",
            Action::Delete => "delete",
        }
    }

    pub fn parse(s: &str) -> Option<Action> {
        match s {
            "pull" => Some(Action::Pull),
            "push" => Some(Action::Push),
            "delete" => Some(Action::Delete),
            _ => None,
        }
    }
}

/// Who is asking: nobody in particular, or a user who proved a password or holds a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    Anonymous,
    User(String),
}

impl Caller {
    /// The name logs use.
    pub fn name(&self) -> &str {
        match self {
            Caller::Anonymous => "anonymous",
            Caller::User(u) => u,
        }
    }
}

/// One `[[auth.rules]]` entry of the config.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// User names; `*` is any signed-in user.
    #[serde(default)]
    pub users: Vec<String>,
    /// Group names from `[auth.groups]`.
    #[serde(default)]
    pub groups: Vec<String>,
    /// Whether callers without credentials are covered.
    #[serde(default)]
    pub anonymous: bool,
    /// Repository names or patterns (`team-a/*`, `*`).
    pub repositories: Vec<String>,
    pub actions: Vec<Action>,
}

/// The rules with groups resolved: who may do what.
#[derive(Debug, Clone, Default)]
pub struct Rules {
    rules: Vec<Rule>,
}

#[derive(Debug, Clone)]
struct Rule {
    anonymous: bool,
    any_user: bool,
    users: BTreeSet<String>,
    repositories: Vec<String>,
    actions: BTreeSet<Action>,
}

impl Rules {
    /// Resolves groups; an unknown group or a rule that covers nobody or nothing is an error.
    pub fn new(
        rules: &[RuleConfig],
        groups: &BTreeMap<String, Vec<String>>,
    ) -> Result<Rules, String> {
        let mut out = Vec::new();
        for (i, r) in rules.iter().enumerate() {
            let at = format!("auth.rules[{i}]");
            let mut users: BTreeSet<String> = r.users.iter().cloned().collect();
            for g in &r.groups {
                let members = groups
                    .get(g)
                    .ok_or_else(|| format!("{at}: group {g:?} is not defined in [auth.groups]"))?;
                users.extend(members.iter().cloned());
            }
            if users.is_empty() && !r.anonymous {
                return Err(format!(
                    "{at}: names no users, groups or anonymous, so it grants nothing"
                ));
            }
            if r.repositories.is_empty() || r.repositories.iter().any(|p| p.is_empty()) {
                return Err(format!(
                    "{at}: repositories must list names or patterns such as \"team-a/*\""
                ));
            }
            out.push(Rule {
                anonymous: r.anonymous,
                any_user: users.remove("*"),
                users,
                repositories: r.repositories.clone(),
                actions: r.actions.iter().copied().collect(),
            });
        }
        Ok(Rules { rules: out })
    }

    /// Whether `caller` may do `action` on `repo`.
    pub fn allows(&self, caller: &Caller, repo: &str, action: Action) -> bool {
        self.rules.iter().any(|r| {
            r.covers(caller)
                && r.actions.contains(&action)
                && r.repositories.iter().any(|p| matches(p, repo))
        })
    }

    /// Whether any rule grants the caller anything at all.
    pub fn grants_anything(&self, caller: &Caller) -> bool {
        self.rules
            .iter()
            .any(|r| r.covers(caller) && !r.actions.is_empty())
    }
}

impl Rule {
    fn covers(&self, caller: &Caller) -> bool {
        match caller {
            Caller::Anonymous => self.anonymous,
            Caller::User(u) => self.any_user || self.users.contains(u),
        }
    }
}

/// Glob matching where `*` stands for any run of characters, `/` included (the store's, so
/// that access rules and retention rules read patterns alike).
pub use berth_storage::name::glob_matches as matches;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns() {
        let table = [
            ("*", "a", true),
            ("*", "a/b/c", true),
            ("team-a/*", "team-a/x", true),
            ("team-a/*", "team-a/x/y", true),
            ("team-a/*", "team-a", false),
            ("team-a/*", "team-ab/x", false),
            ("lib", "lib", true),
            ("lib", "lib/x", false),
            ("*/base", "x/base", true),
            ("*/base", "x/based", false),
            ("a*b*c", "a-b-b-c", true),
        ];
        for (p, n, want) in table {
            assert_eq!(matches(p, n), want, "{p} ~ {n}");
        }
    }

    #[test]
    fn rules_and_groups() {
        let cfg: Vec<RuleConfig> = toml::from_str::<BTreeMap<String, Vec<RuleConfig>>>(
            r#"
            [[r]]
            groups = ["team-a"]
            repositories = ["team-a/*"]
            actions = ["pull", "push"]
            [[r]]
            anonymous = true
            users = ["*"]
            repositories = ["public/*"]
            actions = ["pull"]
            "#,
        )
        .unwrap()
        .remove("r")
        .unwrap();
        let groups = BTreeMap::from([("team-a".to_string(), vec!["alice".to_string()])]);
        let rules = Rules::new(&cfg, &groups).unwrap();
        let alice = Caller::User("alice".into());
        let bob = Caller::User("bob".into());
        assert!(rules.allows(&alice, "team-a/app", Action::Push));
        assert!(!rules.allows(&alice, "team-a/app", Action::Delete));
        assert!(!rules.allows(&bob, "team-a/app", Action::Pull));
        assert!(rules.allows(&bob, "public/x", Action::Pull));
        assert!(rules.allows(&Caller::Anonymous, "public/x", Action::Pull));
        assert!(!rules.allows(&Caller::Anonymous, "public/x", Action::Push));
        let bad: Vec<RuleConfig> = vec![RuleConfig {
            users: vec![],
            groups: vec!["nope".into()],
            anonymous: false,
            repositories: vec!["*".into()],
            actions: vec![Action::Pull],
        }];
        assert!(Rules::new(&bad, &groups).unwrap_err().contains("nope"));
    }
}
