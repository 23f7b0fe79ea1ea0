//! What sshd is told, and asking sshd about it: the drop-in's text, whether
//! the main config includes it, `sshd -t` (valid?), `sshd -T` (do our
//! values win?), and reloading sshd.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

use super::Layout;

/// The drop-in: where sshd finds what `shiftkey host` keeps current, and
/// the options that leave certificates as the only way in.
pub(crate) fn drop_in(layout: &Layout) -> String {
    format!(
        "# Written by `shiftkey host enroll`: sshd trusts only the Shiftkey CA.\n\
         # `shiftkey host refresh` (shiftkey-host-refresh.timer) keeps the files\n\
         # it names current. Enrolling again rewrites this file.\n\
         TrustedUserCAKeys {user_ca}\n\
         RevokedKeys {krl}\n\
         AuthorizedPrincipalsFile {principals}/%u\n\
         HostCertificate {certificate}\n\
         AuthorizedKeysFile none\n\
         PasswordAuthentication no\n\
         KbdInteractiveAuthentication no\n",
        user_ca = layout.user_ca().display(),
        krl = layout.krl().display(),
        principals = layout.principals_dir().display(),
        certificate = layout.host_certificate().display(),
    )
}

/// The values `sshd -T` must show once the drop-in is read (keyword in
/// sshd -T's lower case, value).
fn expected(layout: &Layout) -> Vec<(&'static str, String)> {
    vec![
        ("trustedusercakeys", layout.user_ca().display().to_string()),
        ("revokedkeys", layout.krl().display().to_string()),
        (
            "authorizedprincipalsfile",
            format!("{}/%u", layout.principals_dir().display()),
        ),
        (
            "hostcertificate",
            layout.host_certificate().display().to_string(),
        ),
        ("authorizedkeysfile", "none".to_owned()),
        ("passwordauthentication", "no".to_owned()),
        ("kbdinteractiveauthentication", "no".to_owned()),
    ]
}

/// sshd resolves relative `Include` paths against its own directory.
const SSHD_DIR: &str = "/etc/ssh";

/// True when a top-level `Include` line of `config` names `drop_in`
/// (directly or by a `*`/`?` pattern). sshd reads nothing else.
pub(crate) fn includes(config: &str, drop_in: &Path) -> bool {
    let target = drop_in.to_string_lossy();
    config.lines().any(|line| {
        let mut words = line.split_whitespace();
        let is_include = words
            .next()
            .is_some_and(|w| w.eq_ignore_ascii_case("include"));
        is_include
            && words.any(|word| {
                let word = word.trim_matches('"');
                let pattern = if word.starts_with('/') {
                    word.to_owned()
                } else {
                    format!("{SSHD_DIR}/{word}")
                };
                glob_match(pattern.as_bytes(), target.as_bytes())
            })
    })
}

/// `*` and `?` as glob(3) reads them in one path: neither matches `/`.
fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    match (pattern.split_first(), text.split_first()) {
        (None, None) => true,
        (Some((b'*', rest)), _) => {
            glob_match(rest, text)
                || text
                    .split_first()
                    .is_some_and(|(c, t)| *c != b'/' && glob_match(pattern, t))
        }
        (Some((b'?', rest)), Some((c, t))) => *c != b'/' && glob_match(rest, t),
        (Some((p, rest)), Some((c, t))) => p == c && glob_match(rest, t),
        _ => false,
    }
}

/// How to run and check sshd.
#[derive(Debug, Clone)]
pub(crate) struct Sshd {
    pub(crate) binary: PathBuf,
    pub(crate) main_config: PathBuf,
}

impl Sshd {
    /// Refuses, before anything is changed, a main config that would not
    /// read the drop-in, or an sshd that is not there.
    pub(crate) fn check_ready(&self, layout: &Layout) -> anyhow::Result<()> {
        if !self.binary.is_file() {
            bail!(
                "{} not found\nhint: install openssh-server, or pass --sshd PATH",
                self.binary.display()
            );
        }
        let text = std::fs::read_to_string(&self.main_config).with_context(|| {
            format!(
                "cannot read sshd's configuration {}\nhint: pass --sshd-config FILE",
                self.main_config.display()
            )
        })?;
        if !includes(&text, &layout.drop_in()) {
            bail!(
                "{} does not Include {}/*.conf, so sshd would never read the drop-in this command writes; nothing was changed\n\
                 hint: add `Include {}/*.conf` as the first line of {} (Debian's sshd_config has it), or pass --sshd-config",
                self.main_config.display(),
                layout.drop_in_dir().display(),
                layout.drop_in_dir().display(),
                self.main_config.display()
            );
        }
        Ok(())
    }

    /// `sshd -t -f MAIN`: Ok, or sshd's own words.
    pub(crate) fn test(&self) -> Result<(), String> {
        let out = Command::new(&self.binary)
            .arg("-t")
            .arg("-f")
            .arg(&self.main_config)
            .output()
            .map_err(|e| format!("cannot run {}: {e}", self.binary.display()))?;
        if out.status.success() {
            Ok(())
        } else {
            let mut text = String::from_utf8_lossy(&out.stderr).trim().to_owned();
            let stdout = String::from_utf8_lossy(&out.stdout);
            if !stdout.trim().is_empty() {
                text.push('\n');
                text.push_str(stdout.trim());
            }
            if text.is_empty() {
                text = format!("exited with {}", out.status);
            }
            Err(text)
        }
    }

    /// `sshd -T -f MAIN`: the options sshd will use. Fails when one of the
    /// drop-in's is not in force (sshd keeps the first value it reads, so a
    /// line before the Include, or an earlier drop-in, wins over ours).
    pub(crate) fn check_effective(&self, layout: &Layout) -> Result<(), String> {
        let out = Command::new(&self.binary)
            .arg("-T")
            .arg("-f")
            .arg(&self.main_config)
            .output()
            .map_err(|e| format!("cannot run {}: {e}", self.binary.display()))?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).trim().to_owned());
        }
        let text = String::from_utf8_lossy(&out.stdout);
        let values = |keyword: &str| -> Vec<String> {
            text.lines()
                .filter_map(|line| line.split_once(' '))
                .filter(|(k, _)| *k == keyword)
                .map(|(_, v)| v.trim().to_owned())
                .collect()
        };
        for (keyword, want) in expected(layout) {
            let seen = values(keyword);
            let ok = match keyword {
                // One line per certificate; ours must be among them.
                "hostcertificate" => seen.contains(&want),
                _ => seen.len() == 1 && seen[0] == want,
            };
            if !ok {
                return Err(format!(
                    "sshd would use `{keyword} {}`, not the drop-in's `{want}`: a line before the Include in {}, or a drop-in sorted before {}, sets it first (sshd keeps the first value)\n\
                     hint: remove that line, then enroll again",
                    if seen.is_empty() {
                        "(nothing)".to_owned()
                    } else {
                        seen.join(", ")
                    },
                    self.main_config.display(),
                    super::DROP_IN
                ));
            }
        }
        Ok(())
    }
}

/// How sshd is told to read its files again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Reload {
    /// `--no-reload`.
    Skip,
    /// SIGHUP to the pid in this file.
    PidFile(PathBuf),
    /// `systemctl reload ssh` (or `sshd`) under systemd, else /run/sshd.pid.
    Auto,
}

const SYSTEMD_RUNNING: &str = "/run/systemd/system";
const DEFAULT_PID_FILE: &str = "/run/sshd.pid";

impl Reload {
    /// Reloads sshd; says what was done. Not running is not an error: sshd
    /// reads the new files when it starts.
    pub(crate) fn run(&self) -> anyhow::Result<String> {
        match self {
            Reload::Skip => {
                Ok("sshd not reloaded (--no-reload): reload it to use the new files".into())
            }
            Reload::PidFile(path) => hup(path),
            Reload::Auto if Path::new(SYSTEMD_RUNNING).is_dir() => systemctl_reload(),
            Reload::Auto => hup(Path::new(DEFAULT_PID_FILE)),
        }
    }
}

fn systemctl_reload() -> anyhow::Result<String> {
    for unit in ["ssh.service", "sshd.service"] {
        let active = Command::new("systemctl")
            .args(["is-active", "--quiet", unit])
            .status()
            .context("cannot run systemctl")?;
        if active.success() {
            let out = Command::new("systemctl")
                .args(["reload", unit])
                .output()
                .context("cannot run systemctl")?;
            if !out.status.success() {
                bail!(
                    "`systemctl reload {unit}` failed: {}\nhint: the files are in place and `sshd -t` accepts them; reload sshd by hand",
                    String::from_utf8_lossy(&out.stderr).trim()
                );
            }
            return Ok(format!("reloaded {unit}"));
        }
    }
    Ok("sshd is not running under systemd (neither ssh.service nor sshd.service is active): it reads the new files when it starts".into())
}

fn hup(pid_file: &Path) -> anyhow::Result<String> {
    let text = match std::fs::read_to_string(pid_file) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(format!(
                "sshd does not seem to run (no {}): it reads the new files when it starts",
                pid_file.display()
            ));
        }
        Err(e) => return Err(e).with_context(|| format!("reading {}", pid_file.display())),
    };
    let pid: u32 = text
        .trim()
        .parse()
        .ok()
        .filter(|pid| *pid > 1)
        .with_context(|| {
            format!(
                "{} does not hold a process ID: {:?}",
                pid_file.display(),
                text.trim()
            )
        })?;
    let out = Command::new("kill")
        .args(["-HUP", &pid.to_string()])
        .output()
        .context("cannot run kill")?;
    if !out.status.success() {
        bail!(
            "cannot send SIGHUP to sshd (pid {pid} from {}): {}\nhint: the files are in place and `sshd -t` accepts them; reload sshd by hand",
            pid_file.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(format!("sent SIGHUP to sshd (pid {pid})"))
}
