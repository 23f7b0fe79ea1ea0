//! AFL target `certificate_request`: see the function it calls.
fn main() {
    afl::fuzz!(|data: &[u8]| {
        shiftkey_ca::fuzzing::certificate_request(data);
    });
}
