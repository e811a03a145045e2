//! Command line: `serve` (the default), `migrate`, `openapi`, `admin create`, `keys rotate`,
//! `backup`, `restore`, `attachments verify`, `demo`, `dossier verify`, `audit verify`,
//! `audit checkpoint`.

use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use eportfolio::accounts::service as accounts;
use eportfolio::clock::SystemClock;
use eportfolio::{db, AppState, Config};

#[derive(Parser)]
#[command(
    name = "eportfolio",
    version,
    about = "Competence portfolio for BT/ST doctors"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the API (default).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Print the OpenAPI document.
    Openapi,
    /// Administration.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// Write an online backup of everything (the database, every attachment, a manifest
    /// of their SHA-256 hashes) to a new archive file.
    Backup {
        /// The backup file to create.
        file: std::path::PathBuf,
        /// Also the data directory's keys (master keys, JWT secret), sealed with the
        /// passphrase in EPORTFOLIO_BACKUP_PASSPHRASE.
        #[arg(long)]
        include_keys: bool,
    },
    /// Restore a backup into the empty database named by DATABASE_URL and the empty
    /// attachment store of EPORTFOLIO_DATA_DIR; verifies every attachment and the audit
    /// chain. Keys in the backup are restored when EPORTFOLIO_BACKUP_PASSPHRASE is set.
    Restore { file: std::path::PathBuf },
    /// Stored attachments.
    Attachments {
        #[command(subcommand)]
        command: AttachmentsCommand,
    },
    /// Seed a demo region (five trainees at different stages, their supervisors, a
    /// director and an external assessor) and print their logins.
    Demo,
    /// Dossiers.
    Dossier {
        #[command(subcommand)]
        command: DossierCommand,
    },
    /// The audit log.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// The master keys that seal secrets at rest.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
}

#[derive(Subcommand)]
enum AttachmentsCommand {
    /// Re-read every stored attachment and report those whose bytes no longer match
    /// their SHA-256; exits non-zero if any does not.
    Verify,
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Make a new master key (in the data directory's key file; with
    /// EPORTFOLIO_MASTER_KEY set, the key given there, the old one listed in
    /// EPORTFOLIO_RETIRED_MASTER_KEYS), re-seal every secret under it, and replace the
    /// dossier signing key (the retired one keeps verifying what it signed).
    Rotate,
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Recompute the hash chain; exits non-zero if any entry was changed or removed.
    /// With --checkpoint, also checks that the chain still holds every entry the signed
    /// checkpoints in FILE vouch for (which catches a cut-off or rehashed chain).
    Verify {
        /// A file of checkpoints (from `audit checkpoint` or the server's log).
        #[arg(long)]
        checkpoint: Vec<std::path::PathBuf>,
    },
    /// Print a signed checkpoint of the chain's head, to keep outside the database.
    Checkpoint,
}

#[derive(Subcommand)]
enum DossierCommand {
    /// Check a dossier file (JSON or PDF): authentic and unchanged, and which records it
    /// covers. Exits non-zero when it is not. With --public-key it runs offline;
    /// without, it reads the keys from the database.
    Verify {
        file: std::path::PathBuf,
        /// A public key file (PEM, or base64 as `GET /api/v1/dossier-keys` gives it).
        #[arg(long)]
        public_key: Option<std::path::PathBuf>,
    },
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Invite the first (or another) administrator; prints the invitation link.
    Create {
        #[arg(long)]
        email: String,
        /// The region the administrator manages (created if missing).
        #[arg(long, default_value = "Region Stockholm")]
        region: String,
    },
}

/// The log on stderr (`LOG_LEVEL`, `LOG_FORMAT`), and with `SECURITY_LOG_FILE` the
/// security events (target `security`, see `telemetry::security`) again as JSON lines
/// in that file, whatever `LOG_LEVEL` lets through, for shipping to a SIEM. With
/// `OTEL_EXPORTER_OTLP_ENDPOINT`, this service's spans also go to that OTLP collector
/// (`telemetry::traces`); the guard returned flushes them when `main` ends.
fn init_logging(json: bool, default_level: &str) -> Option<eportfolio::telemetry::traces::Guard> {
    use tracing_subscriber::filter::{LevelFilter, Targets};
    use tracing_subscriber::prelude::*;
    let filter = tracing_subscriber::EnvFilter::try_from_env("LOG_LEVEL")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    let security = std::env::var_os("SECURITY_LOG_FILE")
        .filter(|p| !p.is_empty())
        .and_then(|path| {
            match std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
            {
                Ok(file) => Some(
                    tracing_subscriber::fmt::layer()
                        .json()
                        .with_writer(std::sync::Mutex::new(file))
                        .with_filter(Targets::new().with_target(
                            eportfolio::telemetry::security::TARGET,
                            LevelFilter::INFO,
                        )),
                ),
                Err(e) => {
                    eprintln!("SECURITY_LOG_FILE {}: {e}", path.to_string_lossy());
                    None
                }
            }
        });
    let (otel, guard) = match eportfolio::telemetry::traces::layer() {
        // Only this crate's spans (and its events, as span events): the exporter's own
        // HTTP client must not trace its exports, and security events have their stream.
        Some((layer, guard)) => (
            Some(layer.with_filter(Targets::new().with_target("eportfolio", LevelFilter::INFO))),
            Some(guard),
        ),
        None => (None, None),
    };
    let registry = tracing_subscriber::registry().with(security).with(otel);
    if json {
        registry
            .with(tracing_subscriber::fmt::layer().json().with_filter(filter))
            .init();
    } else {
        registry
            .with(tracing_subscriber::fmt::layer().with_filter(filter))
            .init();
    }
    guard
}

fn main() -> ExitCode {
    eportfolio::limit_malloc_arenas();
    // Databases, backups, keys and mail written by any command are for this user only.
    eportfolio::storage::restrict_new_files();
    let cli = Cli::parse();
    if let Some(Command::Openapi) = cli.command {
        print!("{}", eportfolio::openapi_json());
        return ExitCode::SUCCESS;
    }
    if let Some(Command::Dossier {
        command:
            DossierCommand::Verify {
                file,
                public_key: Some(key),
            },
    }) = &cli.command
    {
        return report(dossier_verify_offline(file, key));
    }
    let config = match Config::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    // The demo drives hundreds of requests; its log would bury the logins it prints.
    // So does `audit checkpoint`'s: its one line on stdout is meant for a file.
    let level = if matches!(
        cli.command,
        Some(Command::Demo)
            | Some(Command::Audit {
                command: AuditCommand::Checkpoint
            })
    ) {
        "warn"
    } else {
        "info"
    };
    // Held to the end of `main`, so that the last spans are exported.
    let _traces = init_logging(config.log_json, level);
    let result = match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(config),
        Command::Migrate => migrate(config),
        Command::Admin {
            command: AdminCommand::Create { email, region },
        } => admin_create(config, &email, &region),
        Command::Audit {
            command: AuditCommand::Verify { checkpoint },
        } => audit_verify(config, &checkpoint),
        Command::Audit {
            command: AuditCommand::Checkpoint,
        } => audit_checkpoint(config),
        Command::Backup { file, include_keys } => backup(config, &file, include_keys),
        Command::Restore { file } => restore(config, &file),
        Command::Attachments {
            command: AttachmentsCommand::Verify,
        } => attachments_verify(config),
        Command::Dossier {
            command: DossierCommand::Verify { file, .. },
        } => dossier_verify(config, &file),
        Command::Demo => demo(config),
        Command::Keys {
            command: KeysCommand::Rotate,
        } => keys_rotate(config),
        Command::Openapi => Ok(()),
    };
    report(result)
}

fn report(result: Result<(), eportfolio::error::AppError>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn print_verification(
    v: &eportfolio::dossier::signing::Verification,
) -> Result<(), eportfolio::error::AppError> {
    println!(
        "{}",
        serde_json::to_string_pretty(v).map_err(eportfolio::error::AppError::internal)?
    );
    if v.authentic {
        Ok(())
    } else {
        Err(eportfolio::error::AppError::Unprocessable(format!(
            "not authentic: {}",
            v.reason.clone().unwrap_or_default()
        )))
    }
}

fn read_file(path: &std::path::Path) -> Result<Vec<u8>, eportfolio::error::AppError> {
    std::fs::read(path).map_err(|e| {
        eportfolio::error::AppError::Unprocessable(format!("cannot read {}: {e}", path.display()))
    })
}

fn dossier_verify_offline(
    file: &std::path::Path,
    key: &std::path::Path,
) -> Result<(), eportfolio::error::AppError> {
    use eportfolio::dossier::signing;
    let text = String::from_utf8(read_file(key)?).map_err(|_| {
        eportfolio::error::AppError::Unprocessable("the key file is not text".into())
    })?;
    let key = signing::parse_public_key(&text)?;
    let id = signing::key_id(key.as_bytes());
    print_verification(&signing::verify(&read_file(file)?, &[(id, key)]))
}

fn dossier_verify(
    config: Config,
    file: &std::path::Path,
) -> Result<(), eportfolio::error::AppError> {
    let pool = db::connect(&config.database_url, 1)?;
    let mut conn = pool.get()?;
    let keys = eportfolio::dossier::signing::verifying_keys(&mut conn)?;
    print_verification(&eportfolio::dossier::signing::verify(
        &read_file(file)?,
        &keys,
    ))
}

fn demo(config: Config) -> Result<(), eportfolio::error::AppError> {
    let url = config.public_url.clone();
    let logins = eportfolio::demo::run(config)?;
    print!("{}", eportfolio::demo::report(&logins, &url));
    Ok(())
}

fn migrate(config: Config) -> Result<(), eportfolio::error::AppError> {
    let pool = db::connect(&config.database_url, 1)?;
    let mut conn = pool.get()?;
    let applied = db::migrate(&mut conn)?;
    println!("applied {} migration(s)", applied.len());
    Ok(())
}

fn backup(
    config: Config,
    file: &std::path::Path,
    include_keys: bool,
) -> Result<(), eportfolio::error::AppError> {
    let blobs = eportfolio::storage::open_store(&config)?;
    let summary = eportfolio::backup::backup(
        &eportfolio::backup::Source {
            database_url: &config.database_url,
            blobs: &*blobs,
            data_dir: &config.data_dir,
        },
        file,
        include_keys,
    )?;
    println!("backup written to {}: {summary}", file.display());
    if !include_keys {
        // The secrets in it are sealed; without the key the backup cannot be used.
        println!(
            "keep the master key apart from it (EPORTFOLIO_MASTER_KEY, or {}): \
             a restore needs it",
            config.data_dir.join("master-keys").display()
        );
    }
    Ok(())
}

fn restore(config: Config, file: &std::path::Path) -> Result<(), eportfolio::error::AppError> {
    let blobs = eportfolio::storage::open_store(&config)?;
    let summary = eportfolio::backup::restore(
        &eportfolio::backup::Target {
            database_url: &config.database_url,
            blobs: &*blobs,
            data_dir: &config.data_dir,
        },
        file,
    )?;
    println!("restored {summary}");
    println!("every attachment matches its SHA-256; audit log intact");
    Ok(())
}

fn attachments_verify(config: Config) -> Result<(), eportfolio::error::AppError> {
    let blobs = eportfolio::storage::open_store(&config)?;
    let pool = db::connect(&config.database_url, 1)?;
    let mut conn = pool.get()?;
    let findings = eportfolio::storage::verify_attachments(&mut conn, &*blobs)?;
    for f in &findings {
        println!("attachment {} ({}): {}", f.id, f.storage_key, f.problem);
    }
    if findings.is_empty() {
        println!("every attachment matches its SHA-256");
        Ok(())
    } else {
        Err(eportfolio::error::AppError::Internal(format!(
            "{} attachment(s) do not match their SHA-256",
            findings.len()
        )))
    }
}

fn audit_verify(
    config: Config,
    checkpoint_files: &[std::path::PathBuf],
) -> Result<(), eportfolio::error::AppError> {
    use eportfolio::audit::checkpoint;
    use eportfolio::error::AppError;
    let mut checkpoints = Vec::new();
    for file in checkpoint_files {
        let text = String::from_utf8(read_file(file)?)
            .map_err(|_| AppError::Unprocessable(format!("{} is not text", file.display())))?;
        checkpoints.extend(
            checkpoint::parse_lines(&text)
                .map_err(|e| AppError::Unprocessable(format!("{}: {e}", file.display())))?,
        );
    }
    let pool = db::connect(&config.database_url, 1)?;
    let mut conn = pool.get()?;
    let v = eportfolio::audit::verify(&mut conn)?;
    if !v.intact {
        return Err(AppError::Internal(format!(
            "audit log broken at entry {}: {} ({} entries before it verify)",
            v.first_broken.unwrap_or_default(),
            v.reason.unwrap_or_default(),
            v.entries
        )));
    }
    println!("audit log intact: {} entries verified", v.entries);
    if v.data_erased > 0 {
        // Never counted silently as intact content.
        println!(
            "of which {} with content removed by an erasure or retention (link and digest \
             verified, the data gone)",
            v.data_erased
        );
    }
    if v.content_removed > 0 {
        // Version-1 entries redacted (audit::redaction): their hash cannot be recomputed.
        println!(
            "of which {} version-1 entries with content removed, link verified (a later \
             redaction names each with its hash)",
            v.content_removed
        );
    }
    if checkpoints.is_empty() {
        return Ok(());
    }
    let keys = eportfolio::dossier::signing::verifying_keys(&mut conn)?;
    let findings = checkpoint::check(&mut conn, &checkpoints, &keys)?;
    let mut failed = 0;
    for f in &findings {
        match &f.reason {
            None => println!("checkpoint of entry {} ({}): holds", f.seq, f.at),
            Some(reason) => {
                failed += 1;
                println!("checkpoint of entry {} ({}): FAILS: {reason}", f.seq, f.at);
            }
        }
    }
    if failed > 0 {
        return Err(AppError::Internal(format!(
            "audit log does not hold {failed} of {} checkpoint(s)",
            findings.len()
        )));
    }
    println!("all {} checkpoint(s) hold", findings.len());
    Ok(())
}

fn audit_checkpoint(config: Config) -> Result<(), eportfolio::error::AppError> {
    let state = AppState::new(config, Arc::new(SystemClock))?;
    let now = state.clock.now();
    let mut conn = state.pool.get()?;
    let keys = eportfolio::secrets::required(state.pool.keyring())?;
    let (key_id, key) = eportfolio::dossier::signing::current_key(&mut conn, keys)?;
    let made = eportfolio::audit::checkpoint::make(&mut conn, now, &key_id, &key)?;
    match made {
        Some(cp) => {
            println!(
                "{}",
                serde_json::to_string(&cp).map_err(eportfolio::error::AppError::internal)?
            );
            Ok(())
        }
        None => Err(eportfolio::error::AppError::Unprocessable(
            "the audit log is empty: nothing to vouch for yet".into(),
        )),
    }
}

fn admin_create(
    config: Config,
    email: &str,
    region: &str,
) -> Result<(), eportfolio::error::AppError> {
    let state = AppState::new(config, Arc::new(SystemClock))?;
    let now = state.clock.now();
    let cfg = state.config.clone();
    let mut conn = state.pool.get()?;
    let (invitation, mail, link) = db::write_tx(&mut conn, |c| {
        accounts::bootstrap_admin(c, &cfg, now, email, region)
    })?;
    if let Err(e) = state.mailer.send(&mail) {
        eprintln!("note: the invitation mail could not be sent ({e}); use the link below");
    }
    println!(
        "Invited {} as administrator of {region}.\nOpen this link (valid until {}) or accept through the API:\n\n  {link}\n\n  POST /api/v1/auth/invitations/<token>/accept  {{\"password\": \"...\"}}",
        invitation.email, invitation.expires_at
    );
    Ok(())
}

fn keys_rotate(config: Config) -> Result<(), eportfolio::error::AppError> {
    use eportfolio::clock::Clock;
    use eportfolio::secrets::{self, Keyring};
    let pool = db::connect(&config.database_url, 1)?;
    let mut conn = pool.get()?;
    db::migrate(&mut conn)?;
    let now = SystemClock.now();
    let keyring = Arc::new(Keyring::load(&config.data_dir)?);
    let old = keyring.current_id();
    // A wrong key is refused before anything changes.
    db::write_tx(&mut conn, |c| secrets::check_keys(c, &keyring, now))?;
    if std::env::var("EPORTFOLIO_MASTER_KEY").map_or(true, |k| k.trim().is_empty()) {
        keyring.add_key()?;
    }
    let new = keyring.current_id();
    let (sealed, signing_key) = db::write_tx(&mut conn, |c| {
        secrets::check_keys(c, &keyring, now)?;
        let sealed = secrets::seal_everything(c, &keyring)?;
        let signing_key = eportfolio::dossier::signing::rotate_key(c, &keyring, now)?;
        Ok((sealed, signing_key))
    })?;
    println!("master key {old} -> {new}: {sealed} secret(s) sealed under {new}");
    println!(
        "dossier signing key is now {signing_key}; the retired key keeps verifying what it signed"
    );
    println!("restart the running servers so that they seal new secrets under {new}");
    Ok(())
}

fn serve(config: Config) -> Result<(), eportfolio::error::AppError> {
    let bind = config.bind;
    let backend = if config.is_postgres() {
        "postgresql"
    } else {
        "sqlite"
    };
    let state = AppState::new(config, Arc::new(SystemClock))?;
    let mut conn = state.pool.get()?;
    if accounts::user_count(&mut conn)? == 0 {
        tracing::warn!(
            "no accounts yet: create the first administrator with \
             `cargo run --release -- admin create --email you@example.org`"
        );
    }
    drop(conn);
    let listener = std::net::TcpListener::bind(bind)
        .map_err(|e| eportfolio::error::AppError::Config(format!("cannot bind {bind}: {e}")))?;
    tracing::info!(%bind, backend, "serving; API docs at http://{bind}/docs/");
    actix_web::rt::System::new().block_on(async move {
        eportfolio::server(state, listener)?
            .await
            .map_err(eportfolio::error::AppError::internal)
    })
}
