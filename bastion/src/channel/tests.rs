use std::sync::Arc;

use russh::Sig;

use super::{ChannelState, Decision, Phase, Program, PtyRequest, Refusal, Request, WindowSize};
use crate::config::AcceptEnv;

fn channel(permits_pty: bool) -> ChannelState {
    let env = AcceptEnv::new(vec!["LANG".into(), "LC_*".into(), "TERM".into()]).unwrap();
    ChannelState::new(permits_pty, Arc::new(env))
}

fn pty() -> Request {
    Request::Pty(PtyRequest {
        term: "xterm".into(),
        cols: 80,
        rows: 24,
        pix_width: 0,
        pix_height: 0,
        modes: Vec::new(),
    })
}

fn env(name: &str) -> Request {
    Request::Env {
        name: name.into(),
        value: "x".into(),
    }
}

fn resize(cols: u32, rows: u32) -> Request {
    Request::WindowChange(WindowSize {
        cols,
        rows,
        pix_width: 0,
        pix_height: 0,
    })
}

fn exec(command: &str) -> Request {
    Request::Exec(command.as_bytes().to_vec())
}

fn sftp() -> Request {
    Request::Subsystem("sftp".into())
}

/// A channel whose program the target accepted.
fn running(permits_pty: bool, setup: &[Request], program: &Request) -> ChannelState {
    let mut c = channel(permits_pty);
    for r in setup {
        c.decide(r);
    }
    assert!(matches!(c.decide(program), Decision::Start(_)));
    c.started(true);
    assert_eq!(c.phase(), Phase::Running);
    c
}

fn second(first: &'static str, second: &'static str) -> Decision {
    Decision::Close(Refusal::SecondProgram { first, second })
}

#[test]
fn the_openssh_order_passes() {
    let mut c = channel(true);
    assert_eq!(c.decide(&pty()), Decision::Forward);
    assert_eq!(c.decide(&env("LANG")), Decision::Forward);
    assert_eq!(c.decide(&env("LC_ALL")), Decision::Forward);
    assert_eq!(c.decide(&Request::Shell), Decision::Start(Program::Shell));
    assert_eq!(c.phase(), Phase::Starting);
    c.started(true);
    assert_eq!(c.phase(), Phase::Running);
    assert_eq!(c.decide(&resize(100, 30)), Decision::Pass);
    assert_eq!(c.pty().map(|p| (p.cols, p.rows)), Some((100, 30)));
    assert_eq!(c.decide(&Request::Signal(Sig::INT)), Decision::Pass);
}

#[test]
fn each_program_starts_once() {
    let mut c = channel(false);
    assert_eq!(
        c.decide(&exec("id")),
        Decision::Start(Program::Exec(b"id".to_vec()))
    );
    let mut c = channel(false);
    assert_eq!(c.decide(&sftp()), Decision::Start(Program::Sftp));
    assert_eq!(Program::Sftp.describe(), "subsystem sftp");
}

#[test]
fn a_second_program_closes_the_channel_in_every_order() {
    // subsystem after a pty shell, after a plain shell, after exec.
    let mut c = running(true, &[pty()], &Request::Shell);
    assert_eq!(c.decide(&sftp()), second("shell", "subsystem"));
    assert_eq!(c.phase(), Phase::Closing);
    let mut c = running(false, &[], &Request::Shell);
    assert_eq!(c.decide(&sftp()), second("shell", "subsystem"));
    let mut c = running(false, &[], &exec("sh"));
    assert_eq!(c.decide(&sftp()), second("exec", "subsystem"));
    // exec twice, shell after exec, exec after sftp, shell twice.
    let mut c = running(false, &[], &exec("sh"));
    assert_eq!(c.decide(&exec("id")), second("exec", "exec"));
    let mut c = running(false, &[], &exec("sh"));
    assert_eq!(c.decide(&Request::Shell), second("exec", "shell"));
    let mut c = running(false, &[], &sftp());
    assert_eq!(c.decide(&exec("id")), second("subsystem sftp", "exec"));
    let mut c = running(true, &[pty()], &Request::Shell);
    assert_eq!(c.decide(&Request::Shell), second("shell", "shell"));
    // An unknown subsystem after a program is a second program too.
    let mut c = running(false, &[], &Request::Shell);
    assert_eq!(
        c.decide(&Request::Subsystem("x11".into())),
        second("shell", "subsystem")
    );
    // Everything after the close is refused.
    assert_eq!(
        c.decide(&resize(1, 1)),
        Decision::Refuse(Refusal::TooManyRequests)
    );
}

#[test]
fn a_second_program_while_the_first_is_starting_or_was_refused_closes_too() {
    let mut c = channel(false);
    assert!(matches!(c.decide(&exec("sh")), Decision::Start(_)));
    assert_eq!(c.decide(&exec("id")), second("exec", "exec"));
    let mut c = channel(false);
    assert!(matches!(c.decide(&Request::Shell), Decision::Start(_)));
    c.started(false);
    assert_eq!(c.phase(), Phase::Refused);
    assert_eq!(c.decide(&exec("id")), second("shell", "exec"));
    // A refused unknown subsystem was the channel's one program request.
    let mut c = channel(false);
    assert_eq!(
        c.decide(&Request::Subsystem("netconf".into())),
        Decision::Refuse(Refusal::UnknownSubsystem("netconf".into()))
    );
    assert_eq!(c.decide(&Request::Shell), second("subsystem", "shell"));
}

#[test]
fn pty_only_when_permitted_once_and_before_the_program() {
    let mut c = channel(false);
    assert_eq!(c.decide(&pty()), Decision::Refuse(Refusal::PtyNotPermitted));
    assert!(c.pty().is_none());
    let mut c = channel(true);
    assert_eq!(c.decide(&pty()), Decision::Forward);
    assert_eq!(c.decide(&pty()), Decision::Refuse(Refusal::PtyTwice));
    // pty-req after shell.
    let mut c = running(true, &[], &Request::Shell);
    assert_eq!(c.decide(&pty()), Decision::Refuse(Refusal::PtyAfterProgram));
    assert_eq!(c.phase(), Phase::Running, "the channel goes on");
}

#[test]
fn env_only_from_the_allow_list_and_before_the_program() {
    let mut c = channel(false);
    assert_eq!(
        c.decide(&env("LD_PRELOAD")),
        Decision::Refuse(Refusal::EnvNotAccepted("LD_PRELOAD".into()))
    );
    assert_eq!(c.decide(&env("TERM")), Decision::Forward);
    // env after exec.
    let mut c = running(false, &[], &exec("env"));
    assert_eq!(
        c.decide(&env("LANG")),
        Decision::Refuse(Refusal::EnvAfterProgram("LANG".into()))
    );
    // A hostile name is clipped for the logs.
    let long = format!("A\u{1b}{}", "B".repeat(500));
    match channel(false).decide(&env(&long)) {
        Decision::Refuse(Refusal::EnvNotAccepted(name)) => {
            assert_eq!(name.len(), 64);
            assert!(!name.contains('\u{1b}'));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn window_changes_need_a_pty_and_size_it() {
    // window-change before pty-req.
    let mut c = channel(true);
    assert_eq!(
        c.decide(&resize(90, 20)),
        Decision::Refuse(Refusal::WindowChangeWithoutPty)
    );
    assert_eq!(c.decide(&pty()), Decision::Forward);
    assert_eq!(c.decide(&resize(120, 40)), Decision::Pass);
    assert_eq!(c.pty().map(|p| (p.cols, p.rows)), Some((120, 40)));
    let mut c = running(false, &[], &Request::Shell);
    assert_eq!(
        c.decide(&resize(1, 1)),
        Decision::Refuse(Refusal::WindowChangeWithoutPty)
    );
}

#[test]
fn signals_only_to_a_running_program() {
    let mut c = channel(false);
    assert_eq!(
        c.decide(&Request::Signal(Sig::TERM)),
        Decision::Refuse(Refusal::SignalBeforeProgram)
    );
    let mut c = running(false, &[], &exec("sleep 9"));
    assert_eq!(c.decide(&Request::Signal(Sig::TERM)), Decision::Pass);
    let mut c = channel(false);
    c.decide(&Request::Shell);
    c.started(false);
    assert_eq!(
        c.decide(&Request::Signal(Sig::INT)),
        Decision::Refuse(Refusal::SignalBeforeProgram)
    );
}

#[test]
fn forwarding_requests_are_refused_in_any_state() {
    for mut c in [channel(true), running(true, &[pty()], &Request::Shell)] {
        assert_eq!(c.decide(&Request::X11), Decision::Refuse(Refusal::X11));
        assert_eq!(c.decide(&Request::Agent), Decision::Refuse(Refusal::Agent));
    }
}

#[test]
fn a_flood_of_setup_requests_closes_the_channel() {
    let mut c = channel(true);
    for _ in 0..64 {
        assert!(matches!(c.decide(&env("NOPE")), Decision::Refuse(_)));
    }
    assert_eq!(
        c.decide(&env("LANG")),
        Decision::Close(Refusal::TooManyRequests)
    );
    assert_eq!(c.phase(), Phase::Closing);
}

#[test]
fn answers_are_given_by_the_bastion_except_for_the_program() {
    assert_eq!(Decision::Forward.answer(), Some(true));
    assert_eq!(Decision::Pass.answer(), Some(true));
    assert_eq!(Decision::Refuse(Refusal::X11).answer(), Some(false));
    assert_eq!(second("shell", "exec").answer(), Some(false));
    assert_eq!(Decision::Start(Program::Shell).answer(), None);
}

#[test]
fn refusals_read_as_sentences_for_the_user() {
    let r = Refusal::SecondProgram {
        first: "shell",
        second: "subsystem",
    };
    assert_eq!(
        r.to_string(),
        "one program per channel: this channel already asked for shell; the subsystem request is refused and the channel closed"
    );
    assert_eq!(r.code(), "second-program");
}
