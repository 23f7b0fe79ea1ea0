//! AFL target `oidc_token`: see the function it calls.
fn main() {
    afl::fuzz!(|data: &[u8]| {
        shiftkey_ca::fuzzing::oidc_token(data);
    });
}
