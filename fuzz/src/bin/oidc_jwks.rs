//! AFL target `oidc_jwks`: see the function it calls.
fn main() {
    afl::fuzz!(|data: &[u8]| {
        shiftkey_ca::fuzzing::oidc_jwks(data);
    });
}
