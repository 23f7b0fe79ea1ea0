//! AFL target `pkcs11_uri`: see the function it calls.
fn main() {
    afl::fuzz!(|data: &[u8]| {
        shiftkey_ca::fuzzing::pkcs11_uri(data);
    });
}
