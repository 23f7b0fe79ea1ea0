//! AFL target `seal_manifest`: see the function it calls.
fn main() {
    afl::fuzz!(|data: &[u8]| {
        shiftkey_ca::fuzzing::seal_manifest(data);
    });
}
