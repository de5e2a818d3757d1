//! Tokens to simple commands: chains, pipelines, subshells and brace
//! groups flattened in order, leading assignments and redirections taken
//! apart, each command then unwrapped (`wrappers`).

use super::lex::{Token, Word, lex};
use super::wrappers::unwrap;
use super::{Arg, COMMANDS_MAX, DEPTH_MAX, RESERVED, SimpleCommand, quote};

#[derive(Default)]
struct Raw {
    words: Vec<Word>,
    redirects: Vec<String>,
}

/// Splits `script` into simple commands (chains, pipelines, groups
/// flattened) and unwraps each, appending to `out` with `context` and
/// `redirects` (those of an enclosing `sh -c`) in front.
pub(super) fn parse_script(
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
