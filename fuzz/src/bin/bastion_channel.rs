//! AFL target `bastion_channel`: see the function it calls.
fn main() {
    afl::fuzz!(|data: &[u8]| {
        shiftkey_bastion::fuzzing::channel(data);
    });
}
