//! AFL target `ssh_key`: see the function it calls.
fn main() {
    afl::fuzz!(|data: &[u8]| {
        shiftkey_ca::fuzzing::ssh_key(data);
    });
}
