//! What a program under the shim is given: the configuration validated
//! (with what the shim would load only later, stubs and HAR files), the
//! CA and trust bundle, proxies bypassed, and `LD_PRELOAD` first.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use intercept::apps::{AppSpec, har, stubs};
use intercept::config::{self, Config};
use intercept::serve::trust;

use super::settings::{Settings, path_text};

/// The shim's file name, beside this executable.
const SHIM: &str = "libintercept.so";

/// Validates; on error prints `FILE:LINE: message` and gives exit status 2.
pub fn validate(settings: &Settings, run_dir: Option<&Path>) -> Result<(Vec<(String, String)>, Config), ExitCode> {
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

/// Prints `intercept: MESSAGE`; exit status 2.
pub fn fail(message: &str) -> ExitCode {
    eprintln!("intercept: {message}");
    ExitCode::from(2)
}

/// Everything a program under the shim needs: `LD_PRELOAD` first, then the
/// validated `INTERCEPT_*` variables.
/// With a run's directory, what validation works out once for the run is
/// kept there.
pub fn environment(settings: &Settings, run_dir: Option<&Path>) -> Result<(Vec<(String, String)>, Config), ExitCode> {
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
pub fn trust(config: &Config) -> Result<PathBuf, ExitCode> {
    let mut user_files: Vec<PathBuf> = trust::TRUST_VARIABLES.iter().filter_map(std::env::var_os).map(PathBuf::from).collect();
    user_files.extend(trust::npm_cafiles());
    let dir = config.ca_dir();
    trust::write_bundle(&dir, &user_files).map_err(|e| fail(&format!("cannot set up the CA in {}: {e}", dir.display())))
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
