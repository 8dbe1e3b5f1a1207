//! The `intercept` command: validates a configuration, then starts a
//! program with `libintercept.so` preloaded (`run`), prints the route table
//! (`check`) or the variables that do the same in a CI step (`env`).

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use clap::{Args, Parser, Subcommand};
use intercept::apps::{AppSpec, har, stubs};
use intercept::config::{self, Config, ENV_FILE, ROUTE_PREFIX};
use intercept::serve::{tls, trust};
use intercept::supervision::Mode;

mod cli;
use cli::{program, supervise, verify};

const SHIM: &str = "libintercept.so";
const DEFAULT_ENV_FILE: &str = "intercept.env";

#[derive(Parser)]
#[command(
    name = "intercept",
    version,
    about = "Run a program with its HTTP connections to chosen hosts answered in-process",
    after_help = "Routes come from an env file (INTERCEPT_ROUTE_<NAME>=URL -> APP), from INTERCEPT_* variables, and from --route.\nWith no --env-file, $INTERCEPT_ENV_FILE or else ./intercept.env is used when present."
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Validate the configuration, then run CMD with the shim preloaded; the exit status is CMD's
    Run {
        #[command(flatten)]
        settings: Settings,
        /// The program to run and its arguments
        #[arg(required = true, last = true, value_name = "CMD")]
        command: Vec<OsString>,
    },
    /// Validate the configuration and print the route table (exit 0, or 2 with FILE:LINE: why)
    Check {
        #[command(flatten)]
        settings: Settings,
    },
    /// Print KEY=VALUE lines (LD_PRELOAD, INTERCEPT_ENV_FILE, ...) for `>> "$GITHUB_ENV"` or `export`
    Env {
        #[command(flatten)]
        settings: Settings,
    },
    /// Check a journal: expected requests made, none unmatched, every stub used (exit 0, or 1 with a report)
    Verify {
        /// The journal to read (INTERCEPT_JOURNAL, --journal of run)
        #[arg(long, value_name = "FILE")]
        journal: PathBuf,
        /// A request that must be in it: 'METHOD URL[ xCOUNT]' (URL exact or a pattern; METHOD may be ANY) (repeatable)
        #[arg(long = "expect", value_name = "'METHOD URL[ xN]'")]
        expect: Vec<String>,
        /// Fail on any request no route or no stub matched
        #[arg(long)]
        no_unmatched: bool,
        /// Fail on any stub of this stubs directory that no request used
        #[arg(long, value_name = "DIR")]
        unused_stubs: Option<PathBuf>,
    },
    /// Write a WireMock stubs directory (DIR/mappings) answering as the HAR file's entries do
    Har2stubs {
        /// The HAR file to read
        #[arg(value_name = "FILE.har")]
        har: PathBuf,
        /// The stubs directory to make (its mappings/ must not hold mappings yet)
        #[arg(value_name = "DIR")]
        dir: PathBuf,
    },
    /// Print where the local CA for https routes, the trust bundle and truststore are (made if missing), and what points at them
    Ca {
        #[command(flatten)]
        settings: Settings,
    },
}

#[derive(Args)]
struct Settings {
    /// The env file to read
    #[arg(long, value_name = "FILE")]
    env_file: Option<PathBuf>,
    /// Add a route, as in an env file: 'URL -> APP' (repeatable)
    #[arg(long = "route", value_name = "'URL -> APP'")]
    routes: Vec<String>,
    /// What unrouted connections get: allow, loopback or deny
    #[arg(long, value_name = "MODE")]
    passthrough: Option<String>,
    /// Append a JSON line per request to this file
    #[arg(long, value_name = "PATH")]
    journal: Option<PathBuf>,
    /// Log level: off, error, info or debug
    #[arg(long, value_name = "LEVEL")]
    log: Option<String>,
    /// har: routes' record mode: once, new_episodes, all or none
    #[arg(long, value_name = "MODE")]
    record: Option<String>,
    /// A secret header har: routes record as it is, not redacted (repeatable)
    #[arg(long = "keep-header", value_name = "NAME")]
    keep_headers: Vec<String>,
}

impl Settings {
    /// The `INTERCEPT_*` variables the program will see: the environment's,
    /// then the env file, then the flags.
    fn variables(&self) -> Result<Vec<(String, String)>, String> {
        let mut vars: Vec<(String, String)> = std::env::vars().filter(|(k, _)| k.starts_with("INTERCEPT_")).collect();
        let mut set = |key: &str, value: String| {
            vars.retain(|(k, _)| k != key);
            vars.push((key.to_string(), value));
        };
        let cwd = std::env::current_dir().map_err(|e| format!("cannot read the current directory: {e}"))?;
        let env_file = match &self.env_file {
            Some(file) => Some(file.clone()),
            None if std::env::var_os(ENV_FILE).is_some() => None,
            None => Some(PathBuf::from(DEFAULT_ENV_FILE)).filter(|p| p.is_file()),
        };
        if let Some(file) = env_file {
            set(ENV_FILE, path_text(&cwd.join(file))?);
        }
        for (i, route) in self.routes.iter().enumerate() {
            config::parse_route(route, &cwd).map_err(|e| format!("--route '{route}': {e}"))?;
            set(&format!("{ROUTE_PREFIX}CLI_{}", i + 1), route.clone());
        }
        if let Some(mode) = &self.passthrough {
            set("INTERCEPT_PASSTHROUGH", mode.clone());
        }
        if let Some(journal) = &self.journal {
            set("INTERCEPT_JOURNAL", path_text(&cwd.join(journal))?);
        }
        if let Some(level) = &self.log {
            set("INTERCEPT_LOG", level.clone());
        }
        if let Some(mode) = &self.record {
            set(har::RECORD_KEY, mode.clone());
        }
        if !self.keep_headers.is_empty() {
            set(har::KEEP_KEY, self.keep_headers.join(","));
        }
        Ok(vars)
    }
}

fn path_text(path: &Path) -> Result<String, String> {
    path.to_str().map(str::to_string).ok_or_else(|| format!("{} is not valid UTF-8", path.display()))
}

/// Validates; on error prints `FILE:LINE: message` and gives exit status 2.
fn validate(settings: &Settings, run_dir: Option<&Path>) -> Result<(Vec<(String, String)>, Config), ExitCode> {
    let vars = settings.variables().map_err(|e| fail(&e))?;
    let config = config::load(&vars).map_err(|e| {
        eprintln!("{e}");
        ExitCode::from(2)
    })?;
    // What the shim loads only on a route's first request is loaded here,
    // so a bad stub mapping stops the run before anything starts.
    for route in &config.routes {
        let checked = match &route.app {
            AppSpec::Stubs(dir) => stubs::validate(dir).map_err(|e| (e, "the stubs")),
            AppSpec::Har(spec) => har::validate(spec, run_dir).map_err(|e| (e, "the HAR file")),
            _ => Ok(0),
        };
        if let Err((e, what)) = checked {
            eprintln!("{e}");
            eprintln!("intercept: in {what} of {} ({})", route.name, route.origin);
            return Err(ExitCode::from(2));
        }
    }
    Ok((vars, config))
}

fn fail(message: &str) -> ExitCode {
    eprintln!("intercept: {message}");
    ExitCode::from(2)
}

/// `libintercept.so` beside this executable.
fn shim_path() -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this executable: {e}"))?;
    let exe = exe.canonicalize().unwrap_or(exe);
    let shim = exe.with_file_name(SHIM);
    if shim.is_file() { Ok(shim) } else { Err(format!("{} is missing: run `make build`", shim.display())) }
}

/// LD_PRELOAD with the shim first and the existing entries after it.
fn preload_value(shim: &Path) -> Result<String, String> {
    let shim = path_text(shim)?;
    let existing = std::env::var("LD_PRELOAD").unwrap_or_default();
    let rest: Vec<&str> = existing.split([':', ' ']).filter(|p| !p.is_empty() && *p != shim).collect();
    Ok(std::iter::once(shim.as_str()).chain(rest).collect::<Vec<_>>().join(":"))
}

fn main() -> ExitCode {
    let mut args = std::env::args_os();
    if args.nth(1).is_some_and(|a| a == supervise::launch::SUBCOMMAND) {
        return supervise::launch::launch(args.collect());
    }
    match Cli::parse().command {
        Cmd::Check { settings } => match validate(&settings, None) {
            Ok((_, config)) => {
                print_table(&config);
                ExitCode::SUCCESS
            }
            Err(code) => code,
        },
        Cmd::Env { settings } => match environment(&settings, None).map(|(vars, _)| vars) {
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
        },
        Cmd::Ca { settings } => match validate(&settings, None).and_then(|(_, config)| trust(&config)) {
            Ok(bundle) => {
                let dir = &validate(&settings, None).map(|(_, c)| c.ca_dir()).unwrap_or_default();
                println!("ca:         {}", dir.join(tls::CA_FILE).display());
                println!("key:        {}", dir.join(tls::CA_KEY_FILE).display());
                println!("bundle:     {}", bundle.display());
                println!("truststore: {}", trust::truststore_of(&bundle).display());
                println!("variables:  {} (the bundle)", trust::TRUST_VARIABLES.join(" "));
                println!("served for: {} (the bundle), Java's cacerts (the truststore)", trust::SYSTEM_BUNDLES.join(" "));
                ExitCode::SUCCESS
            }
            Err(code) => code,
        },
        Cmd::Verify { journal, expect, no_unmatched, unused_stubs } => {
            let expects = match expect.iter().map(|e| verify::Expect::parse(e)).collect::<Result<Vec<_>, _>>() {
                Ok(e) => e,
                Err(e) => return fail(&e),
            };
            match verify::verify(&journal, &expects, no_unmatched, unused_stubs.as_deref()) {
                Ok(report) if report.is_empty() => ExitCode::SUCCESS,
                Ok(report) => {
                    print!("{report}");
                    ExitCode::from(1)
                }
                Err(e) => fail(&e),
            }
        }
        Cmd::Har2stubs { har, dir } => match har2stubs(&har, &dir) {
            Ok(n) => {
                println!("wrote {n} mappings to {}", dir.join("mappings").display());
                ExitCode::SUCCESS
            }
            Err(e) => fail(&e),
        },
        Cmd::Run { settings, command } => {
            // The run's directory first: checking a HAR file keeps its
            // index there for every process of the run.
            let run = supervise::RunDir::make();
            let (vars, config) = match environment(&settings, run.as_ref().ok().map(|r| r.dir.as_path())) {
                Ok(done) => done,
                Err(code) => return code,
            };
            if config.supervise != Mode::Never {
                return supervise::run(&command, vars, &config, run);
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
    }
}

/// Everything a program under the shim needs: `LD_PRELOAD` first, then the
/// validated `INTERCEPT_*` variables.
/// With a run's directory, what validation works out once for the run is
/// kept there.
fn environment(settings: &Settings, run_dir: Option<&Path>) -> Result<(Vec<(String, String)>, Config), ExitCode> {
    let (mut vars, config) = validate(settings, run_dir)?;
    // Clients verify intercepted names against the bundle, and real hosts
    // against the system CAs in the same bundle. Set even with no https
    // route yet: the runtime API may add one. Only an https route makes a
    // CA that cannot be set up an error.
    match trust(&config) {
        Ok(bundle) => {
            let bundle = path_text(&bundle).map_err(|e| fail(&e))?;
            vars.retain(|(k, _)| k != "INTERCEPT_CA_DIR");
            vars.push(("INTERCEPT_CA_DIR".to_string(), path_text(&config.ca_dir()).map_err(|e| fail(&e))?));
            for key in trust::TRUST_VARIABLES {
                vars.push((key.to_string(), bundle.clone()));
            }
            vars.push((trust::BUNDLE_VARIABLE.to_string(), bundle));
        }
        Err(code) if config.has_https() => return Err(code),
        Err(_) => {}
    }
    // Routed hosts bypass any proxy the environment names.
    if !config.routes.is_empty() {
        let user: Vec<String> = ["NO_PROXY", "no_proxy"].iter().filter_map(|k| std::env::var(k).ok()).collect();
        let value = config::no_proxy(user.iter().map(String::as_str), config.routes.iter().map(|r| &r.url.host));
        vars.extend(["NO_PROXY", "no_proxy"].map(|k| (k.to_string(), value.clone())));
    }
    // A HAR file that does not exist yet is recorded by every process of
    // the run in `once` mode, not only by the first to use it.
    let new: Vec<&Path> = config
        .routes
        .iter()
        .filter_map(|r| match &r.app {
            AppSpec::Har(h) if h.mode == har::Mode::Once && !h.file.exists() => Some(h.file.as_path()),
            _ => None,
        })
        .collect();
    if !new.is_empty() {
        let joined = std::env::join_paths(new).map_err(|e| fail(&format!("a HAR file's path: {e}")))?;
        vars.retain(|(k, _)| k != har::NEW_FILES_KEY);
        vars.push((har::NEW_FILES_KEY.to_string(), path_text(Path::new(&joined)).map_err(|e| fail(&e))?));
    }
    let preload = shim_path().and_then(|s| preload_value(&s)).map_err(|e| fail(&e))?;
    Ok((std::iter::once(("LD_PRELOAD".to_string(), preload)).chain(vars).collect(), config))
}

/// Makes the CA if needed and writes the trust bundle: the system CAs, any
/// CA files the user's trust variables already name, and the intercept CA.
fn trust(config: &Config) -> Result<PathBuf, ExitCode> {
    let mut user_files: Vec<PathBuf> = trust::TRUST_VARIABLES.iter().filter_map(std::env::var_os).map(PathBuf::from).collect();
    user_files.extend(trust::npm_cafiles());
    let dir = config.ca_dir();
    trust::write_bundle(&dir, &user_files).map_err(|e| fail(&format!("cannot set up the CA in {}: {e}", dir.display())))
}

/// Writes one WireMock mapping per entry of `har` into `dir/mappings`, then
/// loads them as a stubs route would.
fn har2stubs(har: &Path, dir: &Path) -> Result<usize, String> {
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
