//! What the command line says about itself, generated from the clap definitions in `cli.rs` so that it cannot
//! drift from them: shell completions (`rostersync completions SHELL`) and the man page (`rostersync man`, roff on
//! stdout; the Docker image ships it as /usr/share/man/man1/rostersync.1 and the systemd unit names it).

use std::io::Write;

use clap::CommandFactory;
use clap_complete::Shell;
use clap_mangen::Man;
use clap_mangen::roff::{Roff, bold, italic, roman};

use crate::cli::Cli;

/// The binary's name as completions and the man page spell it (not `argv[0]`, which may be a path).
const BIN: &str = "rostersync";

/// Writes the completion script for `shell`.
pub fn write_completions(shell: Shell, out: &mut dyn Write) {
    clap_complete::generate(shell, &mut Cli::command(), BIN, out);
}

/// Writes the man page: clap_mangen's title, NAME, SYNOPSIS, DESCRIPTION and OPTIONS, then every command with its
/// own arguments on this one page (clap_mangen's SUBCOMMANDS section would point at `rostersync-run(1)` and the
/// like, pages nobody installs), then what an operator looks up in a man page and `--help` does not say.
pub fn write_man_page(out: &mut dyn Write) -> std::io::Result<()> {
    let mut cmd = Cli::command();
    cmd.build();
    let man = Man::new(cmd.clone())
        .title("ROSTERSYNC")
        .manual("rostersync manual");
    let mut body = Vec::new();
    man.render_name_section(&mut body)?;
    man.render_synopsis_section(&mut body)?;
    man.render_description_section(&mut body)?;
    man.render_options_section(&mut body)?;
    let mut roff = Roff::default();
    roff.control("SH", ["COMMANDS"]);
    for sub in visible_subcommands(&cmd) {
        render_command(&mut roff, BIN, sub);
    }
    render_reference(&mut roff);
    roff.to_writer(&mut body)?;
    man.render_version_section(&mut body)?;
    let mut title = Vec::new();
    man.render_title(&mut title)?;
    // Each render call starts with roff's apostrophe preamble (it defines `\*(Aq`): keep one, after `.TH`, so
    // that the page opens with its title line as man(7) expects.
    let (title, body) = (
        String::from_utf8_lossy(&title),
        String::from_utf8_lossy(&body),
    );
    let preamble = apostrophe_preamble();
    out.write_all(title.replace(&preamble, "").as_bytes())?;
    out.write_all(preamble.as_bytes())?;
    out.write_all(ascii_only(&body.replace(&preamble, "")).as_bytes())
}

/// roff input is ASCII: a character outside it (the `…` in `audit --format`'s help) becomes groff's `\[uXXXX]`
/// escape, which man-db and mandoc both read, instead of an "invalid input character" warning and a blank.
fn ascii_only(roff: &str) -> String {
    let mut out = String::with_capacity(roff.len());
    for c in roff.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            out.push_str(&format!("\\[u{:04X}]", u32::from(c)));
        }
    }
    out
}

/// What `Roff::to_writer` writes before any line.
fn apostrophe_preamble() -> String {
    Roff::default().render()
}

fn visible_subcommands(cmd: &clap::Command) -> impl Iterator<Item = &clap::Command> {
    cmd.get_subcommands()
        .filter(|s| !s.is_hide_set() && s.get_name() != "help")
}

/// One command: its synopsis in bold, its help, its arguments; nested commands (`except add`) follow it.
fn render_command(roff: &mut Roff, parent: &str, cmd: &clap::Command) {
    let path = format!("{parent} {}", cmd.get_name());
    let mut synopsis = vec![bold(path.clone())];
    for arg in own_args(cmd) {
        synopsis.push(roman(" "));
        let usage = arg_usage(arg);
        synopsis.push(roman(if arg.is_required_set() {
            usage
        } else {
            format!("[{usage}]")
        }));
    }
    if cmd.has_subcommands() {
        synopsis.push(roman(" "));
        synopsis.push(italic("COMMAND"));
    }
    roff.control("SS", [path.as_str()]);
    // The heading is the bare command; the synopsis line adds what it takes, when it takes anything.
    if synopsis.len() > 1 {
        roff.text(synopsis);
    }
    let about = cmd.get_long_about().or(cmd.get_about());
    if let Some(about) = about {
        roff.control("PP", [] as [&str; 0]);
        roff.text([roman(about.to_string())]);
    }
    for arg in own_args(cmd) {
        roff.control("TP", [] as [&str; 0]);
        roff.text([bold(arg_usage(arg))]);
        let help = arg.get_long_help().or(arg.get_help());
        roff.text([roman(help.map(|h| h.to_string()).unwrap_or_default())]);
    }
    for sub in visible_subcommands(cmd) {
        render_command(roff, &path, sub);
    }
}

/// The arguments a command declares itself: not `--help`, and not the global `--config` (in OPTIONS above).
fn own_args(cmd: &clap::Command) -> impl Iterator<Item = &clap::Arg> {
    cmd.get_arguments().filter(|a| {
        !a.is_hide_set()
            && !a.is_global_set()
            && !matches!(a.get_id().as_str(), "help" | "version" | "config")
    })
}

fn arg_usage(arg: &clap::Arg) -> String {
    let value = arg
        .get_value_names()
        .and_then(|names| names.first())
        .map(|n| n.to_string())
        .unwrap_or_else(|| arg.get_id().as_str().to_uppercase());
    match arg.get_long() {
        Some(long) if arg.get_action().takes_values() => format!("--{long} {value}"),
        Some(long) => format!("--{long}"),
        None => value,
    }
}

/// EXIT STATUS, ENVIRONMENT, FILES and SEE ALSO: the contract an operator's scripts rely on (README "Commands and
/// exit codes", "Configuration").
fn render_reference(roff: &mut Roff) {
    let none: [&str; 0] = [];
    roff.control("SH", ["EXIT STATUS"]);
    for (code, meaning) in [
        (
            "0",
            "Done: every change applied, or nothing to do; `run` on SIGTERM/SIGINT.",
        ),
        (
            "1",
            "Fatal: configuration, database, Canvas authentication, an unknown run id.",
        ),
        (
            "2",
            "`reconcile`, `apply`, `undo`: some changes failed (the rest were applied).",
        ),
        (
            "3",
            "`reconcile`: the safety brake tripped; nothing that takes access away was made.",
        ),
        ("64", "The command line could not be parsed (EX_USAGE)."),
    ] {
        roff.control("TP", none);
        roff.text([bold(code)]);
        roff.text([roman(meaning)]);
    }
    roff.control("SH", ["ENVIRONMENT"]);
    for (name, meaning) in [
        ("ROSTERSYNC_CONFIG", "The configuration file, as --config."),
        (
            "ROSTERSYNC__SECTION__KEY",
            "Sets or overrides one configuration key, e.g. ROSTERSYNC__CANVAS__TOKEN_FILE, \
             ROSTERSYNC__DATABASE__URL (two underscores on each side of the section).",
        ),
        (
            "RUST_LOG",
            "Log filter, e.g. rostersync=debug: retries and skipped SIS rows are logged at debug with the run id.",
        ),
    ] {
        roff.control("TP", none);
        roff.text([bold(name)]);
        roff.text([roman(meaning)]);
    }
    roff.control("SH", ["FILES"]);
    roff.control("TP", none);
    roff.text([italic(crate::cli::DEFAULT_CONFIG)]);
    roff.text([roman(
        "Read when neither --config nor ROSTERSYNC_CONFIG names a configuration file and it exists.",
    )]);
    roff.control("SH", ["SEE ALSO"]);
    roff.text([roman(
        "The README (configuration keys, metrics, alerts and their runbooks), systemd.exec(5), \
         rostersync completions bash|zsh|fish.",
    )]);
}
