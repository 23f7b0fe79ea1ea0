//! AFL target `krl`: see the function it calls.
fn main() {
    afl::fuzz!(|data: &[u8]| {
        shiftkey_ca::fuzzing::krl(data, shiftkey::fuzzing::krl_listing);
    });
}
