//! AFL target `cast`: asciicast events written by the bastion, read back
//! by the reader `shiftkey recordings cat` uses.
fn main() {
    afl::fuzz!(|data: &[u8]| {
        shiftkey_bastion::fuzzing::cast(data, shiftkey::fuzzing::cast_bytes);
    });
}
