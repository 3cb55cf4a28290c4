//! The receipt `import-license-file --receipt FILE` writes after an import: this
//! server's signed statement that it installed license file #N (see
//! `shared_proto::receipt`). The customer uploads it in Solme's portal or mails it to
//! licensing@; the next sync request says the same, so a receipt only matters for a
//! server that does not synchronize again soon.

use std::path::Path;

use chrono::{DateTime, Utc};
use shared_proto::files::{self, Access, Existing};
use shared_proto::messages::MESSAGE_VERSION;
use shared_proto::receipt::{self, Receipt};
use shared_proto::ServerIdentity;

use crate::config::Settings;
use crate::error::Error;
use crate::import::Changes;

/// Writes the receipt of the import `changes` made, and says what to do with it.
pub fn write(
    path: &Path,
    identity: &ServerIdentity,
    settings: &Settings,
    changes: &Changes,
    now: DateTime<Utc>,
) -> Result<String, Error> {
    let made = Receipt {
        version: MESSAGE_VERSION,
        server_id: settings.server_id,
        sequence: changes.sequence,
        revision: changes.revision,
        license_file_sha256: changes.file_sha256.clone(),
        installed_at: now,
        public_keys: identity.public_keys(),
    };
    let text = receipt::seal(identity, &made)?;
    files::write(path, text.as_bytes(), Access::Public, Existing::Replace)?;
    log::info!(
        "installation receipt written server_id={} sequence={}",
        settings.server_id,
        changes.sequence
    );
    Ok(format!(
        "Receipt for license file #{} written to {}.\n\
         Upload it in Solme's customer portal or email it to {}, so Solme knows \
         this server installed the file.",
        changes.sequence,
        path.display(),
        crate::wording::licensing_address()
    ))
}
