//! A shell command reduced to the simple commands it would run, each as
//! its canonical argv: what an exec approval, an allow-always grant and an
//! allowlist entry are bound to.
//!
//! Why this exists: a grant bound to the command text, or to the first
//! word, is bypassed by wrapping (`env rm`, `sh -c 'ls; rm'`, `sudo rm`,
//! `ls && rm`, `ls\nrm`); every gateway in the family has shipped that bug
//! (shared/lessons.md: zeroclaw #3, ironclaw #4861-#4865, goclaw
//! #1202-#1216). Here a command is parsed the way the shell would split it
//! (quotes and escapes resolved, chains, pipelines, subshells and brace
//! groups flattened), wrappers that only change how a command is started
//! (`env`, `sh -c`, `time`, `nice`, `nohup`, `timeout`, `stdbuf`,
//! `command`, `exec`) are unwrapped to the command they start, and wrappers
//! that change who runs it or with what environment (`sudo`, `doas`,
//! `VAR=val`, `env -i/-u/-C`, `xargs`, a login shell) are kept as the
//! command's `context`, so `sudo ls` is never the same command as `ls`.
//!
//! Anything that cannot be decided without running the shell makes the
//! whole command **opaque** ([`Canonical::Opaque`], with the reason):
//! command or process substitution, variables and `~` (their values are
//! only known when it runs: the exec tool's own `env` argument could set
//! them), `eval`, `source`/`.`, aliases and functions, here-docs, control
//! flow (`if`, `for`, `case`...), `$'..'` quoting (not decoded), unbalanced
//! quotes or groups, a pattern in command position, a path named like a
//! wrapper outside the system directories, unknown wrapper options. An
//! opaque command never matches a grant or an allowlist entry: it always
//! asks, and the approval text says why. Erring towards opaque costs a
//! question; erring the other way costs the machine.
//!
//! Decisions (see docs/OPERATIONS.md):
//! - The executable is kept **as written**: `ls`, `/bin/ls` and `./ls` are
//!   three commands. Collapsing to the basename would let a grant for
//!   `/bin/ls` (or `ls`) run `./ls`, a file the agent may have written;
//!   resolving through `PATH` at hash time would make the hash depend on
//!   the disk. Wrappers are the one exception, and only as bare names or
//!   from `/bin`, `/usr/bin`, `/usr/local/bin` and the `sbin`s: a
//!   `./env` or `/tmp/sh` is opaque.
//! - Patterns (`*`, `?`, `[`, `{`) in arguments are kept as the pattern,
//!   marked, so `rm *` and `rm '*'` differ; the reviewer approved the
//!   pattern they saw.
//! - Redirections are part of a simple command (`ls > ~/.bashrc` is not
//!   `ls`).
//! - The hash is blake3 over a length-prefixed encoding of the list (and
//!   the working directory, as OpenClaw binds allow-always to it): no two
//!   different lists encode alike.
//!
//! Why our own parser: `shell-words` only splits words (no operators,
//! substitutions or groups, so `ls;rm` is one word to it); `conch-parser`
//! is a real POSIX parser but unmaintained since 2018; `brush-parser` and
//! `yash-syntax` parse whole languages we would then have to walk and
//! refuse most of. What approval needs is narrow: recognise the small
//! subset whose meaning is static, and refuse the rest. ~600 lines that
//! say "opaque" at every doubt are easier to audit than a grammar.
//!
//! Layout: `lex` turns text into words and operators, `script` flattens
//! them into simple commands, `wrappers` unwraps each; this file holds the
//! types, the hash and the entry points.
//!
//! Pure: no I/O, no environment, bounded (command size, commands, nesting).

use std::fmt::Write as _;

/// The longest command text analysed (as the approval RPC accepts).
pub const COMMAND_BYTES_MAX: usize = 64 * 1024;
/// The most simple commands one command may expand to.
const COMMANDS_MAX: usize = 256;
/// How deeply `sh -c` scripts and wrappers may nest.
const DEPTH_MAX: usize = 8;

/// Directories whose wrapper binaries are trusted to be the wrapper.
const SYSTEM_DIRS: &[&str] = &[
    "/bin",
    "/usr/bin",
    "/usr/local/bin",
    "/sbin",
    "/usr/sbin",
    "/usr/local/sbin",
];
const SHELLS: &[&str] = &["sh", "bash", "zsh", "dash", "ksh", "ash", "mksh", "hush"];
const WRAPPERS: &[&str] = &[
    "env", "time", "nice", "nohup", "sudo", "doas", "timeout", "stdbuf", "command", "exec",
    "xargs", "busybox",
];
/// Commands whose effect depends on code or definitions not in the text.
const DYNAMIC: &[&str] = &[
    "eval", "source", ".", "alias", "builtin", "trap", "fc", "coproc", "function", "enable",
];
const RESERVED: &[&str] = &[
    "if", "then", "else", "elif", "fi", "do", "done", "case", "esac", "while", "until", "for",
    "in", "select", "[[", "]]", "function", "coproc",
];

/// One command the shell would start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimpleCommand {
    /// What changes who runs it or its environment, in order: `X='1'`,
    /// `env -i`, `env -u X`, `env -C dir`, `sudo user=root`, `bash login`,
    /// `xargs -0`, ...
    pub context: Vec<String>,
    /// The argv, quotes resolved; a word with an unquoted pattern is
    /// `"\0pattern\0"` followed by the pattern (quoted pattern characters
    /// escaped), which no real argument can equal.
    pub argv: Vec<String>,
    /// Redirections as written once resolved: `>'out.txt'`, `2>&1`.
    pub redirects: Vec<String>,
}

/// What a command is, for approvals.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Canonical {
    /// The simple commands, in the order written.
    Commands(Vec<SimpleCommand>),
    /// Cannot be decided statically: never matches a grant or allowlist.
    Opaque { reason: String },
}

impl Canonical {
    /// The hash a grant is bound to, or `None` for an opaque command.
    pub fn hash(&self, cwd: &str) -> Option<String> {
        match self {
            Canonical::Commands(commands) => Some(hash(commands, cwd)),
            Canonical::Opaque { .. } => None,
        }
    }

    /// What a reviewer reads: each simple command on its own line, or why
    /// the command is opaque.
    pub fn describe(&self) -> String {
        match self {
            Canonical::Commands(commands) => commands
                .iter()
                .map(SimpleCommand::describe)
                .collect::<Vec<_>>()
                .join("\n"),
            Canonical::Opaque { reason } => format!("cannot be analysed: {reason}"),
        }
    }
}

impl SimpleCommand {
    /// The command as shell text: context in brackets, then the argv and
    /// redirections.
    pub fn describe(&self) -> String {
        let mut text = String::new();
        for context in &self.context {
            let _ = write!(text, "[{context}] ");
        }
        let argv: Vec<String> = self.argv.iter().map(|word| display_word(word)).collect();
        text.push_str(&argv.join(" "));
        for redirect in &self.redirects {
            let _ = write!(text, " {redirect}");
        }
        text.trim().to_owned()
    }
}

/// blake3 over the domain, the working directory and each command's
/// context, argv and redirections, every string and list length-prefixed.
pub fn hash(commands: &[SimpleCommand], cwd: &str) -> String {
    let mut hasher = blake3::Hasher::new();
    hasher.update(b"clawback exec canonical argv v1\0");
    let mut put = |bytes: &[u8]| {
        hasher.update(&(bytes.len() as u64).to_le_bytes());
        hasher.update(bytes);
    };
    put(cwd.as_bytes());
    put(&(commands.len() as u64).to_le_bytes());
    for command in commands {
        for list in [&command.context, &command.argv, &command.redirects] {
            put(&(list.len() as u64).to_le_bytes());
            for item in list {
                put(item.as_bytes());
            }
        }
    }
    hasher.finalize().to_hex().to_string()
}

/// A shell command string, as `sh -c` would run it.
pub fn parse(command: &str) -> Canonical {
    if command.len() > COMMAND_BYTES_MAX {
        return opaque("the command is longer than 64 KiB");
    }
    let mut out = Vec::new();
    match parse_script(command, &[], &[], 0, &mut out) {
        Ok(()) if out.is_empty() => opaque("there is no command to run"),
        Ok(()) => Canonical::Commands(out),
        Err(reason) => Canonical::Opaque { reason },
    }
}

/// An argv given directly (no shell between it and `execve`), with its
/// wrappers unwrapped as in [`parse`].
pub fn from_argv<S: AsRef<str>>(argv: &[S]) -> Canonical {
    let argv: Vec<&str> = argv.iter().map(AsRef::as_ref).collect();
    if argv.iter().map(|word| word.len()).sum::<usize>() > COMMAND_BYTES_MAX {
        return opaque("the command is longer than 64 KiB");
    }
    if argv.iter().any(|word| word.contains('\0')) {
        return opaque("an argument contains a NUL byte");
    }
    let words: Vec<Arg> = argv.iter().map(|text| Arg::literal(text)).collect();
    let mut out = Vec::new();
    match unwrap(&words, Vec::new(), Vec::new(), 0, &mut out) {
        Ok(()) if out.is_empty() => opaque("there is no command to run"),
        Ok(()) => Canonical::Commands(out),
        Err(reason) => Canonical::Opaque { reason },
    }
}

fn opaque(reason: &str) -> Canonical {
    Canonical::Opaque {
        reason: reason.to_owned(),
    }
}

/// A word quoted for `sh`, so that the shell reads it back unchanged.
pub fn quote(word: &str) -> String {
    if !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=@%+,".contains(c))
    {
        return word.to_owned();
    }
    format!("'{}'", word.replace('\'', r"'\''"))
}

fn display_word(word: &str) -> String {
    match word.strip_prefix(PATTERN_MARK) {
        Some(pattern) => pattern.to_owned(),
        None => quote(word),
    }
}

const PATTERN_MARK: &str = "\0pattern\0";

/// A word once lexed: its text, and its canonical form (the text, or the
/// marked pattern).
#[derive(Clone, Debug)]
struct Arg {
    text: String,
    canonical: String,
    pattern: bool,
}

impl Arg {
    fn literal(text: &str) -> Arg {
        Arg {
            text: text.to_owned(),
            canonical: text.to_owned(),
            pattern: false,
        }
    }
}

mod lex;
mod script;
mod wrappers;

use script::parse_script;
use wrappers::unwrap;

#[cfg(test)]
mod tests;
