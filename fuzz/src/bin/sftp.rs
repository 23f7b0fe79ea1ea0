//! AFL target `sftp`: see the function it calls.
fn main() {
    afl::fuzz!(|data: &[u8]| {
        shiftkey_bastion::fuzzing::sftp(data);
    });
}
