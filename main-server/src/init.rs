//! `main-server init`: makes a data directory ready for `serve`. Each piece is made
//! only when missing, so running it again is safe and never replaces a key.

use std::fmt::Write as _;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use anyhow::Context;
use secrecy::ExposeSecret;
use shared_proto::{Clock, SolmePublicKey, SolmeSigningKey};

use crate::cli::InitArgs;
use crate::data_dir::DataDir;
use crate::db::{Db, DbTarget};
use crate::{auth, tls};
use shared_proto::files::{self, Access, Existing};

/// Creates what is missing and returns a human summary of what was made or kept.
pub fn run(args: &InitArgs, clock: &Clock) -> anyhow::Result<String> {
    let dir = DataDir::new(&args.data_dir);
    std::fs::create_dir_all(dir.root())
        .with_context(|| format!("creating {}", dir.root().display()))?;
    // The directory holds private keys: keep it closed to other users.
    std::fs::set_permissions(dir.root(), std::fs::Permissions::from_mode(0o700))
        .with_context(|| format!("restricting {}", dir.root().display()))?;
    let mut report = String::new();

    let signing_path = dir.solme_signing_key();
    let signing = if signing_path.exists() {
        let _ = writeln!(report, "kept     {}", signing_path.display());
        SolmeSigningKey::load(&signing_path)
            .with_context(|| format!("reading {}", signing_path.display()))?
    } else {
        let key = SolmeSigningKey::generate().context("generating Solme's signing key")?;
        key.save(&signing_path)
            .with_context(|| format!("writing {}", signing_path.display()))?;
        let _ = writeln!(
            report,
            "created  {} (Solme's signing key, 0600)",
            signing_path.display()
        );
        key
    };
    let public_path = dir.solme_public_key();
    if public_path.exists() {
        let existing = SolmePublicKey::load(&public_path)
            .with_context(|| format!("reading {}", public_path.display()))?;
        anyhow::ensure!(
            existing.fingerprint() == signing.public_key().fingerprint(),
            "{} does not belong to {}; remove it to have it written again",
            public_path.display(),
            signing_path.display()
        );
        let _ = writeln!(report, "kept     {}", public_path.display());
    } else {
        signing
            .public_key()
            .save(&public_path)
            .with_context(|| format!("writing {}", public_path.display()))?;
        let _ = writeln!(
            report,
            "created  {} (give this to local servers)",
            public_path.display()
        );
    }

    let now = clock.now();
    let (ca_cert, ca_key) = (dir.ca_cert(), dir.ca_key());
    let ca = if pair_exists(&ca_cert, &ca_key, "CA")? {
        let _ = writeln!(report, "kept     {}", ca_cert.display());
        tls::Issued {
            cert_pem: std::fs::read(&ca_cert)
                .with_context(|| format!("reading {}", ca_cert.display()))?,
            key_pem: std::fs::read(&ca_key)
                .with_context(|| format!("reading {}", ca_key.display()))?,
        }
    } else {
        let ca = tls::make_ca(now)?;
        files::write(&ca_key, &ca.key_pem, Access::Private, Existing::Refuse)?;
        files::write(&ca_cert, &ca.cert_pem, Access::Public, Existing::Refuse)?;
        let _ = writeln!(
            report,
            "created  {} (CA certificate local servers pin)",
            ca_cert.display()
        );
        ca
    };

    let (cert, key) = (dir.tls_cert(), dir.tls_key());
    if pair_exists(&cert, &key, "certificate")? {
        let _ = writeln!(
            report,
            "kept     {} (remove it and {} to make one for other names)",
            cert.display(),
            key.display()
        );
    } else {
        let issued = tls::make_server_cert(&ca, &args.hostnames, now)?;
        files::write(&key, &issued.key_pem, Access::Private, Existing::Refuse)?;
        files::write(&cert, &issued.cert_pem, Access::Public, Existing::Refuse)?;
        let mut names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
        names.extend(args.hostnames.iter().cloned());
        let _ = writeln!(
            report,
            "created  {} (ECDSA P-256, for {})",
            cert.display(),
            names.join(", ")
        );
    }

    let token_path = dir.admin_token();
    if token_path.exists() {
        let _ = writeln!(report, "kept     {}", token_path.display());
    } else {
        let token = auth::generate()?;
        files::write(
            &token_path,
            format!("{}\n", token.expose_secret()).as_bytes(),
            Access::Private,
            Existing::Refuse,
        )?;
        let _ = writeln!(
            report,
            "created  {} (operator token, 0600)",
            token_path.display()
        );
    }

    let target = DbTarget::from_options(
        dir.root(),
        args.database_url.as_ref().map(ExposeSecret::expose_secret),
    )?;
    Db::open(target.clone(), 1)?;
    let _ = writeln!(
        report,
        "database {} (migrations applied)",
        target.describe()
    );
    let _ = writeln!(
        report,
        "\nLocal servers need {} and {}.",
        public_path.display(),
        ca_cert.display()
    );
    Ok(report)
}

/// Whether both files of a certificate and its key exist (then they are kept); an
/// error when only one does, since a new `what` would overwrite the other's partner.
fn pair_exists(cert: &Path, key: &Path, what: &str) -> anyhow::Result<bool> {
    match (cert.exists(), key.exists()) {
        (true, true) => Ok(true),
        (false, false) => Ok(false),
        _ => anyhow::bail!(
            "only one of {} and {} exists; remove it to make a new {what}",
            cert.display(),
            key.display()
        ),
    }
}
