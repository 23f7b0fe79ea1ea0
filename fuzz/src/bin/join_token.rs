//! AFL target `join_token`: see the function it calls.
fn main() {
    afl::fuzz!(|data: &[u8]| {
        shiftkey_ca::fuzzing::join_token(data);
    });
}
