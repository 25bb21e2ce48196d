//! docker's credential helper protocol: `docker-credential-<name> get`, the server URL on
//! stdin, `{"ServerURL":..,"Username":..,"Secret":..}` on stdout.
//!
//! A helper that exits with an error or prints nothing has no credential for the server
//! (that is how `credentials not found in native keychain` arrives).

use std::ffi::OsString;
use std::io::{Read as _, Write as _};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ferry_core::auth::Credential;

/// The most a helper may print; its answer is a few hundred bytes.
const MAX_OUTPUT: u64 = 1024 * 1024;
/// How often a running helper is checked on.
const POLL: Duration = Duration::from_millis(10);

/// Where helper programs are found.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum HelperLookup {
    /// `docker-credential-<name>` on `PATH`, as docker does.
    #[default]
    Path,
    /// `<dir>/docker-credential-<name>`.
    Dir(PathBuf),
}

impl HelperLookup {
    pub(crate) fn program(&self, name: &str) -> OsString {
        let file = format!("docker-credential-{name}");
        match self {
            HelperLookup::Path => file.into(),
            HelperLookup::Dir(dir) => dir.join(file).into_os_string(),
        }
    }
}

/// What a helper said about one server.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Answer {
    /// A login, or an identity token (the user name `<token>`, as the helper protocol
    /// marks it), which the core exchanges by OAuth2.
    Credential(Credential),
    None,
}

#[derive(serde::Deserialize)]
struct Output {
    #[serde(rename = "Username", default)]
    username: String,
    #[serde(rename = "Secret", default)]
    secret: String,
}

/// Runs `<program> get` for `server`. The error says what went wrong without quoting the
/// helper's output, which may hold the secret.
pub(crate) fn get(
    lookup: &HelperLookup,
    name: &str,
    server: &str,
    timeout: Duration,
) -> Result<Answer, String> {
    if name.is_empty() || name.contains(['/', '\\']) {
        return Err("is not a helper name (expected a word such as `desktop` or `ecr-login`)".into());
    }
    let program = lookup.program(name);
    let mut child = Command::new(&program)
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| match (e.kind(), lookup) {
            (std::io::ErrorKind::NotFound, HelperLookup::Path) => {
                "is not installed (not found on PATH)".to_owned()
            }
            (std::io::ErrorKind::NotFound, HelperLookup::Dir(dir)) => {
                format!("is not installed (not found in {})", dir.display())
            }
            _ => format!("could not be started: {e}"),
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        // A helper that exits without reading closes the pipe; its exit status tells.
        let _ = stdin.write_all(server.as_bytes());
    }
    let mut stdout = child.stdout.take().expect("stdout is piped");
    let reader = std::thread::spawn(move || {
        let mut out = Vec::new();
        let _ = (&mut stdout).take(MAX_OUTPUT).read_to_end(&mut out);
        out
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("did not answer within {}s", timeout.as_secs_f32()));
            }
            Ok(None) => std::thread::sleep(POLL),
            Err(e) => return Err(format!("could not be waited for: {e}")),
        }
    };
    let out = reader.join().map_err(|_| "output could not be read".to_owned())?;
    if !status.success() || out.iter().all(u8::is_ascii_whitespace) {
        return Ok(Answer::None);
    }
    let output: Output = serde_json::from_slice(&out)
        .map_err(|_| "answered with something other than the protocol's JSON object".to_owned())?;
    if output.secret.is_empty() {
        return Ok(Answer::None);
    }
    Ok(Answer::Credential(Credential::new(output.username, output.secret)))
}
