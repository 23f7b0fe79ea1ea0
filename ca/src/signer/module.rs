//! Loading PKCS#11 modules once per process, and finding the one token a
//! URI names.
//!
//! A module may be `C_Initialize`d once per process and its `C_Finalize`
//! ends every session of every user of it, so the user and host CA keys on
//! one module (the usual case) must share one [`Pkcs11`] context. The
//! registry keeps each module loaded and initialised for the life of the
//! process: the CA never unloads a signing module while it runs.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock, PoisonError};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::slot::Slot;

use super::Error;
use super::uri::Pkcs11Uri;

static MODULES: OnceLock<Mutex<HashMap<PathBuf, Pkcs11>>> = OnceLock::new();

/// The initialised context for the URI's module, loading it on first use.
pub(super) fn load(uri: &Pkcs11Uri) -> Result<Pkcs11, Error> {
    let modules = MODULES.get_or_init(|| Mutex::new(HashMap::new()));
    // INVARIANT: nothing below panics while the lock is held; a poisoned
    // lock can only come from an allocation failure, and the map is still
    // consistent then.
    let mut modules = modules.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(context) = modules.get(&uri.module_path) {
        return Ok(context.clone());
    }
    let module = uri.module_path.display().to_string();
    if !uri.module_path.is_file() {
        return Err(Error::ModuleLoad {
            module,
            reason: "no such file".to_owned(),
        });
    }
    let context = Pkcs11::new(&uri.module_path).map_err(|e| Error::ModuleLoad {
        module: module.clone(),
        reason: e.to_string(),
    })?;
    match context.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
        Err(source) => return Err(Error::ModuleInit { module, source }),
    }
    modules.insert(uri.module_path.clone(), context.clone());
    Ok(context)
}

/// A token that matched, with its label for messages.
#[derive(Debug, Clone)]
pub(super) struct Token {
    pub(super) slot: Slot,
    pub(super) label: String,
}

/// The one token the URI's library, slot and token attributes select.
pub(super) fn find_token(context: &Pkcs11, uri: &Pkcs11Uri) -> Result<Token, Error> {
    let module = uri.module_path.display().to_string();
    let token_error = |operation, source| Error::Token {
        token: "?".to_owned(),
        operation,
        source,
    };
    if uri.library_manufacturer.is_some()
        || uri.library_description.is_some()
        || uri.library_version.is_some()
    {
        let info = context
            .get_library_info()
            .map_err(|e| token_error("C_GetInfo", e))?;
        let version = info.library_version();
        let matches = same(&uri.library_manufacturer, info.manufacturer_id())
            && same(&uri.library_description, info.library_description())
            && uri.library_version.is_none_or(|want| {
                want.major == version.major() && want.minor.is_none_or(|m| m == version.minor())
            });
        if !matches {
            return Err(Error::LibraryMismatch {
                module,
                library: format!(
                    "{} {} {}.{}",
                    info.manufacturer_id(),
                    info.library_description(),
                    version.major(),
                    version.minor()
                ),
            });
        }
    }
    let slots = context
        .get_slots_with_token()
        .map_err(|e| token_error("C_GetSlotList", e))?;
    let mut present = Vec::new();
    let mut matched = Vec::new();
    for slot in slots {
        let token = context
            .get_token_info(slot)
            .map_err(|e| token_error("C_GetTokenInfo", e))?;
        present.push(format!("`{}` (slot {})", token.label(), slot.id()));
        let mut ok = uri.slot_id.is_none_or(|id| id == slot.id())
            && same(&uri.token, token.label())
            && same(&uri.manufacturer, token.manufacturer_id())
            && same(&uri.serial, token.serial_number())
            && same(&uri.model, token.model());
        if ok && (uri.slot_description.is_some() || uri.slot_manufacturer.is_some()) {
            let info = context
                .get_slot_info(slot)
                .map_err(|e| token_error("C_GetSlotInfo", e))?;
            ok = same(&uri.slot_description, info.slot_description())
                && same(&uri.slot_manufacturer, info.manufacturer_id());
        }
        if ok {
            matched.push(Token {
                slot,
                label: token.label().to_owned(),
            });
        }
    }
    let present = if present.is_empty() {
        "none".to_owned()
    } else {
        present.join(", ")
    };
    match matched.len() {
        0 => Err(Error::TokenNotFound {
            uri: uri.to_string(),
            module,
            present,
        }),
        1 => Ok(matched.remove(0)),
        count => Err(Error::TokenAmbiguous {
            uri: uri.to_string(),
            count,
            present,
        }),
    }
}

/// A URI attribute matches when absent or equal. PKCS#11 pads these fields
/// with spaces; cryptoki trims the end, we trim the URI's value the same way.
fn same(want: &Option<String>, have: &str) -> bool {
    want.as_deref()
        .is_none_or(|w| w.trim_end_matches(' ') == have)
}
