//! What each command does once its arguments are parsed; each returns the
//! command's exit status.

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, ExitCode};

use intercept::apps::{har, stubs};
use intercept::config::Config;
use intercept::serve::{tls, trust};
use intercept::supervision::Mode;

use super::environment::{environment, fail, trust, validate};
use super::settings::Settings;
use super::{program, supervise, verify};

/// `intercept check`: validates and prints the route table.
pub fn check(settings: &Settings) -> ExitCode {
    match validate(settings, None) {
        Ok((_, config)) => {
            print_table(&config);
            ExitCode::SUCCESS
        }
        Err(code) => code,
    }
}

/// `intercept env`: the variables as `KEY=VALUE` lines. Routes that keep
/// state (`stubs:`, `har:`) get a run directory of their own, which every
/// process these lines configure shares (inside a run: that run's).
pub fn env(settings: &Settings) -> ExitCode {
    let run_dir = match intercept::run::dir() {
        Some(dir) => Some(dir),
        None => match validate(settings, None) {
            Ok((_, config)) if keeps_state(&config) => match supervise::RunDir::make() {
                // Left for the processes these lines configure, which may
                // start long after this command ended.
                Ok(run) => Some(std::mem::ManuallyDrop::new(run).dir.clone()),
                Err(e) => return fail(&format!("cannot make a directory for the run's state: {e}")),
            },
            Ok(_) => None,
            Err(code) => return code,
        },
    };
    let found = environment(settings, run_dir.as_deref()).map(|(mut vars, _)| {
        if let Some(dir) = &run_dir {
            vars.retain(|(k, _)| k != intercept::run::DIR_KEY);
            vars.push((intercept::run::DIR_KEY.to_string(), dir.to_string_lossy().into_owned()));
        }
        vars
    });
    match found {
        Ok(vars) => {
            for (key, value) in &vars {
                if value.contains('\n') {
                    return fail(&format!("{key} holds a line break and cannot be printed as KEY=VALUE"));
                }
            }
            for (key, value) in vars {
                println!("{key}={value}");
            }
            ExitCode::SUCCESS
        }
        Err(code) => code,
    }
}

/// `intercept ca`: where the CA, the bundle and the truststore are.
pub fn ca(settings: &Settings) -> ExitCode {
    match validate(settings, None).and_then(|(_, config)| trust(&config).map(|bundle| (bundle, config.ca_dir()))) {
        Ok((bundle, dir)) => {
            println!("ca:         {}", dir.join(tls::CA_FILE).display());
            println!("key:        {}", dir.join(tls::CA_KEY_FILE).display());
            println!("bundle:     {}", bundle.display());
            println!("truststore: {}", trust::truststore_of(&bundle).display());
            println!("variables:  {} (the bundle)", trust::TRUST_VARIABLES.join(" "));
            println!("served for: {} (the bundle), Java's cacerts (the truststore)", trust::SYSTEM_BUNDLES.join(" "));
            ExitCode::SUCCESS
        }
        Err(code) => code,
    }
}

/// `intercept verify`: 0, or 1 with the report, or 2.
pub fn verify(journal: &Path, expect: &[String], no_unmatched: bool, unused_stubs: Option<&Path>) -> ExitCode {
    let expects = match expect.iter().map(|e| verify::Expect::parse(e)).collect::<Result<Vec<_>, _>>() {
        Ok(e) => e,
        Err(e) => return fail(&e),
    };
    match verify::verify(journal, &expects, no_unmatched, unused_stubs) {
        Ok(report) if report.is_empty() => ExitCode::SUCCESS,
        Ok(report) => {
            print!("{report}");
            ExitCode::from(1)
        }
        Err(e) => fail(&e),
    }
}

/// Whether a route's app keeps state for the run (`stubs:`, `har:`).
fn keeps_state(config: &Config) -> bool {
    config.routes.iter().any(|r| matches!(r.app, intercept::apps::AppSpec::Stubs(_) | intercept::apps::AppSpec::Har(_)))
}

/// `intercept reset`: every shared value of the run back to its start.
pub fn reset(run_dir: Option<std::path::PathBuf>) -> ExitCode {
    let Some(dir) = run_dir.or_else(intercept::run::dir) else {
        return fail(&format!(
            "no run to reset: run this inside `intercept run`, or name the run with --run-dir or {}",
            intercept::run::DIR_KEY
        ));
    };
    match intercept::run::reset_all(&dir) {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => fail(&format!("cannot reset the run in {}: {e}", dir.display())),
    }
}

/// `intercept har2stubs`.
pub fn har2stubs(har: &Path, dir: &Path) -> ExitCode {
    match write_stubs(har, dir) {
        Ok(n) => {
            println!("wrote {n} mappings to {}", dir.join("mappings").display());
            ExitCode::SUCCESS
        }
        Err(e) => fail(&e),
    }
}

/// `intercept run`: the program's exit status.
pub fn run(settings: &Settings, command: &[OsString]) -> ExitCode {
    // The run's directory first: checking a HAR file keeps its index
    // there for every process of the run.
    let run = supervise::RunDir::make();
    let (vars, config) = match environment(settings, run.as_ref().ok().map(|r| r.dir.as_path())) {
        Ok(done) => done,
        Err(code) => return code,
    };
    // With state to share, a run is kept (and its directory removed at
    // its end) even where nothing is supervised.
    if config.supervise != Mode::Never || keeps_state(&config) {
        return supervise::run(command, vars, &config, run);
    }
    drop(run);
    if let Some(path) = program::find(&command[0])
        && let Some(why) = program::bypass_reason(&path)
    {
        let mut line = String::new();
        let _ = intercept::program::write_warning(&mut line, &path.display(), why);
        eprint!("{line}");
    }
    let err = Command::new(&command[0]).args(&command[1..]).envs(vars).exec();
    program::cannot_run(&command[0], &err)
}

/// Writes one WireMock mapping per entry of `har` into `dir/mappings`, then
/// loads them as a stubs route would.
fn write_stubs(har: &Path, dir: &Path) -> Result<usize, String> {
    let entries = har::file::read(har)?;
    let mappings = dir.join("mappings");
    if std::fs::read_dir(&mappings).is_ok_and(|mut d| d.next().is_some()) {
        return Err(format!("{} is not empty: choose a new directory", mappings.display()));
    }
    std::fs::create_dir_all(&mappings).map_err(|e| format!("cannot make {}: {e}", mappings.display()))?;
    std::fs::create_dir_all(dir.join("__files")).map_err(|e| format!("cannot make {}/__files: {e}", dir.display()))?;
    let docs = har::replay::mappings(&entries);
    for (i, (doc, entry)) in docs.iter().zip(&entries).enumerate() {
        let slug: String = entry.path.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' }).collect();
        let slug = slug.trim_matches('-');
        let name = format!("{:04}-{}-{}.json", i + 1, entry.method.to_ascii_lowercase(), &slug[..slug.len().min(60)]);
        let text = serde_json::to_string_pretty(doc).map_err(|e| e.to_string())? + "\n";
        std::fs::write(mappings.join(&name), text).map_err(|e| format!("cannot write {name}: {e}"))?;
    }
    stubs::validate(dir)
}

/// The route table `intercept check` prints.
fn print_table(config: &Config) {
    match &config.env_file {
        Some(f) => println!("env file:    {}", f.display()),
        None => println!("env file:    (none)"),
    }
    println!("passthrough: {}", config.passthrough.as_str());
    if let Some(j) = &config.journal {
        println!("journal:     {}", j.display());
    }
    if config.routes.is_empty() {
        println!("routes:      (none)");
        return;
    }
    println!("routes:");
    let width = config.routes.iter().map(|r| r.url.to_string().len()).max().unwrap_or(0);
    for r in &config.routes {
        println!("  {:width$}  -> {}    # {} ({})", r.url.to_string(), r.app, r.name, r.origin);
    }
}
