//! AFL target `recording_upload`: see the function it calls.
fn main() {
    afl::fuzz!(|data: &[u8]| {
        shiftkey_ca::fuzzing::recording_upload(data);
    });
}
