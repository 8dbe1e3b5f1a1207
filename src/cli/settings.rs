//! The options `run`, `check`, `env` and `ca` share, and the `INTERCEPT_*`
//! variables they come to: the environment's, then the env file, then the
//! flags.

use std::path::{Path, PathBuf};

use clap::Args;
use intercept::apps::har;
use intercept::config::{self, ENV_FILE, ROUTE_PREFIX};

/// The env file `intercept` reads when none is named.
const DEFAULT_ENV_FILE: &str = "intercept.env";

/// Where the configuration comes from, as the command line gives it.
#[derive(Args)]
pub struct Settings {
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
    pub fn variables(&self) -> Result<Vec<(String, String)>, String> {
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

/// A path as the UTF-8 text a variable holds.
pub fn path_text(path: &Path) -> Result<String, String> {
    path.to_str().map(str::to_string).ok_or_else(|| format!("{} is not valid UTF-8", path.display()))
}
