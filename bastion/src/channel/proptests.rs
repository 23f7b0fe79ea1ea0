//! Property tests of the channel state machine: any sequence of requests,
//! target answers, data, EOF and close, checked by the same invariants as
//! the `bastion_channel` fuzz target (`crate::fuzzing::channel_sequence`):
//! at most one program, every request answered once, nothing forwarded
//! after the channel was closed for abuse, each forward allowed by the
//! rules.

use proptest::prelude::{Just, Strategy, any, prop, prop_oneof, proptest};

use crate::fuzzing::{ChannelOp, ChannelRequest, channel_sequence};

fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("LANG".to_owned()),
        Just("LC_ALL".to_owned()),
        Just("TERM".to_owned()),
        Just("PATH".to_owned()),
        Just("LD_PRELOAD".to_owned()),
        Just("sftp".to_owned()),
        Just("INT".to_owned()),
        "[A-Za-z_\u{1b}\u{202e}]{0,80}",
    ]
}

fn request() -> impl Strategy<Value = ChannelRequest> {
    prop_oneof![
        Just(ChannelRequest::Pty),
        name().prop_map(ChannelRequest::Env),
        (any::<u16>(), any::<u16>())
            .prop_map(|(c, r)| ChannelRequest::WindowChange(u32::from(c), u32::from(r))),
        name().prop_map(ChannelRequest::Signal),
        Just(ChannelRequest::X11),
        Just(ChannelRequest::Agent),
        Just(ChannelRequest::Shell),
        prop::collection::vec(any::<u8>(), 0..16).prop_map(ChannelRequest::Exec),
        name().prop_map(ChannelRequest::Subsystem),
        Just(ChannelRequest::Subsystem("sftp".to_owned())),
    ]
}

fn op() -> impl Strategy<Value = ChannelOp> {
    prop_oneof![
        6 => request().prop_map(ChannelOp::Request),
        2 => any::<bool>().prop_map(ChannelOp::TargetAnswers),
        1 => Just(ChannelOp::Data),
        1 => Just(ChannelOp::Eof),
        1 => Just(ChannelOp::Close),
    ]
}

proptest! {
    #[test]
    fn any_sequence_keeps_the_channel_invariants(
        permits_pty in any::<bool>(),
        ops in prop::collection::vec(op(), 0..90),
    ) {
        channel_sequence(permits_pty, &ops);
    }

    #[test]
    fn long_setups_close_and_start_nothing(
        permits_pty in any::<bool>(),
        setup in prop::collection::vec(
            prop_oneof![Just(ChannelRequest::Pty), name().prop_map(ChannelRequest::Env), Just(ChannelRequest::X11)],
            60..80,
        ),
        program in request(),
    ) {
        let mut ops: Vec<ChannelOp> = setup.into_iter().map(ChannelOp::Request).collect();
        ops.push(ChannelOp::Request(program));
        ops.push(ChannelOp::TargetAnswers(true));
        ops.push(ChannelOp::Data);
        channel_sequence(permits_pty, &ops);
    }
}
