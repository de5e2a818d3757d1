use proptest::prelude::*;

use super::*;

const CWD: &str = "/work/agent";

/// Each simple command as `describe` writes it, or `Err(reason)`.
fn described(command: &str) -> Result<Vec<String>, String> {
    match parse(command) {
        Canonical::Commands(commands) => Ok(commands.iter().map(SimpleCommand::describe).collect()),
        Canonical::Opaque { reason } => Err(reason),
    }
}

fn hash_of(command: &str) -> Option<String> {
    parse(command).hash(CWD)
}

/// A grant exists for `ls -la`. Every attempt must come out as either an
/// opaque command (never matches a grant) or a canonical list whose hash
/// differs from the grant's, and the table says which, with the commands
/// the parser found, so a parser that stopped unwrapping (and merely
/// happened to hash differently) fails here too.
#[test]
fn wrappers_and_chains_never_ride_on_a_grant_for_another_command() {
    let attempts: &[(&str, &[&str])] = &[
        ("env ls -la; rm -rf /", &["ls -la", "rm -rf /"]),
        ("env rm -rf /", &["rm -rf /"]),
        ("env -i X=1 rm -rf /", &["[env -i] [X=1] rm -rf /"]),
        ("env -u HOME rm x", &["[env -u HOME] rm x"]),
        ("env -S 'rm -rf /'", &["rm -rf /"]),
        ("/usr/bin/env rm -rf /", &["rm -rf /"]),
        ("sh -c 'ls -la; rm -rf /'", &["ls -la", "rm -rf /"]),
        ("bash -c \"ls -la && rm -rf /\"", &["ls -la", "rm -rf /"]),
        ("bash -lc 'ls -la'", &["[bash login] ls -la"]),
        ("zsh -ec 'rm -rf /'", &["rm -rf /"]),
        ("dash -c 'rm x'", &["rm x"]),
        ("/bin/sh -c 'rm x'", &["rm x"]),
        ("busybox sh -c 'rm x'", &["rm x"]),
        ("time nice -n 5 rm -rf /", &["rm -rf /"]),
        ("nohup rm -rf /", &["rm -rf /"]),
        ("timeout 5 rm -rf /", &["rm -rf /"]),
        ("stdbuf -oL rm -rf /", &["rm -rf /"]),
        ("command rm -rf /", &["rm -rf /"]),
        ("exec rm -rf /", &["rm -rf /"]),
        ("sudo -u root rm -rf /", &["[sudo user=root] rm -rf /"]),
        ("sudo ls -la", &["[sudo user=root] ls -la"]),
        ("doas ls -la", &["[doas user=root] ls -la"]),
        ("ls -la && rm -rf /", &["ls -la", "rm -rf /"]),
        ("ls -la || rm -rf /", &["ls -la", "rm -rf /"]),
        ("ls -la | sh", &["ls -la", "sh"]),
        ("ls -la & rm -rf /", &["ls -la", "rm -rf /"]),
        ("ls -la\nrm -rf /", &["ls -la", "rm -rf /"]),
        ("ls -la;rm -rf /", &["ls -la", "rm -rf /"]),
        ("(rm -rf /)", &["rm -rf /"]),
        ("{ rm -rf /; }", &["rm -rf /"]),
        ("(ls -la) && { rm x; }", &["ls -la", "rm x"]),
        ("xargs rm", &["[xargs] rm"]),
        ("echo / | xargs -0 rm -rf", &["echo /", "[xargs -0] rm -rf"]),
        ("X=1 ls -la", &["[X=1] ls -la"]),
        (
            "LD_PRELOAD=/tmp/x.so ls -la",
            &["[LD_PRELOAD=/tmp/x.so] ls -la"],
        ),
        ("PATH=/tmp; ls -la", &["[PATH=/tmp]", "ls -la"]),
        ("ls -la > /etc/passwd", &["ls -la >/etc/passwd"]),
        ("/bin/ls -la", &["/bin/ls -la"]),
        ("./ls -la", &["./ls -la"]),
        ("'l's -la x", &["ls -la x"]),
        ("l\\s -la x", &["ls -la x"]),
        ("ls '-la'x", &["ls -lax"]),
        ("ls -la '*'", &["ls -la '*'"]),
        ("ls -la *", &["ls -la *"]),
        ("ls -la # && rm -rf /\nrm x", &["ls -la", "rm x"]),
        ("ls -la \\\n; rm x", &["ls -la", "rm x"]),
        ("cd / && ls -la", &["cd /", "ls -la"]),
        ("env env env rm x", &["rm x"]),
        ("sh -c \"sh -c 'rm x'\"", &["rm x"]),
        ("command -v rm", &["command -v rm"]),
        ("exec -c rm x", &["[env -i] rm x"]),
        ("[ -f x ] && rm x", &["'[' -f x ']'", "rm x"]),
        ("find . -exec rm {} +", &["find . -exec rm '{}' +"]),
        ("rm {a,b}", &["rm {a,b}"]),
        ("ls -la\r", &["ls '-la\r'"]),
        ("echo \"cost: $\"", &["echo 'cost: $'"]),
    ];
    let opaque: &[&str] = &[
        "$(rm -rf /)",
        "ls -la $(rm -rf /)",
        "ls -la `rm -rf /`",
        "ls -la \"`rm`\"",
        "ls -la \"$(rm)\"",
        "ls -la <(rm x)",
        "eval 'rm -rf /'",
        "eval ls -la",
        "source ./evil.sh",
        ". ./evil.sh",
        "$CMD -la",
        "ls -la $HOME",
        "ls -la ${X}",
        "\"$X\"",
        "* -la",
        "ls -la <<EOF\nrm\nEOF",
        "cat <<< 'rm'",
        "ls -la 'unbalanced",
        "ls -la \"unbalanced",
        "$'\\x72m' -rf /",
        "alias ls='rm -rf /'; ls -la",
        "f() { rm -rf /; }; f",
        "if true; then rm -rf /; fi",
        "for x in a; do rm $x; done",
        "while true; do rm x; done",
        "(ls -la",
        "ls -la)",
        "{ ls -la",
        "~/bin/ls -la",
        "ls ~",
        "ls -la > ~x",
        "./env rm -rf /",
        "/tmp/sh -c 'rm x'",
        "sudo -i rm x",
        "sudo -s",
        "env --frobnicate rm",
        "bash --rcfile x -c 'ls'",
        "time -o out rm x",
        "{ ls -la; } > out",
        "((x = 1))",
        "&& rm x",
        "builtin rm x",
    ];
    let grant = hash_of("ls -la").expect("ls -la is canonical");
    for (attempt, expected) in attempts {
        let found = described(attempt).unwrap_or_else(|reason| {
            panic!("{attempt:?} was opaque ({reason}), expected {expected:?}")
        });
        assert_eq!(found, *expected, "{attempt:?}");
        assert_ne!(hash_of(attempt), Some(grant.clone()), "{attempt:?}");
    }
    for attempt in opaque {
        assert!(
            matches!(parse(attempt), Canonical::Opaque { .. }),
            "{attempt:?} should be opaque, got {:?}",
            described(attempt)
        );
        assert_eq!(hash_of(attempt), None);
    }
    assert!(attempts.len() + opaque.len() >= 30);
}

/// Spellings the shell runs identically share the grant's hash.
#[test]
fn the_same_command_spelled_differently_hashes_alike() {
    let grant = hash_of("ls -la").expect("canonical");
    for same in [
        "ls -la",
        "  ls   -la  ",
        "'ls' \"-la\"",
        "l\\s -l'a'",
        "env ls -la",
        "/usr/bin/env ls -la",
        "env -- ls -la",
        "sh -c 'ls -la'",
        "bash -c \"ls -la\"",
        "/bin/sh -c 'ls -la'",
        "time ls -la",
        "nice -n 5 ls -la",
        "nohup ls -la",
        "timeout 10 ls -la",
        "command ls -la",
        "exec ls -la",
        "(ls -la)",
        "{ ls -la; }",
        "ls -la # a comment",
        "ls -la;",
    ] {
        assert_eq!(hash_of(same), Some(grant.clone()), "{same:?}");
    }
    // The argv form, from `commandArgv`.
    let argv =
        |words: &[&str]| from_argv(&words.iter().map(|w| (*w).to_owned()).collect::<Vec<_>>());
    assert_eq!(argv(&["ls", "-la"]).hash(CWD), Some(grant.clone()));
    assert_eq!(argv(&["env", "ls", "-la"]).hash(CWD), Some(grant.clone()));
    assert_eq!(argv(&["sh", "-c", "ls -la"]).hash(CWD), Some(grant.clone()));
    assert_ne!(argv(&["ls -la"]).hash(CWD), Some(grant.clone()));
    assert_ne!(
        argv(&["sh", "-c", "ls -la; rm x"]).hash(CWD),
        Some(grant.clone())
    );
    // A pattern is not the literal text it is spelled with.
    assert_ne!(hash_of("rm *"), hash_of("rm '*'"));
    assert_ne!(hash_of("rm {a,b}"), hash_of("rm '{a,b}'"));
    assert_eq!(hash_of("rm *"), hash_of("rm *"));
    // Bound to the working directory too.
    assert_ne!(parse("ls -la").hash("/elsewhere"), Some(grant));
}

#[test]
fn sudo_forms_that_run_as_the_same_user_agree_and_others_do_not() {
    assert_eq!(hash_of("sudo rm x"), hash_of("sudo -u root rm x"));
    assert_eq!(hash_of("sudo rm x"), hash_of("sudo -n -- rm x"));
    assert_ne!(hash_of("sudo rm x"), hash_of("sudo -u alice rm x"));
    assert_ne!(hash_of("sudo rm x"), hash_of("sudo -E rm x"));
    assert_ne!(hash_of("sudo rm x"), hash_of("doas rm x"));
    assert_eq!(
        described("sudo -u alice -g staff X=1 rm x"),
        Ok(vec!["[sudo user=alice group=staff] [X=1] rm x".to_owned()])
    );
}

#[test]
fn opaque_commands_say_why() {
    let reason = |command: &str| match parse(command) {
        Canonical::Opaque { reason } => reason,
        other => panic!("{command:?} is not opaque: {other:?}"),
    };
    assert_eq!(reason("ls $(rm x)"), "it uses command substitution $(...)");
    assert_eq!(
        reason("rm $X"),
        "it uses a variable ($...), whose value is known only when it runs"
    );
    assert_eq!(
        reason("./env rm"),
        "./env is named like the wrapper env but is not the one in the system directories"
    );
    assert_eq!(reason(""), "there is no command to run");
    assert_eq!(
        parse("eval x").describe(),
        "cannot be analysed: it uses eval, whose effect depends on code not in the command"
    );
}

#[test]
fn describe_quotes_what_needs_quoting() {
    assert_eq!(
        parse("echo 'a b' \"it's\" > 'my file'").describe(),
        "echo 'a b' 'it'\\''s' >'my file'"
    );
    assert_eq!(parse("ls 2>&1 | wc -l").describe(), "ls 2>&1\nwc -l");
}

#[test]
fn bounds_hold() {
    let long = "x".repeat(COMMAND_BYTES_MAX + 1);
    assert!(matches!(parse(&long), Canonical::Opaque { .. }));
    let many = "ls;".repeat(COMMANDS_MAX + 1);
    assert!(matches!(parse(&many), Canonical::Opaque { .. }));
    let mut nested = "ls".to_owned();
    for _ in 0..12 {
        nested = format!("sh -c {}", quote(&nested));
    }
    assert!(matches!(parse(&nested), Canonical::Opaque { .. }));
}

proptest! {
    /// Any text folds to commands or to a reason, never to a panic.
    #[test]
    fn parse_is_total(text in "[a-z $'\"\\\\;&|(){}<>*\\n#=~`-]{0,40}") {
        let _ = parse(&text).describe();
    }

    /// An argv quoted for the shell parses back to exactly that argv.
    #[test]
    fn quoted_argv_round_trips(
        program in "[a-z][a-z0-9]{0,6}",
        args in proptest::collection::vec("[^\\x00]{0,12}", 0..5),
    ) {
        prop_assume!(!WRAPPERS.contains(&program.as_str())
            && !SHELLS.contains(&program.as_str())
            && !DYNAMIC.contains(&program.as_str())
            && !RESERVED.contains(&program.as_str()));
        let mut argv = vec![program];
        argv.extend(args);
        let text: Vec<String> = argv.iter().map(|word| quote(word)).collect();
        let parsed = parse(&text.join(" "));
        prop_assert_eq!(
            parsed,
            Canonical::Commands(vec![SimpleCommand {
                context: vec![],
                argv: argv.clone(),
                redirects: vec![],
            }])
        );
    }

    /// Different lists never share a hash (the encoding is length-prefixed).
    #[test]
    fn different_lists_hash_differently(
        a in proptest::collection::vec("[a-c ]{0,3}", 1..4),
        b in proptest::collection::vec("[a-c ]{0,3}", 1..4),
    ) {
        let command = |argv: &Vec<String>| vec![SimpleCommand {
            context: vec![], argv: argv.clone(), redirects: vec![] }];
        prop_assert_eq!(a == b, hash(&command(&a), CWD) == hash(&command(&b), CWD));
    }
}
