//! A throwaway SoftHSM2 token directory, and running a test in a child
//! process that sees it.
//!
//! SoftHSM2 reads `SOFTHSM2_CONF` once, when a process initialises the
//! module, and the workspace forbids `unsafe` (so no `std::env::set_var`).
//! A test that loads the module in-process therefore re-runs itself as a
//! child with the variable set: [`SoftHsm::run_child`] in the parent,
//! [`SoftHsm::in_child`] in the child ([`softhsm_test`] does both). The tokens are made in the parent with the
//! real `softhsm2-util`, before any module is loaded.

use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

use crate::util::{require_tool, run_ok};

/// Debian's SoftHSM2 PKCS#11 module (`apt-get install softhsm2`).
pub const MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";
/// SoftHSM2's own configuration variable.
pub const CONF_VAR: &str = "SOFTHSM2_CONF";
/// Set in a child test process to the name of the one test it runs.
pub const CHILD_VAR: &str = "SHIFTKEY_TEST_SOFTHSM_CHILD";
/// Security officer PIN of every test token.
pub const SO_PIN: &str = "87654321";

#[derive(Debug)]
pub struct SoftHsm {
    root: PathBuf,
    /// The parent owns (and removes) the directory; the child borrows it.
    _owned: Option<tempfile::TempDir>,
}

/// Runs a SoftHSM test: in the parent, `setup` makes tokens and PIN files in
/// a fresh directory and the test re-runs itself as a child (see
/// [`SoftHsm::run_child`]); in that child, `body` runs with the module
/// seeing those tokens. `name` is the test's libtest name.
pub fn softhsm_test(
    name: &str,
    setup: impl FnOnce(&SoftHsm) -> anyhow::Result<()>,
    body: impl FnOnce(&SoftHsm) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    if let Some(hsm) = SoftHsm::in_child(name) {
        return body(&hsm);
    }
    let hsm = SoftHsm::new()?;
    setup(&hsm)?;
    hsm.run_child(name, &[])?;
    Ok(())
}

impl SoftHsm {
    /// A new, empty token directory with its configuration file.
    pub fn new() -> anyhow::Result<Self> {
        require_tool("softhsm2-util", "softhsm2")?;
        if !Path::new(MODULE).is_file() {
            bail!(
                "{MODULE} is missing: install it with `apt-get install -y softhsm2` (scripts/test does)"
            );
        }
        let dir = tempfile::tempdir()?;
        let root = dir.path().to_owned();
        std::fs::create_dir(root.join("tokens"))?;
        std::fs::write(
            dir.path().join("softhsm2.conf"),
            format!(
                "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n",
                root.join("tokens").display()
            ),
        )?;
        Ok(Self {
            root,
            _owned: Some(dir),
        })
    }

    /// In the child [`run_child`](Self::run_child) started for test `name`:
    /// the parent's directory. `None` anywhere else.
    pub fn in_child(name: &str) -> Option<Self> {
        if std::env::var(CHILD_VAR).ok()? != name {
            return None;
        }
        let conf = PathBuf::from(std::env::var_os(CONF_VAR)?);
        Some(Self {
            root: conf.parent()?.to_owned(),
            _owned: None,
        })
    }

    /// The directory holding the configuration, tokens and PIN files.
    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn conf(&self) -> PathBuf {
        self.root.join("softhsm2.conf")
    }

    /// Where the token files are (what an attacker with the disk gets).
    pub fn token_dir(&self) -> PathBuf {
        self.root.join("tokens")
    }

    /// `softhsm2-util --init-token --free --label LABEL` with user `pin`.
    pub fn init_token(&self, label: &str, pin: &str) -> anyhow::Result<()> {
        run_ok(self.command("softhsm2-util").args([
            "--init-token",
            "--free",
            "--label",
            label,
            "--so-pin",
            SO_PIN,
            "--pin",
            pin,
        ]))?;
        Ok(())
    }

    /// A PIN file, mode 0600, for `pin-source=file:...`.
    pub fn pin_file(&self, name: &str, pin: &str) -> anyhow::Result<PathBuf> {
        use std::io::Write;
        let path = self.root.join(name);
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .with_context(|| format!("creating {}", path.display()))?;
        writeln!(file, "{pin}")?;
        Ok(path)
    }

    /// `pkcs11:token=TOKEN;object=OBJECT?module-path=...&pin-source=file:PIN`.
    pub fn uri(&self, token: &str, object: &str, pin_file: &Path) -> String {
        format!(
            "pkcs11:token={token};object={object}?module-path={MODULE}&pin-source=file:{}",
            pin_file.display()
        )
    }

    /// `program` with `SOFTHSM2_CONF` pointing here.
    pub fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(program);
        cmd.env(CONF_VAR, self.conf());
        cmd
    }

    /// `pkcs11-tool --module SOFTHSM ARGS...` against these tokens.
    pub fn pkcs11_tool(&self) -> anyhow::Result<Command> {
        require_tool("pkcs11-tool", "opensc")?;
        let mut cmd = self.command("pkcs11-tool");
        cmd.args(["--module", MODULE]);
        Ok(cmd)
    }

    /// Runs the test `name` (its path as libtest prints it, e.g.
    /// `pkcs11::signs_on_the_token`) again in a child process of this test
    /// binary, with `SOFTHSM2_CONF` set here, and fails unless exactly that
    /// test ran there and passed. Returns the child's output.
    pub fn run_child(&self, name: &str, env: &[(&str, &str)]) -> anyhow::Result<String> {
        let exe = std::env::current_exe()?;
        let mut cmd = Command::new(exe);
        cmd.args([name, "--exact", "--nocapture", "--test-threads=1"])
            .env(CONF_VAR, self.conf())
            .env(CHILD_VAR, name);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = cmd.output().with_context(|| format!("re-running {name}"))?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if !out.status.success() {
            bail!("{name} failed in its SoftHSM child process:\n{text}");
        }
        if !text.contains("test result: ok. 1 passed") {
            bail!("{name} did not run in its SoftHSM child process (wrong test name?):\n{text}");
        }
        Ok(text)
    }
}

/// The libtest name of a test from `module_path!()` and the function name:
/// the module path without its crate.
pub fn test_name(module_path: &str, function: &str) -> String {
    match module_path.split_once("::") {
        Some((_, rest)) => format!("{rest}::{function}"),
        None => function.to_owned(),
    }
}
