//! Shell text to tokens: words (each character with whether it was quoted)
//! and operators, with quotes and escapes resolved as `sh` would. Anything
//! whose value only exists at run time (`$...`, backticks, `~`, here-docs,
//! process substitution, `$'..'`) is an error here: the reason the command
//! is opaque.

use super::{Arg, PATTERN_MARK};

/// One word as the lexer saw it: each character with whether it was
/// quoted (or escaped).
#[derive(Clone, Debug, Default)]
pub(super) struct Word {
    pub(super) chars: Vec<(char, bool)>,
}

impl Word {
    pub(super) fn text(&self) -> String {
        self.chars.iter().map(|(c, _)| *c).collect()
    }

    pub(super) fn is_bare(&self, text: &str) -> bool {
        self.chars.iter().all(|(_, quoted)| !quoted) && self.text() == text
    }

    /// Whether the shell would expand it: an unquoted `*` or `?`, a `[`
    /// with a later `]`, or a `{` with a later `}` and a `,` or `..`
    /// between (bash's brace expansion). A lone `[` (the test command) or
    /// `{}` (find's placeholder) stays literal, as in the shell.
    pub(super) fn has_pattern(&self) -> bool {
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
    pub(super) fn assignment(&self) -> Option<(String, String)> {
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

    pub(super) fn arg(&self) -> Arg {
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
pub(super) enum Token {
    Word(Word),
    /// `;`, `&`, `&&`, `||`, `|`, `|&`, `(`, `)`, or a newline (`\n`).
    Op(&'static str),
    Redirect {
        fd: String,
        op: &'static str,
    },
}

pub(super) fn lex(script: &str) -> Result<Vec<Token>, String> {
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
