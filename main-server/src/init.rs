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
use crate::store::operators;
use crate::{tls, tokens};
use chrono::{DateTime, Utc};
use shared_proto::admin_api::Role;
use shared_proto::files::{self, Access, Existing};

/// The accounts the data directory's token files stand for.
pub const FIRST_ADMIN: &str = "admin";
pub const GATEWAY: &str = "mail-gateway";

/// Registers the token files of the data directory as accounts, unless accounts of
/// those names exist: `admin-token` is the first admin (so an installation from before
/// operator accounts keeps working with its one token), `gateway-token` the mail
/// gateway's service identity. Run by `init` and at every `serve` start.
pub fn adopt_token_files(db: &Db, dir: &DataDir, now: DateTime<Utc>) -> anyhow::Result<()> {
    let mut conn = db.write.get().context("connecting to the database")?;
    for (path, name, role) in [
        (dir.admin_token(), FIRST_ADMIN, Role::Admin),
        (dir.gateway_token(), GATEWAY, Role::Gateway),
    ] {
        if !path.exists() {
            continue;
        }
        let token = tokens::read_token_file(&path)?;
        let added = operators::insert_account(&mut conn, now, name, role, &token).map_err(|e| {
            anyhow::Error::new(e).context(format!("registering {}", path.display()))
        })?;
        if added {
            log::info!(
                "operator account {name} ({role}) made from {}",
                path.display()
            );
        }
    }
    Ok(())
}

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

    // Certificates by the system's clock, the one TLS clients check them against (see
    // `tls`), not the simulated one.
    let now = Utc::now();
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
        let current = tls::server_certificate(&dir, now, false)?;
        match current.renewed {
            Some(reason) => {
                let _ = writeln!(
                    report,
                    "renewed  {} ({reason}; now valid until {})",
                    cert.display(),
                    current.not_after
                );
            }
            None => {
                let _ = writeln!(
                    report,
                    "kept     {} (valid until {}; remove it and {} to make one for other names)",
                    cert.display(),
                    current.not_after,
                    key.display()
                );
            }
        }
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

    for (path, what) in [
        (dir.admin_token(), "first admin's token"),
        (dir.gateway_token(), "mail gateway's token"),
    ] {
        if path.exists() {
            let _ = writeln!(report, "kept     {}", path.display());
            continue;
        }
        let token = tokens::generate()?;
        files::write(
            &path,
            format!("{}\n", token.expose_secret()).as_bytes(),
            Access::Private,
            Existing::Refuse,
        )?;
        let _ = writeln!(report, "created  {} ({what}, 0600)", path.display());
    }

    let target = DbTarget::from_options(
        dir.root(),
        args.database_url.as_ref().map(ExposeSecret::expose_secret),
    )?;
    let db = Db::open(target.clone(), 1)?;
    adopt_token_files(&db, &dir, clock.now())?;
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
