//! AFL target `host_auth`: see the function it calls.
fn main() {
    afl::fuzz!(|data: &[u8]| {
        shiftkey_wire::fuzzing::host_auth(data);
    });
}
