//! AFL target `ui_cookie`: see the function it calls.
fn main() {
    afl::fuzz!(|data: &[u8]| {
        shiftkey_ca::fuzzing::ui_cookie(data);
    });
}
