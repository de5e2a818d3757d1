//! The exec approval policy for one agent (OpenClaw's exec-approvals
//! file, as `exec.approvals.set` recorded it) and what it says about one
//! command: run it, refuse it, or ask a person.
//!
//! Why the default is `allowlist` + `ask: on-miss` + `askFallback: deny`
//! (OpenClaw's `ask` preset) and not OpenClaw's gateway default (`full`,
//! never ask): an agent that can be prompt-injected through any message
//! it reads should not run shell commands nobody saw. An operator who
//! wants OpenClaw's behaviour sets `security: "full", ask: "off"`.
//!
//! Pure, except `allowlisted`, which resolves a bare command through
//! `PATH` (given by the caller) and symlinks on disk, as OpenClaw matches
//! allowlist patterns against the resolved binary.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::canonical::{Canonical, SimpleCommand};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Security {
    Deny,
    Allowlist,
    Ask,
    Full,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Ask {
    Off,
    OnMiss,
    Always,
}

/// The policy in force for one agent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Effective {
    pub security: Security,
    pub ask: Ask,
    pub ask_fallback: Security,
    /// Allowlist patterns (entries with an `argPattern` are left out: an
    /// ECMAScript regex is not evaluated here, and an entry we cannot
    /// check must not match).
    pub allowlist: Vec<String>,
}

impl Default for Effective {
    fn default() -> Effective {
        Effective {
            security: Security::Allowlist,
            ask: Ask::OnMiss,
            ask_fallback: Security::Deny,
            allowlist: Vec::new(),
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Fields {
    security: Option<Security>,
    ask: Option<Ask>,
    ask_fallback: Option<Security>,
    allowlist: Option<Vec<Entry>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Entry {
    pattern: String,
    arg_pattern: Option<String>,
}

#[derive(Deserialize, Default)]
struct File {
    defaults: Option<Fields>,
    agents: Option<std::collections::BTreeMap<String, Fields>>,
}

/// The policy for `agent_id` from the recorded policy JSON (`None`: never
/// set): the agent's fields, else the file's defaults, else the built-in
/// default. A policy that does not parse (it was validated when recorded,
/// so only a format change could cause this) is the most restrictive one.
pub fn effective(policy_json: Option<&str>, agent_id: &str) -> Effective {
    let base = Effective::default();
    let Some(json) = policy_json else {
        return base;
    };
    let Ok(file) = serde_json::from_str::<File>(json) else {
        return Effective {
            security: Security::Deny,
            ask: Ask::Off,
            ask_fallback: Security::Deny,
            allowlist: Vec::new(),
        };
    };
    let defaults = file.defaults.unwrap_or_default();
    let agent = file
        .agents
        .and_then(|mut agents| agents.remove(agent_id))
        .unwrap_or_default();
    Effective {
        security: agent
            .security
            .or(defaults.security)
            .unwrap_or(base.security),
        ask: agent.ask.or(defaults.ask).unwrap_or(base.ask),
        ask_fallback: agent
            .ask_fallback
            .or(defaults.ask_fallback)
            .unwrap_or(base.ask_fallback),
        allowlist: agent
            .allowlist
            .unwrap_or_default()
            .into_iter()
            .filter(|entry| entry.arg_pattern.is_none())
            .map(|entry| entry.pattern)
            .collect(),
    }
}

impl Effective {
    /// The policy with a call's own `ask` (the exec tool's argument), which
    /// can only make it stricter, as in OpenClaw: `always` over `on-miss`
    /// over `off`.
    pub fn hardened(mut self, ask: Option<Ask>) -> Effective {
        let rank = |ask: Ask| match ask {
            Ask::Off => 0,
            Ask::OnMiss => 1,
            Ask::Always => 2,
        };
        if let Some(ask) = ask
            && rank(ask) > rank(self.ask)
        {
            self.ask = ask;
        }
        self
    }
}

/// What the policy says before anyone is asked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Run,
    Deny(String),
    Ask,
}

/// The decision for a command, given whether every simple command of it is
/// allowlisted and whether a live allow-always grant covers it.
pub fn decide(policy: &Effective, allowlisted: bool, granted: bool) -> Verdict {
    if policy.security == Security::Deny {
        return Verdict::Deny("exec is turned off for this agent (security: deny)".to_owned());
    }
    // `always` asks even when a grant exists, as OpenClaw does.
    if policy.ask == Ask::Always {
        return Verdict::Ask;
    }
    if allowlisted || granted {
        return Verdict::Run;
    }
    match (policy.security, policy.ask) {
        (Security::Full, Ask::Off) => Verdict::Run,
        (_, Ask::Off) => Verdict::Deny(
            "the command is not on this agent's allowlist and the policy never asks (ask: off)"
                .to_owned(),
        ),
        _ => Verdict::Ask,
    }
}

/// Whether `askFallback` lets a command run when nobody decided in time.
pub fn fallback_runs(policy: &Effective, allowlisted: bool) -> bool {
    match policy.ask_fallback {
        Security::Full => true,
        Security::Allowlist => allowlisted,
        Security::Deny | Security::Ask => false,
    }
}

/// Whether every simple command of `canonical` matches an allowlist
/// pattern (an opaque command never does). A command with context (`sudo`,
/// `env X=1`, `xargs`, a login shell) or a redirection other than to
/// `/dev/null` or between descriptors is a miss: the pattern allowed the
/// binary, not what is wrapped around it.
pub fn allowlisted(policy: &Effective, canonical: &Canonical, cwd: &Path, path_env: &str) -> bool {
    let Canonical::Commands(commands) = canonical else {
        return false;
    };
    !policy.allowlist.is_empty()
        && commands
            .iter()
            .all(|command| command_allowlisted(policy, command, cwd, path_env))
}

fn command_allowlisted(
    policy: &Effective,
    command: &SimpleCommand,
    cwd: &Path,
    path_env: &str,
) -> bool {
    let Some(program) = command.argv.first() else {
        return false;
    };
    let redirects_ok = command.redirects.iter().all(|redirect| {
        let target = redirect.trim_start_matches(|c: char| c.is_ascii_digit());
        target.ends_with("/dev/null")
            || ((target.starts_with(">&") || target.starts_with("<&"))
                && target[2..].chars().all(|c| c.is_ascii_digit() || c == '-'))
    });
    if !command.context.is_empty() || !redirects_ok || program.starts_with('\0') {
        return false;
    }
    let resolved = resolve(program, cwd, path_env);
    policy.allowlist.iter().any(|pattern| {
        let pattern = expand_home(pattern);
        if pattern.contains('/') {
            resolved
                .as_ref()
                .is_some_and(|path| glob(&pattern, &path.to_string_lossy()))
        } else {
            // Bare names match only commands run through PATH.
            !program.contains('/') && glob(&pattern, program)
        }
    })
}

fn expand_home(pattern: &str) -> String {
    match (pattern.strip_prefix("~/"), std::env::var("HOME")) {
        (Some(rest), Ok(home)) => format!("{}/{rest}", home.trim_end_matches('/')),
        _ => pattern.to_owned(),
    }
}

/// The binary `program` runs: a path as is (relative to `cwd`), a bare
/// name through `path_env`; symlinks resolved.
fn resolve(program: &str, cwd: &Path, path_env: &str) -> Option<PathBuf> {
    let candidate = if program.contains('/') {
        Some(cwd.join(program))
    } else {
        path_env
            .split(':')
            .filter(|dir| !dir.is_empty())
            .map(|dir| Path::new(dir).join(program))
            .find(|path| path.is_file())
    }?;
    std::fs::canonicalize(candidate).ok()
}

/// Glob match: `**` any characters, `*` any but `/`, `?` one but `/`.
/// Dynamic programming over (pattern, text) positions: linear in their
/// product, never exponential.
pub fn glob(pattern: &str, text: &str) -> bool {
    #[derive(Clone, Copy)]
    enum Piece {
        AnyPath,
        Any,
        One,
        Char(char),
    }
    let chars: Vec<char> = pattern.chars().collect();
    let mut pieces = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '*' if chars.get(i + 1) == Some(&'*') => {
                pieces.push(Piece::AnyPath);
                i += 1;
            }
            '*' => pieces.push(Piece::Any),
            '?' => pieces.push(Piece::One),
            c => pieces.push(Piece::Char(c)),
        }
        i += 1;
    }
    let text: Vec<char> = text.chars().collect();
    // matched[j]: the pieces so far match text[..j].
    let mut matched = vec![false; text.len() + 1];
    matched[0] = true;
    for piece in pieces {
        let mut next = vec![false; text.len() + 1];
        for j in 0..=text.len() {
            next[j] = match piece {
                Piece::AnyPath => matched[j] || (j > 0 && next[j - 1]),
                Piece::Any => matched[j] || (j > 0 && next[j - 1] && text[j - 1] != '/'),
                Piece::One => j > 0 && matched[j - 1] && text[j - 1] != '/',
                Piece::Char(c) => j > 0 && matched[j - 1] && text[j - 1] == c,
            };
        }
        matched = next;
    }
    matched[text.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::canonical::parse;

    #[test]
    fn the_default_asks_on_a_miss_and_denies_on_expiry() {
        let policy = effective(None, "main");
        assert_eq!(policy, Effective::default());
        assert_eq!(decide(&policy, false, false), Verdict::Ask);
        assert_eq!(decide(&policy, false, true), Verdict::Run);
        assert!(!fallback_runs(&policy, true));
    }

    #[test]
    fn agent_fields_override_defaults_and_always_ignores_grants() {
        let json = r#"{"version":1,"defaults":{"security":"full","ask":"off"},
            "agents":{"ops":{"ask":"always"},"locked":{"security":"deny"},
                      "strict":{"security":"allowlist","ask":"off","askFallback":"allowlist",
                                "allowlist":[{"pattern":"ls"},{"pattern":"rm","argPattern":"^x$"}]}}}"#;
        assert_eq!(
            decide(&effective(Some(json), "main"), false, false),
            Verdict::Run
        );
        assert_eq!(
            decide(&effective(Some(json), "ops"), true, true),
            Verdict::Ask
        );
        assert!(matches!(
            decide(&effective(Some(json), "locked"), true, true),
            Verdict::Deny(_)
        ));
        let strict = effective(Some(json), "strict");
        assert_eq!(strict.allowlist, vec!["ls".to_owned()]);
        assert!(matches!(decide(&strict, false, false), Verdict::Deny(_)));
        assert!(fallback_runs(&strict, true) && !fallback_runs(&strict, false));
        assert_eq!(effective(Some("not json"), "main").security, Security::Deny);
    }

    #[test]
    fn a_calls_own_ask_only_hardens_the_policy() {
        let full = Effective {
            security: Security::Full,
            ask: Ask::Off,
            ..Effective::default()
        };
        assert_eq!(
            decide(&full.clone().hardened(None), false, false),
            Verdict::Run
        );
        assert_eq!(
            decide(&full.clone().hardened(Some(Ask::Always)), true, true),
            Verdict::Ask
        );
        assert_eq!(
            decide(&full.clone().hardened(Some(Ask::OnMiss)), false, false),
            Verdict::Ask
        );
        let always = Effective {
            ask: Ask::Always,
            ..Effective::default()
        };
        assert_eq!(always.hardened(Some(Ask::Off)).ask, Ask::Always);
    }

    #[test]
    fn every_simple_command_must_match_and_wrappers_miss() {
        let policy = Effective {
            allowlist: vec!["ls".to_owned(), "echo".to_owned(), "/usr/bin/w?".to_owned()],
            ..Effective::default()
        };
        let cwd = Path::new("/");
        let path = "/usr/bin:/bin";
        let check = |command: &str| allowlisted(&policy, &parse(command), cwd, path);
        assert!(check("ls -la"));
        assert!(check("ls && echo hi 2>&1 >/dev/null"));
        assert!(!check("ls && rm -rf /"));
        assert!(!check("ls > out.txt"));
        assert!(!check("sudo ls"));
        assert!(!check("X=1 ls"));
        assert!(!check("ls $(rm)"));
        assert!(!check("./ls"));
        assert!(!check("xargs ls"));
        assert!(check("env ls"));
        // A path pattern matches the binary a bare name resolves to.
        assert!(check("ls | wc -l"));
        assert!(!check("ls | /tmp/wc"));
    }

    #[test]
    fn globs_match_paths_as_openclaw_patterns_do() {
        assert!(glob("/usr/bin/*", "/usr/bin/rg"));
        assert!(!glob("/usr/bin/*", "/usr/bin/x/rg"));
        assert!(glob("/opt/**/bin/rg", "/opt/a/b/bin/rg"));
        assert!(glob("r?", "rg"));
        assert!(!glob("rg", "rgx"));
        assert!(!glob("*", "a/b"));
        assert!(glob(&"*".repeat(200), &"a".repeat(200)));
    }
}
