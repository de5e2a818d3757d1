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

// ---------------------------------------------------------------- lexing

/// One word as the lexer saw it: each character with whether it was
/// quoted (or escaped).
#[derive(Clone, Debug, Default)]
struct Word {
    chars: Vec<(char, bool)>,
}

impl Word {
    fn text(&self) -> String {
        self.chars.iter().map(|(c, _)| *c).collect()
    }

    fn is_bare(&self, text: &str) -> bool {
        self.chars.iter().all(|(_, quoted)| !quoted) && self.text() == text
    }

    /// Whether the shell would expand it: an unquoted `*` or `?`, a `[`
    /// with a later `]`, or a `{` with a later `}` and a `,` or `..`
    /// between (bash's brace expansion). A lone `[` (the test command) or
    /// `{}` (find's placeholder) stays literal, as in the shell.
    fn has_pattern(&self) -> bool {
        let unquoted: Vec<(usize, char)> = self
            .chars
            .iter()
            .enumerate()
            .filter(|(_, (_, quoted))| !quoted)
            .map(|(at, (c, _))| (at, *c))
            .collect();
        let later = |from: usize, wanted: char| {
            unquoted
                .iter()
                .find(|(at, c)| *at > from && *c == wanted)
                .map(|(at, _)| *at)
        };
        unquoted.iter().any(|&(at, c)| match c {
            '*' | '?' => true,
            '[' => later(at, ']').is_some(),
            '{' => later(at, '}').is_some_and(|close| {
                let inside: String = self.chars[at + 1..close].iter().map(|(c, _)| *c).collect();
                inside.contains(',') || inside.contains("..")
            }),
            _ => false,
        })
    }

    /// `NAME=value` with an unquoted name: a shell assignment.
    fn assignment(&self) -> Option<(String, String)> {
        let equals = self.chars.iter().position(|(c, _)| *c == '=')?;
        let name = &self.chars[..equals];
        let valid = !name.is_empty()
            && name
                .iter()
                .all(|(c, quoted)| !quoted && (c.is_ascii_alphanumeric() || *c == '_'))
            && !name[0].0.is_ascii_digit();
        valid.then(|| {
            let name: String = name.iter().map(|(c, _)| *c).collect();
            let value: String = self.chars[equals + 1..].iter().map(|(c, _)| *c).collect();
            (name, value)
        })
    }

    fn arg(&self) -> Arg {
        let text = self.text();
        if !self.has_pattern() {
            return Arg::literal(&text);
        }
        let mut canonical = PATTERN_MARK.to_owned();
        for (c, quoted) in &self.chars {
            if *quoted && "*?[]{}\\,".contains(*c) {
                canonical.push('\\');
            }
            canonical.push(*c);
        }
        Arg {
            text,
            canonical,
            pattern: true,
        }
    }
}

#[derive(Debug)]
enum Token {
    Word(Word),
    /// `;`, `&`, `&&`, `||`, `|`, `|&`, `(`, `)`, or a newline (`\n`).
    Op(&'static str),
    Redirect {
        fd: String,
        op: &'static str,
    },
}

fn lex(script: &str) -> Result<Vec<Token>, String> {
    let chars: Vec<char> = script.chars().collect();
    let mut tokens = Vec::new();
    let mut word: Option<Word> = None;
    let mut i = 0;
    let finish = |word: &mut Option<Word>, tokens: &mut Vec<Token>| {
        if let Some(word) = word.take() {
            tokens.push(Token::Word(word));
        }
    };
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        match c {
            '\0' => return Err("the command contains a NUL byte".to_owned()),
            ' ' | '\t' => finish(&mut word, &mut tokens),
            '\n' => {
                finish(&mut word, &mut tokens);
                tokens.push(Token::Op("\n"));
            }
            '#' if word.is_none() => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
                continue;
            }
            '\\' => match next {
                Some('\n') => i += 1,
                Some(escaped) => {
                    word.get_or_insert_default().chars.push((escaped, true));
                    i += 1;
                }
                None => word.get_or_insert_default().chars.push(('\\', false)),
            },
            '\'' => {
                let word = word.get_or_insert_default();
                i += 1;
                while i < chars.len() && chars[i] != '\'' {
                    word.chars.push((chars[i], true));
                    i += 1;
                }
                if i == chars.len() {
                    return Err("a single quote is not closed".to_owned());
                }
            }
            '"' => {
                let word = word.get_or_insert_default();
                i += 1;
                loop {
                    match chars.get(i).copied() {
                        None => return Err("a double quote is not closed".to_owned()),
                        Some('"') => break,
                        Some('\\') => match chars.get(i + 1).copied() {
                            Some('\n') => i += 1,
                            Some(escaped @ ('$' | '`' | '"' | '\\')) => {
                                word.chars.push((escaped, true));
                                i += 1;
                            }
                            _ => word.chars.push(('\\', true)),
                        },
                        Some('$') => {
                            // `$"` inside double quotes is a `$` and the end.
                            match chars.get(i + 1).copied() {
                                Some('"') => {}
                                next => dollar(next)?,
                            }
                            word.chars.push(('$', true));
                        }
                        Some('`') => {
                            return Err("it uses command substitution (backticks)".to_owned());
                        }
                        Some(other) => word.chars.push((other, true)),
                    }
                    i += 1;
                }
            }
            '$' => {
                dollar(next)?;
                word.get_or_insert_default().chars.push(('$', false));
            }
            '`' => return Err("it uses command substitution (backticks)".to_owned()),
            '~' if word.is_none() => {
                return Err(
                    "it uses ~, which expands to a home directory known only when it runs"
                        .to_owned(),
                );
            }
            ';' | '&' | '|' | '(' | ')' | '<' | '>' => {
                let two: String = [Some(c), next].iter().flatten().collect();
                let three: String = chars[i..chars.len().min(i + 3)].iter().collect();
                // A word of digits right before `<`/`>` is the fd.
                let fd = match &word {
                    Some(w)
                        if matches!(c, '<' | '>')
                            && w.chars
                                .iter()
                                .all(|(d, quoted)| !quoted && d.is_ascii_digit()) =>
                    {
                        let fd = w.text();
                        word = None;
                        fd
                    }
                    _ => {
                        finish(&mut word, &mut tokens);
                        String::new()
                    }
                };
                let (token, width) = match (c, two.as_str(), three.as_str()) {
                    (';', ";;", _) | (';', ";&", _) => {
                        return Err("it uses case syntax (;; or ;&)".to_owned());
                    }
                    (_, "<<", _) => {
                        return Err("it uses a here-document or here-string (<<)".to_owned());
                    }
                    (_, "<(", _) | (_, ">(", _) => {
                        return Err("it uses process substitution".to_owned());
                    }
                    (_, "&&", _) => (Token::Op("&&"), 2),
                    (_, "||", _) => (Token::Op("||"), 2),
                    (_, "|&", _) => (Token::Op("|&"), 2),
                    (_, _, "&>>") => (redirect(fd, "&>>"), 3),
                    (_, "&>", _) => (redirect(fd, "&>"), 2),
                    (_, ">>", _) => (redirect(fd, ">>"), 2),
                    (_, ">|", _) => (redirect(fd, ">|"), 2),
                    (_, ">&", _) => (redirect(fd, ">&"), 2),
                    (_, "<&", _) => (redirect(fd, "<&"), 2),
                    (_, "<>", _) => (redirect(fd, "<>"), 2),
                    ('<', _, _) => (redirect(fd, "<"), 1),
                    ('>', _, _) => (redirect(fd, ">"), 1),
                    (';', _, _) => (Token::Op(";"), 1),
                    ('&', _, _) => (Token::Op("&"), 1),
                    ('|', _, _) => (Token::Op("|"), 1),
                    ('(', _, _) => (Token::Op("("), 1),
                    _ => (Token::Op(")"), 1),
                };
                tokens.push(token);
                i += width;
                continue;
            }
            other => word.get_or_insert_default().chars.push((other, false)),
        }
        i += 1;
    }
    finish(&mut word, &mut tokens);
    Ok(tokens)
}

fn redirect(fd: String, op: &'static str) -> Token {
    Token::Redirect { fd, op }
}

/// Whether a `$` followed by `next` is a literal dollar (`Ok`); an
/// expansion is an error saying why the command is opaque.
fn dollar(next: Option<char>) -> Result<(), String> {
    match next {
        Some('\'') => Err("it uses $'...' quoting, which is not decoded here".to_owned()),
        Some('"') => Err("it uses $\"...\" quoting, which is not decoded here".to_owned()),
        Some('(') => Err("it uses command substitution $(...)".to_owned()),
        Some(c) if c.is_ascii_alphanumeric() || "_{@*#?-$!".contains(c) => {
            Err("it uses a variable ($...), whose value is known only when it runs".to_owned())
        }
        _ => Ok(()),
    }
}

// ---------------------------------------------------------------- parsing

#[derive(Default)]
struct Raw {
    words: Vec<Word>,
    redirects: Vec<String>,
}

/// Splits `script` into simple commands (chains, pipelines, groups
/// flattened) and unwraps each, appending to `out` with `context` and
/// `redirects` (those of an enclosing `sh -c`) in front.
fn parse_script(
    script: &str,
    context: &[String],
    redirects: &[String],
    depth: usize,
    out: &mut Vec<SimpleCommand>,
) -> Result<(), String> {
    if depth > DEPTH_MAX {
        return Err("wrappers nest too deeply".to_owned());
    }
    let tokens = lex(script)?;
    let mut raws: Vec<Raw> = Vec::new();
    let mut current = Raw::default();
    let mut groups: Vec<char> = Vec::new();
    let mut closed_group = false;
    let mut last_open = false;
    let mut tokens = tokens.into_iter();
    while let Some(token) = tokens.next() {
        let was_open = std::mem::replace(&mut last_open, false);
        match token {
            Token::Word(word) => {
                if current.words.is_empty() && current.redirects.is_empty() {
                    if word.is_bare("{") {
                        if closed_group {
                            return Err("a group follows a group without an operator".to_owned());
                        }
                        groups.push('{');
                        continue;
                    }
                    if word.is_bare("}") {
                        if groups.pop() != Some('{') {
                            return Err("a } closes nothing".to_owned());
                        }
                        closed_group = true;
                        continue;
                    }
                    if word.is_bare("!") {
                        continue;
                    }
                    if RESERVED.iter().any(|reserved| word.is_bare(reserved)) {
                        return Err(format!(
                            "it uses shell control flow ({}), which is not analysed",
                            word.text()
                        ));
                    }
                }
                if closed_group {
                    return Err("a word follows a closed group".to_owned());
                }
                current.words.push(word);
            }
            Token::Redirect { fd, op } => {
                if closed_group {
                    return Err(
                        "a redirection applies to a whole group, which is not analysed".to_owned(),
                    );
                }
                let Some(Token::Word(target)) = tokens.next() else {
                    return Err(format!("the redirection {op} has no target"));
                };
                if target.has_pattern() {
                    return Err("a redirection target is a pattern".to_owned());
                }
                current
                    .redirects
                    .push(format!("{fd}{op}{}", quote(&target.text())));
            }
            Token::Op("(") => {
                if !current.words.is_empty() || !current.redirects.is_empty() {
                    return Err("it defines a function, which is not analysed".to_owned());
                }
                if was_open {
                    return Err("it uses arithmetic (( )), which is not analysed".to_owned());
                }
                if closed_group {
                    return Err("a group follows a group without an operator".to_owned());
                }
                groups.push('(');
                last_open = true;
            }
            Token::Op(")") => {
                if !current.words.is_empty() || !current.redirects.is_empty() {
                    raws.push(std::mem::take(&mut current));
                }
                if groups.pop() != Some('(') {
                    return Err("a ) closes nothing".to_owned());
                }
                closed_group = true;
            }
            Token::Op(op) => {
                let empty = current.words.is_empty() && current.redirects.is_empty();
                if empty && !closed_group && op != "\n" && op != ";" {
                    return Err(format!("{op} has no command before it"));
                }
                if !empty {
                    raws.push(std::mem::take(&mut current));
                }
                closed_group = false;
            }
        }
    }
    if !current.words.is_empty() || !current.redirects.is_empty() {
        raws.push(current);
    }
    if let Some(open) = groups.last() {
        return Err(format!("a group opened with {open} is not closed"));
    }
    for raw in raws {
        let assignments = raw
            .words
            .iter()
            .take_while(|word| word.assignment().is_some())
            .count();
        let mut command_context = context.to_vec();
        for word in &raw.words[..assignments] {
            let (name, value) = word.assignment().unwrap_or_default();
            command_context.push(format!("{name}={}", quote(&value)));
        }
        let mut command_redirects = redirects.to_vec();
        command_redirects.extend(raw.redirects);
        let args: Vec<Arg> = raw.words[assignments..].iter().map(Word::arg).collect();
        unwrap(&args, command_context, command_redirects, depth, out)?;
        if out.len() > COMMANDS_MAX {
            return Err(format!("it runs more than {COMMANDS_MAX} commands"));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------- unwrapping

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

/// Which wrapper `word` names, if any; a path named like one outside the
/// system directories is an error (opaque).
fn wrapper_name(word: &Arg) -> Result<Option<String>, String> {
    let text = word.text.as_str();
    let known = |name: &str| SHELLS.contains(&name) || WRAPPERS.contains(&name);
    let Some((dir, base)) = text.rsplit_once('/') else {
        return Ok(known(text).then(|| text.to_owned()));
    };
    if !known(base) {
        return Ok(None);
    }
    let dir = if dir.is_empty() { "/" } else { dir };
    if SYSTEM_DIRS.contains(&dir) {
        Ok(Some(base.to_owned()))
    } else {
        Err(format!(
            "{text} is named like the wrapper {base} but is not the one in the system directories"
        ))
    }
}

/// `args` (a command with its wrappers) unwrapped to the simple commands it
/// starts, appended to `out`.
fn unwrap(
    args: &[Arg],
    mut context: Vec<String>,
    redirects: Vec<String>,
    depth: usize,
    out: &mut Vec<SimpleCommand>,
) -> Result<(), String> {
    let plain = |args: &[Arg], context: Vec<String>, out: &mut Vec<SimpleCommand>| {
        out.push(SimpleCommand {
            context,
            argv: args.iter().map(|arg| arg.canonical.clone()).collect(),
            redirects: redirects.clone(),
        });
    };
    let mut args: Vec<Arg> = args.to_vec();
    for _ in 0..=DEPTH_MAX {
        let Some(first) = args.first() else {
            // Assignments or redirections alone still change something.
            if !context.is_empty() || !redirects.is_empty() {
                plain(&[], context, out);
            }
            return Ok(());
        };
        if first.pattern {
            return Err("the command to run is a pattern".to_owned());
        }
        if first.text.is_empty() {
            return Err("the command to run is empty".to_owned());
        }
        let Some(name) = wrapper_name(first)? else {
            let base = first.text.rsplit('/').next().unwrap_or_default();
            if DYNAMIC.contains(&first.text.as_str()) || DYNAMIC.contains(&base) {
                return Err(format!(
                    "it uses {}, whose effect depends on code not in the command",
                    first.text
                ));
            }
            plain(&args, context, out);
            return Ok(());
        };
        let step = match name.as_str() {
            shell if SHELLS.contains(&shell) => {
                return shell_c(&args, shell, context, redirects.clone(), depth, out);
            }
            "busybox" => match args.get(1).map(|arg| arg.text.as_str()) {
                Some(applet) if SHELLS.contains(&applet) => {
                    let shell = format!("busybox {applet}");
                    return shell_c(&args[1..], &shell, context, redirects.clone(), depth, out);
                }
                Some(_) => {
                    context.push("busybox".to_owned());
                    Step::Inner(1)
                }
                None => Step::Plain,
            },
            "env" => env(&mut args, &mut context)?,
            "time" => time(&args)?,
            "nice" => nice(&args)?,
            "nohup" => Step::Inner(usize::from(args.get(1).is_some_and(|a| a.text == "--")) + 1),
            "timeout" => timeout(&args)?,
            "stdbuf" => stdbuf(&args)?,
            "command" => command(&args)?,
            "exec" => exec(&args, &mut context)?,
            "sudo" => sudo(&args, &mut context)?,
            "doas" => doas(&args, &mut context)?,
            "xargs" => xargs(&args, &mut context)?,
            _ => Step::Plain,
        };
        match step {
            Step::Plain => {
                plain(&args, context, out);
                return Ok(());
            }
            Step::Inner(at) if at >= args.len() => {
                plain(&args, context, out);
                return Ok(());
            }
            Step::Inner(at) => {
                args.drain(..at);
            }
            Step::Replace(replacement) => args = replacement,
        }
    }
    Err("wrappers nest too deeply".to_owned())
}

/// What a wrapper does with the words after it.
enum Step {
    /// It runs itself (no inner command, or a form that runs nothing).
    Plain,
    /// The inner command starts at this index.
    Inner(usize),
    /// The words are replaced (`env -S` splits its string).
    Replace(Vec<Arg>),
}

/// `sh -c SCRIPT` (any option combination with `c`): the script parsed as
/// a command; `sh` without `-c` runs a file or stdin and is a plain
/// command.
fn shell_c(
    args: &[Arg],
    shell: &str,
    mut context: Vec<String>,
    redirects: Vec<String>,
    depth: usize,
    out: &mut Vec<SimpleCommand>,
) -> Result<(), String> {
    let (mut script, mut login) = (false, false);
    let mut i = 1;
    while let Some(arg) = args.get(i) {
        let text = arg.text.as_str();
        match text {
            "--" | "-" => {
                i += 1;
                break;
            }
            "--login" => login = true,
            "--noprofile" | "--norc" | "--posix" | "--noediting" => {}
            long if long.starts_with("--") => {
                return Err(format!("{shell} {long} is not analysed"));
            }
            flags if (flags.starts_with('-') || flags.starts_with('+')) && flags.len() > 1 => {
                for flag in flags[1..].chars() {
                    match flag {
                        'c' => script = true,
                        'l' | 'i' => login = true,
                        'o' | 'O' => i += 1,
                        'e' | 'u' | 'x' | 'v' | 'f' | 'h' | 'm' | 'n' | 'a' | 'b' | 'C' | 'p'
                        | 'E' | 'B' | 'H' | 'P' | 'T' | 'k' | 't' => {}
                        other => return Err(format!("{shell} -{other} is not analysed")),
                    }
                }
            }
            _ => break,
        }
        i += 1;
    }
    if !script {
        out.push(SimpleCommand {
            context,
            argv: args.iter().map(|arg| arg.canonical.clone()).collect(),
            redirects,
        });
        return Ok(());
    }
    let Some(text) = args.get(i) else {
        return Err(format!("{shell} -c has no command"));
    };
    if text.pattern {
        return Err(format!("the command of {shell} -c is a pattern"));
    }
    if login {
        // Startup files run first, and they are not in the command.
        context.push(format!("{shell} login"));
    }
    parse_script(&text.text, &context, &redirects, depth + 1, out)
}

/// Splits a `-xVALUE` / `-x VALUE` / `--long=VALUE` option: returns the
/// value and how many words it took, or `None` when `text` is not that
/// option.
fn valued(args: &[Arg], i: usize, short: &str, long: &str) -> Option<(String, usize)> {
    let text = args[i].text.as_str();
    if text == short || (!long.is_empty() && text == long) {
        return args.get(i + 1).map(|value| (value.text.clone(), 2));
    }
    if !long.is_empty()
        && let Some(value) = text.strip_prefix(&format!("{long}="))
    {
        return Some((value.to_owned(), 1));
    }
    text.strip_prefix(short)
        .filter(|value| !value.is_empty() && !short.is_empty() && short.len() == 2)
        .map(|value| (value.to_owned(), 1))
}

fn env(args: &mut Vec<Arg>, context: &mut Vec<String>) -> Result<Step, String> {
    let mut i = 1;
    let mut options = true;
    while i < args.len() {
        let text = args[i].text.clone();
        if options && text == "--" {
            options = false;
            i += 1;
            continue;
        }
        if options && (text == "-" || text == "-i" || text == "--ignore-environment") {
            context.push("env -i".to_owned());
            i += 1;
            continue;
        }
        if options && let Some((name, width)) = valued(args, i, "-u", "--unset") {
            context.push(format!("env -u {}", quote(&name)));
            i += width;
            continue;
        }
        if options && let Some((dir, width)) = valued(args, i, "-C", "--chdir") {
            context.push(format!("env -C {}", quote(&dir)));
            i += width;
            continue;
        }
        if options && let Some((string, width)) = valued(args, i, "-S", "--split-string") {
            let mut replaced = vec![args[0].clone()];
            replaced.extend(split_string(&string)?);
            replaced.extend(args[i + width..].iter().cloned());
            *args = replaced;
            i = 1;
            continue;
        }
        if options && (text == "-0" || text == "-v" || text == "--null" || text == "--debug") {
            i += 1;
            continue;
        }
        if options && text.starts_with('-') && text.len() > 1 {
            if text[1..].chars().all(|c| "iv0".contains(c)) {
                if text.contains('i') {
                    context.push("env -i".to_owned());
                }
                i += 1;
                continue;
            }
            return Err(format!("env {text} is not analysed"));
        }
        match text.split_once('=') {
            Some((name, value)) if !name.is_empty() => {
                options = false;
                context.push(format!("{name}={}", quote(value)));
                i += 1;
            }
            _ => break,
        }
    }
    if i >= args.len() {
        // `env` alone prints the environment: a plain command.
        return Ok(Step::Plain);
    }
    Ok(Step::Inner(i))
}

/// `env -S STRING`: split on blanks with '..' and ".." quoting; escapes,
/// variables and comments (which env -S interprets) make it opaque.
fn split_string(string: &str) -> Result<Vec<Arg>, String> {
    if string.contains(['\\', '$', '#']) {
        return Err("env -S with escapes, variables or comments is not analysed".to_owned());
    }
    let mut words = Vec::new();
    let mut word: Option<String> = None;
    let mut quote_char: Option<char> = None;
    for c in string.chars() {
        match (quote_char, c) {
            (Some(q), c) if c == q => quote_char = None,
            (Some(_), c) => word.get_or_insert_default().push(c),
            (None, '\'' | '"') => {
                quote_char = Some(c);
                word.get_or_insert_default();
            }
            (None, ' ' | '\t' | '\n') => words.extend(word.take()),
            (None, c) => word.get_or_insert_default().push(c),
        }
    }
    if quote_char.is_some() {
        return Err("env -S has an unclosed quote".to_owned());
    }
    words.extend(word);
    Ok(words.iter().map(|text| Arg::literal(text)).collect())
}

fn time(args: &[Arg]) -> Result<Step, String> {
    let mut i = 1;
    while let Some(arg) = args.get(i) {
        match arg.text.as_str() {
            "-p" => i += 1,
            "--" => return Ok(Step::Inner(i + 1)),
            option if option.starts_with('-') && option.len() > 1 => {
                return Err(format!("time {option} is not analysed"));
            }
            _ => break,
        }
    }
    Ok(Step::Inner(i))
}

fn nice(args: &[Arg]) -> Result<Step, String> {
    let mut i = 1;
    while let Some(arg) = args.get(i) {
        let text = arg.text.as_str();
        if text == "--" {
            return Ok(Step::Inner(i + 1));
        }
        if let Some((_, width)) = valued(args, i, "-n", "--adjustment") {
            i += width;
        } else if text.len() > 1
            && text.starts_with('-')
            && text[1..]
                .trim_start_matches('-')
                .chars()
                .all(|c| c.is_ascii_digit())
        {
            i += 1;
        } else if text.starts_with('-') && text.len() > 1 {
            return Err(format!("nice {text} is not analysed"));
        } else {
            break;
        }
    }
    Ok(Step::Inner(i))
}

fn timeout(args: &[Arg]) -> Result<Step, String> {
    let mut i = 1;
    while let Some(arg) = args.get(i) {
        let text = arg.text.as_str();
        if text == "--" {
            i += 1;
            break;
        }
        if let Some((_, width)) =
            valued(args, i, "-s", "--signal").or_else(|| valued(args, i, "-k", "--kill-after"))
        {
            i += width;
        } else if matches!(
            text,
            "--preserve-status" | "--foreground" | "-v" | "--verbose"
        ) {
            i += 1;
        } else if text.starts_with('-') && text.len() > 1 {
            return Err(format!("timeout {text} is not analysed"));
        } else {
            break;
        }
    }
    // The duration, then the command.
    if i >= args.len() {
        return Ok(Step::Plain);
    }
    Ok(Step::Inner(i + 1))
}

fn stdbuf(args: &[Arg]) -> Result<Step, String> {
    let mut i = 1;
    while let Some(arg) = args.get(i) {
        let text = arg.text.as_str();
        if text == "--" {
            return Ok(Step::Inner(i + 1));
        }
        if let Some((_, width)) = valued(args, i, "-i", "--input")
            .or_else(|| valued(args, i, "-o", "--output"))
            .or_else(|| valued(args, i, "-e", "--error"))
        {
            i += width;
        } else if text.starts_with('-') && text.len() > 1 {
            return Err(format!("stdbuf {text} is not analysed"));
        } else {
            break;
        }
    }
    Ok(Step::Inner(i))
}

fn command(args: &[Arg]) -> Result<Step, String> {
    let mut i = 1;
    while let Some(arg) = args.get(i) {
        match arg.text.as_str() {
            "-p" => i += 1,
            "--" => return Ok(Step::Inner(i + 1)),
            // `command -v name` prints where name is; it runs nothing.
            "-v" | "-V" | "-pv" | "-pV" => return Ok(Step::Plain),
            option if option.starts_with('-') && option.len() > 1 => {
                return Err(format!("command {option} is not analysed"));
            }
            _ => break,
        }
    }
    Ok(Step::Inner(i))
}

fn exec(args: &[Arg], context: &mut Vec<String>) -> Result<Step, String> {
    let mut i = 1;
    while let Some(arg) = args.get(i) {
        let text = arg.text.as_str();
        if text == "--" {
            return Ok(Step::Inner(i + 1));
        }
        if text == "-a" {
            let name = args.get(i + 1).map_or("", |arg| arg.text.as_str());
            context.push(format!("exec -a {}", quote(name)));
            i += 2;
        } else if text.starts_with('-') && text.len() > 1 {
            for flag in text[1..].chars() {
                match flag {
                    'c' => context.push("env -i".to_owned()),
                    'l' => context.push("exec login".to_owned()),
                    other => return Err(format!("exec -{other} is not analysed")),
                }
            }
            i += 1;
        } else {
            break;
        }
    }
    Ok(Step::Inner(i))
}

fn sudo(args: &[Arg], context: &mut Vec<String>) -> Result<Step, String> {
    let (mut user, mut group) = ("root".to_owned(), None::<String>);
    let mut extra: Vec<String> = Vec::new();
    let mut i = 1;
    while let Some(arg) = args.get(i) {
        let text = arg.text.as_str();
        if text == "--" {
            i += 1;
            break;
        }
        if let Some(long) = text.strip_prefix("--") {
            let (name, value) = long.split_once('=').unwrap_or((long, ""));
            match name {
                "user" => user = value.to_owned(),
                "group" => group = Some(value.to_owned()),
                "preserve-env" => extra.push(format!("preserve-env={value}")),
                "set-home" => extra.push("set-home".to_owned()),
                "chdir" => extra.push(format!("chdir={}", quote(value))),
                "non-interactive" | "stdin" | "background" | "reset-timestamp"
                | "preserve-groups" | "askpass" => {}
                "login" | "shell" => return Err(format!("sudo --{name} runs a shell")),
                _ => return Err(format!("sudo --{name} is not analysed")),
            }
            i += 1;
            continue;
        }
        if !text.starts_with('-') || text.len() < 2 {
            break;
        }
        let flags: Vec<char> = text[1..].chars().collect();
        let mut took_next = false;
        for (at, flag) in flags.iter().enumerate() {
            match flag {
                'n' | 'S' | 'k' | 'b' | 'P' | 'A' => {}
                'E' => extra.push("preserve-env".to_owned()),
                'H' => extra.push("set-home".to_owned()),
                'u' | 'g' | 'D' | 'p' | 'C' | 'h' | 'r' | 't' | 'T' | 'U' => {
                    let rest: String = flags[at + 1..].iter().collect();
                    let value = if rest.is_empty() {
                        took_next = true;
                        args.get(i + 1)
                            .map(|arg| arg.text.clone())
                            .unwrap_or_default()
                    } else {
                        rest
                    };
                    match flag {
                        'u' => user = value,
                        'g' => group = Some(value),
                        'D' => extra.push(format!("chdir={}", quote(&value))),
                        'r' | 't' | 'h' | 'U' => extra.push(format!("-{flag}={}", quote(&value))),
                        _ => {}
                    }
                    break;
                }
                'i' | 's' => return Err(format!("sudo -{flag} runs a shell")),
                // These run no command (edit, list, validate, ...).
                'e' | 'l' | 'v' | 'K' | 'V' => return Ok(Step::Plain),
                other => return Err(format!("sudo -{other} is not analysed")),
            }
        }
        i += if took_next { 2 } else { 1 };
    }
    let mut token = format!("sudo user={}", quote(&user));
    if let Some(group) = group {
        let _ = write!(token, " group={}", quote(&group));
    }
    for item in extra {
        let _ = write!(token, " {item}");
    }
    context.push(token);
    // Assignments after the options go into the command's environment.
    while let Some((name, value)) = args.get(i).and_then(|arg| {
        arg.text
            .split_once('=')
            .filter(|(name, _)| {
                !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            })
            .map(|(name, value)| (name.to_owned(), value.to_owned()))
    }) {
        context.push(format!("{name}={}", quote(&value)));
        i += 1;
    }
    Ok(Step::Inner(i))
}

fn doas(args: &[Arg], context: &mut Vec<String>) -> Result<Step, String> {
    let mut user = "root".to_owned();
    let mut i = 1;
    while let Some(arg) = args.get(i) {
        let text = arg.text.as_str();
        if text == "--" {
            i += 1;
            break;
        }
        if let Some((value, width)) = valued(args, i, "-u", "") {
            user = value;
            i += width;
        } else if text == "-n" {
            i += 1;
        } else if text == "-s" {
            return Err("doas -s runs a shell".to_owned());
        } else if text == "-C" || text == "-L" {
            return Ok(Step::Plain);
        } else if text.starts_with('-') && text.len() > 1 {
            return Err(format!("doas {text} is not analysed"));
        } else {
            break;
        }
    }
    context.push(format!("doas user={}", quote(&user)));
    Ok(Step::Inner(i))
}

fn xargs(args: &[Arg], context: &mut Vec<String>) -> Result<Step, String> {
    const VALUED: &[(&str, &str)] = &[
        ("-a", "--arg-file"),
        ("-d", "--delimiter"),
        ("-E", "--eof"),
        ("-I", "--replace"),
        ("-L", "--max-lines"),
        ("-n", "--max-args"),
        ("-P", "--max-procs"),
        ("-s", "--max-chars"),
    ];
    let mut options: Vec<String> = Vec::new();
    let mut i = 1;
    'options: while let Some(arg) = args.get(i) {
        let text = arg.text.as_str();
        if text == "--" {
            i += 1;
            break;
        }
        for (short, long) in VALUED {
            if let Some((value, width)) = valued(args, i, short, long) {
                options.push(format!("{short} {}", quote(&value)));
                i += width;
                continue 'options;
            }
        }
        match text {
            "-0" | "--null" | "-r" | "--no-run-if-empty" | "-t" | "--verbose" | "-x" | "--exit"
            | "-p" | "--interactive" | "-o" | "--open-tty" => {
                options.push(text.to_owned());
                i += 1;
            }
            option if option.starts_with('-') && option.len() > 1 => {
                return Err(format!("xargs {option} is not analysed"));
            }
            _ => break,
        }
    }
    // The arguments come from stdin: part of what this command is.
    let mut token = "xargs".to_owned();
    for option in options {
        let _ = write!(token, " {option}");
    }
    context.push(token);
    if i >= args.len() {
        // xargs with no command runs echo.
        return Ok(Step::Replace(vec![Arg::literal("echo")]));
    }
    Ok(Step::Inner(i))
}

#[cfg(test)]
mod tests;
