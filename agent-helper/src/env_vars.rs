//! Every environment variable the `shiftkey` client reads, in one place.
//! `docs/client.md` lists them; keep the two in step.

// `SSH_AUTH_SOCK` (the ssh-agent to load certificates into) is read by
// the agent client, `shiftkey_ssh_agent::SSH_AUTH_SOCK`.
/// Config file instead of `~/.config/shiftkey/config.toml`.
pub(crate) const CONFIG: &str = "SHIFTKEY_CONFIG";
/// Where the ID token is cached (`$XDG_RUNTIME_DIR/shiftkey/token`); unset
/// means the token lives only as long as the command.
pub(crate) const XDG_RUNTIME_DIR: &str = "XDG_RUNTIME_DIR";
pub(crate) const XDG_CONFIG_HOME: &str = "XDG_CONFIG_HOME";
pub(crate) const HOME: &str = "HOME";
/// A command to open URLs with; `none` never opens a browser.
pub(crate) const BROWSER: &str = "BROWSER";
/// Whether a graphical session exists to open a browser in.
pub(crate) const DISPLAY: &str = "DISPLAY";
pub(crate) const WAYLAND_DISPLAY: &str = "WAYLAND_DISPLAY";
