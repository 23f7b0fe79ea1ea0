//! AFL target `ui_form`: form posts to the review UI through its real
//! router, over a real SQLite store (see `shiftkey_ca::fuzzing::UiForms`).
//! The CA is built on the first input of each forked child (a runtime made
//! before AFL forks would have lost its threads), in a directory of its
//! own that the child removes when its persistent loop ends; directories
//! of children that died (a crash, a timeout) are removed by the next.
use std::cell::OnceCell;
use std::path::PathBuf;

fn world_dir() -> PathBuf {
    let parent = std::env::temp_dir().join("shiftkey-fuzz-ui-form");
    if let Ok(entries) = std::fs::read_dir(&parent) {
        for entry in entries.flatten() {
            let pid = entry.file_name().to_string_lossy().into_owned();
            if !PathBuf::from("/proc").join(&pid).exists() {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
    let dir = parent.join(std::process::id().to_string());
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a directory for the fuzzed CA");
    dir
}

thread_local! {
    static DIR: OnceCell<PathBuf> = const { OnceCell::new() };
    static FORMS: OnceCell<shiftkey_ca::fuzzing::UiForms> = const { OnceCell::new() };
}

fn main() {
    afl::fuzz!(|data: &[u8]| {
        FORMS.with(|forms| {
            forms
                .get_or_init(|| {
                    let dir = DIR.with(|dir| dir.get_or_init(world_dir).clone());
                    shiftkey_ca::fuzzing::UiForms::new(&dir)
                })
                .post(data);
        });
    });
    if let Some(dir) = DIR.with(|dir| dir.get().cloned()) {
        let _ = std::fs::remove_dir_all(dir);
    }
}
