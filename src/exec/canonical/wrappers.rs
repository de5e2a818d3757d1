//! One simple command's wrappers, unwrapped to the command they start:
//! those that only change how it starts disappear, those that change who
//! runs it or with what are kept as its context, unknown options make it
//! opaque.

use std::fmt::Write as _;

use super::script::parse_script;
use super::{Arg, DEPTH_MAX, DYNAMIC, SHELLS, SYSTEM_DIRS, SimpleCommand, WRAPPERS, quote};

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
pub(super) fn unwrap(
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
