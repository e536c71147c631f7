//! chartroom: the admin and automation command line over chartroom-core.
//!
//! Scripts rely on this interface: verbs, flags, JSON fields and exit codes are documented in
//! the README and change only with care.

#![forbid(unsafe_code)]

mod book;
mod exchange;
mod records;
mod secrets;
mod sync;
mod trail;

use std::path::PathBuf;
use std::process::ExitCode;

use chartroom_core::{vault_config, CoreError, ErrorKind, RecoveryKey, Role, Session, User};
use clap::{Args, Parser, Subcommand};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};

use secrets::{Inputs, SecretSource};

/// Exit codes, in the sysexits(3) style.
mod exit {
    pub const OK: u8 = 0;
    pub const USAGE: u8 = 64;
    pub const DATA: u8 = 65;
    pub const NO_INPUT: u8 = 66;
    pub const IO: u8 = 74;
    pub const TEMP_FAIL: u8 = 75;
    pub const NO_PERM: u8 = 77;
}

#[derive(Debug, Parser)]
#[command(
    name = "chartroom",
    version,
    about = "Chartroom: the clinic's encrypted record, from the command line."
)]
struct Cli {
    /// The vault folder [env: CHARTROOM_VAULT; default: ~/.local/share/chartroom/vault].
    #[arg(long, global = true, value_name = "DIR")]
    vault: Option<PathBuf>,
    /// The user acting [env: CHARTROOM_USER].
    #[arg(long, global = true, value_name = "NAME", env = "CHARTROOM_USER")]
    user: Option<String>,
    /// Print one JSON document on stdout; errors as JSON on stderr.
    #[arg(long, global = true)]
    json: bool,
    /// Read the password (and then the new password, where one is needed) from standard input,
    /// one per line, instead of CHARTROOM_PASSWORD or a prompt.
    #[arg(long, global = true)]
    password_stdin: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create, inspect and manage the encrypted vault.
    #[command(subcommand)]
    Vault(VaultCommand),
    /// Manage the clinic's users.
    #[command(subcommand)]
    User(UserCommand),
    /// Read, verify and export the audit trail.
    #[command(subcommand)]
    Audit(trail::AuditCommand),
    /// Alerts about suspicious access: list and acknowledge.
    #[command(subcommand, alias = "alert")]
    Alerts(trail::AlertsCommand),
    /// Clinic settings: idle timeout, break-the-glass time box, alert thresholds, hours.
    #[command(subcommand)]
    Settings(trail::SettingsCommand),
    /// Register, find and open patients; care teams; break the glass.
    #[command(subcommand, alias = "patients")]
    Patient(records::PatientCommand),
    /// Draft, sign, amend and list clinical notes.
    #[command(subcommand, alias = "notes")]
    Note(records::NoteCommand),
    /// Open and list encounters (visits, calls).
    #[command(subcommand, alias = "encounters")]
    Encounter(records::EncounterCommand),
    /// Record and list vital signs.
    #[command(subcommand, alias = "vital")]
    Vitals(records::VitalsCommand),
    /// The problem list: add, list, resolve.
    #[command(subcommand, alias = "problems")]
    Problem(records::ProblemCommand),
    /// Allergies and intolerances: add, "none known", list, resolve.
    #[command(subcommand, alias = "allergies")]
    Allergy(records::AllergyCommand),
    /// Medications: add, list, stop.
    #[command(subcommand, aliases = ["medications", "meds"])]
    Medication(records::MedicationCommand),
    /// Immunizations: add, list, mark entered in error.
    #[command(subcommand, aliases = ["immunizations", "vaccination", "vaccinations"])]
    Immunization(records::ImmunizationCommand),
    /// Lab results: add, list (a test's trend with --loinc), correct, mark entered in error.
    #[command(subcommand, name = "result", aliases = ["results", "lab"])]
    LabResult(records::ResultCommand),
    /// Lab reports (a panel's results together): add, list.
    #[command(subcommand, name = "report", alias = "reports")]
    LabReport(records::ReportCommand),
    /// Clinicians' working hours and days off.
    #[command(subcommand, alias = "schedules")]
    Schedule(book::ScheduleCommand),
    /// The clinic's appointment types and their lengths.
    #[command(subcommand, name = "appointment-type", alias = "appointment-types")]
    AppointmentType(book::AppointmentTypeCommand),
    /// The appointment book: book, list, free slots, move, cancel, arrive, room, no-show, start.
    #[command(subcommand, aliases = ["appointments", "appt"])]
    Appointment(book::AppointmentCommand),
    /// Export records, encrypted (age) as FHIR R4, for another clinic; recorded as a disclosure.
    Export {
        #[command(flatten)]
        args: exchange::ExportArgs,
        #[command(flatten)]
        recovery: RecoveryArg,
    },
    /// Import records: another Chartroom vault's export, or FHIR R4 from another system (checked whole first; never twice).
    Import(exchange::ImportArgs),
    /// Audit sync with the clinic's collector: enroll, status, push.
    #[command(subcommand)]
    Sync(sync::SyncCommand),
    /// A patient's accounting of disclosures: every export that held their record.
    Disclosures {
        /// The patient's id.
        patient: i64,
    },
    /// Fill the vault with a synthetic, obviously fictional clinic for demos and benchmarks
    /// (creating the vault, with --user as its administrator, if there is none).
    Demo {
        #[arg(long, default_value_t = 200)]
        patients: u32,
        /// The same seed (and --as-of) always gives the same clinic.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// The clinic's "today": visits happen before it (default: today).
        #[arg(long, value_name = "DATE")]
        as_of: Option<String>,
        /// One patient in N gets a long history (200 encounters, ~2,000 observations); 0 for none.
        #[arg(long, value_name = "N", default_value_t = 1000)]
        long_chart_every: u32,
    },
}

#[derive(Debug, Subcommand)]
enum VaultCommand {
    /// Create a new vault with a first administrator; prints the recovery key once.
    Init {
        /// The first administrator's user name.
        #[arg(long, value_name = "NAME")]
        admin: String,
    },
    /// Show the vault's format and key slots. Needs no password.
    Info,
    /// Print the raw database key (64 hex digits) for standard SQLCipher tools.
    ExportKey(RecoveryArg),
    /// Re-encrypt the database under a new random key; every password keeps working.
    Rekey(RecoveryArg),
    /// Replace the recovery key; the old one stops working. Prints the new key once.
    NewRecoveryKey(RecoveryArg),
    /// Rotate the keys a suspected leak or a departure calls for: the database key now, the
    /// clinical key now with the recovery key, otherwise at the next physician's or nurse's
    /// sign-in (a role change, a disable or a reset of a clinician owes it by itself).
    Rotate {
        /// Why, for the audit trail.
        #[arg(long, value_name = "TEXT", default_value = "")]
        reason: String,
        #[command(flatten)]
        recovery: RecoveryArg,
    },
    /// Verify the security log (who may do what, signed) and the audit trail; exits 65 naming
    /// the first bad entry. Needs an administrator, an auditor or the recovery key.
    Verify(RecoveryArg),
    /// Hand the clinical key to the physicians and nurses still waiting for it (it happens at
    /// any of their colleagues' sign-ins too); needs a physician, a nurse or the recovery key.
    HandOver(RecoveryArg),
    /// Copy the whole vault, consistently, into a new folder while it stays in use. The copy
    /// is encrypted and opens with the same passwords and recovery key.
    Backup {
        /// The new folder to write (it must not exist yet).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        #[command(flatten)]
        recovery: RecoveryArg,
    },
    /// Put a backup back in place of the vault (which is kept beside it, renamed). Sign in
    /// with the passwords or recovery key valid when the backup was taken. Sync then goes on
    /// from the backup as a new, signed chain epoch.
    Restore {
        /// The backup's folder (as `vault backup --out` wrote it); it is left as it is.
        #[arg(long, value_name = "DIR")]
        from: PathBuf,
        #[command(flatten)]
        recovery: RecoveryArg,
    },
}

#[derive(Debug, Args)]
struct RecoveryArg {
    /// Unlock with the recovery key instead of a password. Without a value, the key is read
    /// from CHARTROOM_RECOVERY_KEY, standard input (with --password-stdin) or a prompt.
    #[arg(long, value_name = "KEY", num_args = 0..=1, default_missing_value = "")]
    recovery_key: Option<String>,
}

/// For verbs that only take a password.
const NO_RECOVERY: RecoveryArg = RecoveryArg { recovery_key: None };

#[derive(Debug, Subcommand)]
enum UserCommand {
    /// Add a user with a role; their password comes from CHARTROOM_NEW_PASSWORD or a prompt.
    Add {
        name: String,
        /// admin, physician, nurse, front_desk or auditor.
        #[arg(long)]
        role: String,
        /// The user's family name (lets the same-family-name alert recognise relatives).
        #[arg(long, value_name = "NAME")]
        family_name: Option<String>,
    },
    /// Give a user another role.
    SetRole {
        name: String,
        /// admin, physician, nurse, front_desk or auditor.
        #[arg(long)]
        role: String,
    },
    /// List users, their roles and whether they are disabled.
    List,
    /// Change your own password, or (admin) reset another user's.
    Passwd {
        name: Option<String>,
        #[command(flatten)]
        recovery: RecoveryArg,
    },
    /// Disable a user: their password stops opening the vault; their history stays.
    Disable { name: String },
    /// Enable a disabled user again with a new password (from CHARTROOM_NEW_PASSWORD or a
    /// prompt): their old password stays useless.
    Enable { name: String },
}

/// A failure as the command line reports it.
#[derive(Debug)]
struct Failure {
    code: &'static str,
    message: String,
    exit: u8,
    /// More for scripts beside the code and message (a possible duplicate's candidates).
    detail: Option<(&'static str, Value)>,
}

impl Failure {
    fn usage(message: impl Into<String>) -> Self {
        Failure {
            code: "usage",
            message: message.into(),
            exit: exit::USAGE,
            detail: None,
        }
    }
}

impl From<CoreError> for Failure {
    fn from(e: CoreError) -> Self {
        let exit = match e.kind() {
            ErrorKind::NoVault => exit::NO_INPUT,
            ErrorKind::BadData => exit::DATA,
            ErrorKind::AuthFailed | ErrorKind::Forbidden => exit::NO_PERM,
            ErrorKind::Temporary => exit::TEMP_FAIL,
            ErrorKind::Io => exit::IO,
        };
        let detail = e
            .duplicate_candidates()
            .map(|c| ("candidates", serde_json::to_value(c).unwrap_or(Value::Null)))
            .or_else(|| {
                e.import_matches()
                    .map(|m| ("matches", serde_json::to_value(m).unwrap_or(Value::Null)))
            })
            .or_else(|| {
                e.field_errors()
                    .map(|f| ("fields", serde_json::to_value(f).unwrap_or(Value::Null)))
            });
        Failure {
            code: e.code(),
            message: e.to_string(),
            exit,
            detail,
        }
    }
}

/// What a command prints: a JSON document, and the same for people. `exit` is 0 except for
/// verbs whose result is itself a finding (a broken audit trail).
struct Output {
    json: Value,
    text: String,
    exit: u8,
}

impl Output {
    fn new(json: Value, text: impl Into<String>) -> Output {
        Output {
            json,
            text: text.into(),
            exit: exit::OK,
        }
    }
}

fn main() -> ExitCode {
    chartroom_core::restrict_new_files();
    let wants_json = std::env::args().any(|a| a == "--json");
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            use clap::error::ErrorKind as K;
            if matches!(
                e.kind(),
                K::DisplayHelp | K::DisplayVersion | K::DisplayHelpOnMissingArgumentOrSubcommand
            ) {
                let _ = e.print();
                return ExitCode::from(
                    if e.kind() == K::DisplayHelpOnMissingArgumentOrSubcommand {
                        exit::USAGE
                    } else {
                        exit::OK
                    },
                );
            }
            if wants_json {
                let message = e
                    .kind()
                    .as_str()
                    .map_or_else(|| e.to_string(), str::to_owned);
                report(true, &Failure::usage(message));
            } else {
                let _ = e.print();
            }
            return ExitCode::from(exit::USAGE);
        }
    };
    match run(&cli) {
        Ok(out) => {
            if cli.json {
                if !out.json.is_null() {
                    println!("{}", out.json);
                }
            } else if !out.text.is_empty() {
                println!("{}", terminal_safe(out.text.trim_end()));
            }
            ExitCode::from(out.exit)
        }
        Err(failure) => {
            report(cli.json, &failure);
            ExitCode::from(failure.exit)
        }
    }
}

fn report(json: bool, failure: &Failure) {
    if json {
        let mut error = json!({"code": failure.code, "message": failure.message});
        if let (Some((key, value)), Value::Object(map)) = (&failure.detail, &mut error) {
            map.insert((*key).to_owned(), value.clone());
        }
        eprintln!("{}", json!({ "error": error }));
    } else {
        eprintln!("chartroom: {}", terminal_safe(&failure.message));
    }
}

/// Text for a terminal: control characters (an escape sequence in a name or an imported
/// file could recolour the screen or fake a message) shown as `?`; lines and tabs kept.
fn terminal_safe(text: &str) -> std::borrow::Cow<'_, str> {
    if text
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        text.chars()
            .map(|c| {
                if c.is_control() && c != '\n' && c != '\t' {
                    '?'
                } else {
                    c
                }
            })
            .collect::<String>()
            .into()
    } else {
        text.into()
    }
}

fn run(cli: &Cli) -> Result<Output, Failure> {
    let config = vault_config(cli.vault.clone());
    let mut inputs = Inputs::new(cli.password_stdin);
    match &cli.command {
        Command::Vault(VaultCommand::Init { admin }) => {
            let password = inputs.initial_password(admin)?;
            let (session, recovery) = Session::create(config.clone(), admin, &password)?;
            let vault_id = session.vault_id()?;
            let root = session.root_fingerprint()?.unwrap_or_default();
            session.lock()?;
            let key = recovery.display_grouped();
            Ok(Output {
                exit: exit::OK,
                json: json!({
                    "vault": config.dir,
                    "vault_id": vault_id,
                    "admin": admin,
                    "recovery_key": key.expose_secret(),
                    "root_fingerprint": root,
                }),
                text: format!(
                    "Created a Chartroom vault in {}.\nAdministrator: {admin}\n\n{}\n\nSecurity log root key fingerprint: {root}\nKeep it with the recovery key: `chartroom vault verify` shows it, and it must match.",
                    config.dir.display(),
                    recovery_notice(&recovery)
                ),
            })
        }
        Command::Vault(VaultCommand::Info) => {
            let info = chartroom_core::vault_info(&config)?;
            let users: Vec<&str> = info
                .slots
                .iter()
                .filter(|s| s.kind == chartroom_core::SlotKind::User)
                .map(|s| s.owner.as_str())
                .collect();
            let mut text = format!(
                "Vault:          {}\nVault id:       {}\nFormat:         {} version {}\nCreated:        {}\nKey epoch:      {}{}\n\nKey slots:\n",
                config.dir.display(),
                info.vault_id,
                info.format,
                info.format_version,
                info.created_at,
                info.key_epoch,
                if info.rekey_pending { " (a rekey was interrupted; it is finished at the next unlock)" } else { "" },
            );
            for s in &info.slots {
                let kind = match s.kind {
                    chartroom_core::SlotKind::User => "user",
                    chartroom_core::SlotKind::Recovery => "recovery",
                };
                text.push_str(&format!(
                    "  {:<24} {:<9} argon2id m={} MiB t={} p={}\n",
                    s.owner,
                    kind,
                    s.kdf.memory_kib / 1024,
                    s.kdf.iterations,
                    s.kdf.parallelism
                ));
            }
            let mut doc = serde_json::to_value(&info).map_err(|e| Failure::usage(e.to_string()))?;
            doc["vault"] = json!(config.dir);
            doc["users"] = json!(users);
            Ok(Output::new(doc, text))
        }
        Command::Vault(VaultCommand::Rotate { reason, recovery }) => {
            let mut session = unlock(cli, &config, &mut inputs, recovery)?;
            let clinical_now = session.rotate_keys(reason)?;
            let owed = session.clinical_rotation_pending()?;
            session.lock()?;
            let text = format!(
                "The database key was rotated: copies of the key slot file taken before open nothing current.\n{}",
                if clinical_now {
                    "The clinical key was rotated and every clinical field re-sealed under the new one."
                } else if owed {
                    "The clinical key rotates at the next sign-in of a physician or nurse (it needs someone who holds it)."
                } else {
                    "There is no clinical key to rotate yet."
                }
            );
            Ok(Output::new(
                json!({"database_key_rotated": true, "clinical_key": if clinical_now { "rotated" } else if owed { "pending" } else { "none" }}),
                text,
            ))
        }
        Command::Vault(VaultCommand::Verify(rec)) => {
            let mut session = unlock(cli, &config, &mut inputs, rec)?;
            let v = session.verify_vault()?;
            session.lock()?;
            let log = &v.security_log;
            let mut text = if log.ok {
                format!(
                    "The security log is intact: {} entries, root key {}.",
                    log.entries,
                    log.root_fingerprint.as_deref().unwrap_or("(none yet)")
                )
            } else {
                format!(
                    "THE SECURITY LOG HAS BEEN ALTERED. First bad entry: {}.\n{}.",
                    log.first_bad_seq.unwrap_or(0),
                    log.reason.as_deref().unwrap_or_default()
                )
            };
            text.push('\n');
            text.push_str(&if v.audit.ok {
                format!("The audit trail is intact: {} entries.", v.audit.entries)
            } else {
                format!(
                    "THE AUDIT TRAIL HAS BEEN ALTERED. First bad entry: {}.\n{}.",
                    v.audit.first_bad_seq.unwrap_or(0),
                    v.audit.reason.as_deref().unwrap_or_default()
                )
            });
            Ok(Output {
                exit: if v.ok { exit::OK } else { exit::DATA },
                json: serde_json::to_value(&v).unwrap_or(Value::Null),
                text,
            })
        }
        Command::Vault(VaultCommand::HandOver(rec)) => {
            let session = unlock(cli, &config, &mut inputs, rec)?;
            // The unlock itself hands keys over; say what it did and who still waits.
            let done = session.key_hand_over().clone();
            let waiting = done.pending.clone();
            session.lock()?;
            let mut text = if done.granted.is_empty() {
                "Nobody was waiting for a key this session can hand over.".to_owned()
            } else {
                format!("Handed the clinical key to {}.", done.granted.join(", "))
            };
            if !waiting.is_empty() {
                text.push_str(&format!(
                    "\nStill waiting (a physician, a nurse or the recovery key must sign in): {}.",
                    waiting.join(", ")
                ));
            }
            Ok(Output {
                exit: exit::OK,
                json: json!({"granted": done.granted, "revoked": done.revoked, "waiting": waiting}),
                text,
            })
        }
        Command::Vault(VaultCommand::ExportKey(rec)) => {
            let mut session = unlock(cli, &config, &mut inputs, rec)?;
            let key = session.export_key()?;
            session.lock()?;
            eprint_unless_json(
                cli,
                "This key opens every record in the vault. Keep it as safe as the records themselves.",
            );
            Ok(Output {
                exit: exit::OK,
                json: json!({"key": key.expose_secret()}),
                text: key.expose_secret().to_owned(),
            })
        }
        Command::Vault(VaultCommand::Rekey(rec)) => {
            let mut session = unlock(cli, &config, &mut inputs, rec)?;
            session.rekey()?;
            session.lock()?;
            let info = chartroom_core::vault_info(&config)?;
            Ok(Output {
                exit: exit::OK,
                json: json!({"rekeyed": true, "key_epoch": info.key_epoch}),
                text: "The database is now encrypted under a new key. Every password and the recovery key still work; \
                       previously exported keys no longer do."
                    .into(),
            })
        }
        Command::Vault(VaultCommand::Restore { from, recovery }) => {
            // The backup's credentials, asked before anything is copied; the vault itself
            // may be gone.
            let credentials = credentials(cli, &mut inputs, recovery)?;
            let report =
                chartroom_core::restore_vault(&config, from, |staged| credentials.unlock(staged))?;
            let kept = match &report.replaced {
                Some(p) => format!(" The vault that was there is kept at {}.", p.display()),
                None => String::new(),
            };
            Ok(Output::new(
                json!({
                    "restored": true,
                    "vault": report.vault,
                    "from": report.from,
                    "replaced": report.replaced,
                    "backup_head": report.backup_head,
                    "restore_entry": report.restore_entry,
                }),
                format!(
                    "Restored the vault from {} (its audit trail ended at entry {}; the restore is entry {}).{kept} Sync goes on from the backup as a new chain epoch.",
                    report.from.display(),
                    report.backup_head,
                    report.restore_entry
                ),
            ))
        }
        Command::Vault(VaultCommand::Backup { out, recovery }) => {
            let mut session = unlock(cli, &config, &mut inputs, recovery)?;
            let bytes = session.backup(out)?;
            session.lock()?;
            Ok(Output::new(
                json!({"backup": out, "bytes": bytes}),
                format!(
                    "Backed up the vault to {} ({:.1} MiB). It opens with the same passwords and recovery key.",
                    out.display(),
                    bytes as f64 / 1_048_576.0
                ),
            ))
        }
        Command::Vault(VaultCommand::NewRecoveryKey(rec)) => {
            let mut session = unlock(cli, &config, &mut inputs, rec)?;
            let recovery = session.replace_recovery_key()?;
            session.lock()?;
            let key = recovery.display_grouped();
            Ok(Output {
                exit: exit::OK,
                json: json!({"recovery_key": key.expose_secret()}),
                text: format!(
                    "The old recovery key no longer works.\n\n{}",
                    recovery_notice(&recovery)
                ),
            })
        }
        Command::User(UserCommand::Add {
            name,
            role,
            family_name,
        }) => {
            let role: Role = role.parse()?;
            let mut session = unlock(cli, &config, &mut inputs, &NO_RECOVERY)?;
            let password = inputs.new_password(&format!("Password for {name}"))?;
            let user = session.add_user(name, role, family_name.as_deref(), &password)?;
            session.lock()?;
            Ok(Output {
                exit: exit::OK,
                text: if user.keys_pending.is_empty() {
                    format!("Added {} ({}).", user.name, user.role.label())
                } else {
                    format!(
                        "Added {} ({}). Their key for clinical content is handed over the next time a physician or nurse signs in (or someone signs in with the recovery key): until then they see demographics only.",
                        user.name,
                        user.role.label()
                    )
                },
                json: json!({"user": user_json(&user)}),
            })
        }
        Command::User(UserCommand::SetRole { name, role }) => {
            let role: Role = role.parse()?;
            let mut session = unlock(cli, &config, &mut inputs, &NO_RECOVERY)?;
            session.change_role(name, role)?;
            session.lock()?;
            Ok(Output::new(
                json!({"user": name, "role": role}),
                format!("{name} is now {}.", role.label()),
            ))
        }
        Command::Audit(cmd) => {
            let mut session = unlock(cli, &config, &mut inputs, &NO_RECOVERY)?;
            let out = trail::audit(&mut session, cmd, cli.json)?;
            session.lock()?;
            Ok(out)
        }
        Command::Alerts(cmd) => {
            let mut session = unlock(cli, &config, &mut inputs, &NO_RECOVERY)?;
            let out = trail::alerts(&mut session, cmd)?;
            session.lock()?;
            Ok(out)
        }
        Command::Settings(cmd) => {
            let mut session = unlock(cli, &config, &mut inputs, &NO_RECOVERY)?;
            let out = trail::settings(&mut session, cmd)?;
            session.lock()?;
            Ok(out)
        }
        Command::Patient(cmd) => {
            let mut session = unlock(cli, &config, &mut inputs, &NO_RECOVERY)?;
            let out = records::patient(&mut session, cmd)?;
            session.lock()?;
            Ok(out)
        }
        Command::Note(cmd) => with_session(cli, &config, &mut inputs, |s| records::note(s, cmd)),
        Command::Schedule(cmd) => {
            with_session(cli, &config, &mut inputs, |s| book::schedule(s, cmd))
        }
        Command::AppointmentType(cmd) => with_session(cli, &config, &mut inputs, |s| {
            book::appointment_type(s, cmd)
        }),
        Command::Appointment(cmd) => {
            with_session(cli, &config, &mut inputs, |s| book::appointment(s, cmd))
        }
        Command::Encounter(cmd) => {
            with_session(cli, &config, &mut inputs, |s| records::encounter(s, cmd))
        }
        Command::Vitals(cmd) => {
            with_session(cli, &config, &mut inputs, |s| records::vitals(s, cmd))
        }
        Command::Problem(cmd) => {
            with_session(cli, &config, &mut inputs, |s| records::problem(s, cmd))
        }
        Command::Allergy(cmd) => {
            with_session(cli, &config, &mut inputs, |s| records::allergy(s, cmd))
        }
        Command::Medication(cmd) => {
            with_session(cli, &config, &mut inputs, |s| records::medication(s, cmd))
        }
        Command::Immunization(cmd) => {
            with_session(cli, &config, &mut inputs, |s| records::immunization(s, cmd))
        }
        Command::LabResult(cmd) => {
            with_session(cli, &config, &mut inputs, |s| records::lab_result(s, cmd))
        }
        Command::LabReport(cmd) => {
            with_session(cli, &config, &mut inputs, |s| records::lab_report(s, cmd))
        }
        Command::Export { args, recovery } => {
            let mut session = unlock(cli, &config, &mut inputs, recovery)?;
            let out = exchange::export(&mut session, args, &mut inputs, cli.json)?;
            session.lock()?;
            Ok(out)
        }
        Command::Import(args) => {
            let mut session = unlock(cli, &config, &mut inputs, &NO_RECOVERY)?;
            let out = exchange::import(&mut session, args, &mut inputs)?;
            session.lock()?;
            Ok(out)
        }
        Command::Sync(cmd) => {
            let mut session = unlock(cli, &config, &mut inputs, &NO_RECOVERY)?;
            let out = sync::run(&mut session, cmd, &mut inputs)?;
            session.lock()?;
            Ok(out)
        }
        Command::Disclosures { patient } => with_session(cli, &config, &mut inputs, |s| {
            exchange::disclosures(s, *patient)
        }),
        Command::Demo {
            patients,
            seed,
            as_of,
            long_chart_every,
        } => {
            let as_of = match as_of {
                Some(d) => chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").map_err(|_| {
                    Failure::from(CoreError::InvalidInput(
                        "--as-of takes a date: YYYY-MM-DD.".into(),
                    ))
                })?,
                None => chrono::Utc::now().date_naive(),
            };
            if as_of > chrono::Utc::now().date_naive() {
                return Err(Failure::from(CoreError::InvalidInput(
                    "--as-of cannot be in the future.".into(),
                )));
            }
            let mut created = None;
            let mut session = if chartroom_core::vault_exists(&config) {
                unlock(cli, &config, &mut inputs, &NO_RECOVERY)?
            } else {
                let admin = cli.user.clone().unwrap_or_else(|| "admin".to_owned());
                let password = inputs.initial_password(&admin)?;
                let (session, recovery) = Session::create(config.clone(), &admin, &password)?;
                created = Some(recovery);
                session
            };
            let options = chartroom_core::DemoOptions {
                patients: *patients,
                seed: *seed,
                as_of,
                long_chart_every: *long_chart_every,
            };
            let total = *patients;
            let quiet = cli.json;
            let summary = session.generate_demo(&options, |done| {
                if !quiet {
                    eprint!("\rGenerating synthetic patients: {done} of {total}");
                }
            })?;
            if !quiet {
                eprintln!();
            }
            session.lock()?;
            let mut doc = serde_json::to_value(&summary).unwrap_or(Value::Null);
            let mut text = format!(
                "A synthetic clinic: {} patients, {} encounters, {} signed notes ({} addenda), {} observations, \
                 {} problems, {} allergies, {} medications, {} immunizations. Every record is fictional.",
                summary.patients,
                summary.encounters,
                summary.notes,
                summary.addenda,
                summary.observations,
                summary.problems,
                summary.allergies,
                summary.medications,
                summary.immunizations
            );
            if let Some(recovery) = &created {
                doc["recovery_key"] = json!(recovery.display_grouped().expose_secret());
                text = format!(
                    "Created a Chartroom vault in {}.\n\n{}\n\n{text}",
                    config.dir.display(),
                    recovery_notice(recovery)
                );
            }
            Ok(Output::new(doc, text))
        }
        Command::User(UserCommand::List) => {
            let mut session = unlock(cli, &config, &mut inputs, &NO_RECOVERY)?;
            let users = session.users()?;
            session.lock()?;
            let mut text = format!(
                "{:<24} {:<12} {:<9} {:<26} CREATED\n",
                "USER", "ROLE", "STATUS", "KEYS"
            );
            for u in &users {
                let mut keys = u.keys.join(", ");
                if !u.keys_pending.is_empty() {
                    keys.push_str(&format!(" (waiting: {})", u.keys_pending.join(", ")));
                }
                text.push_str(&format!(
                    "{:<24} {:<12} {:<9} {:<26} {}\n",
                    u.name.as_str(),
                    u.role.as_str(),
                    if u.disabled { "disabled" } else { "active" },
                    keys,
                    u.created_at
                ));
            }
            Ok(Output {
                exit: exit::OK,
                json: json!({"users": users.iter().map(user_json).collect::<Vec<_>>()}),
                text,
            })
        }
        Command::User(UserCommand::Passwd { name, recovery }) => {
            let mut session = unlock(cli, &config, &mut inputs, recovery)?;
            let target = match name {
                Some(n) => n.clone(),
                None if session.signed_in().recovery => {
                    return Err(Failure::usage("Name the user whose password to reset."));
                }
                None => session.signed_in().user,
            };
            let password = inputs.new_password(&format!("New password for {target}"))?;
            session.reset_password(&target, &password)?;
            session.lock()?;
            Ok(Output {
                exit: exit::OK,
                json: json!({"user": target, "password_changed": true}),
                text: format!("The password of {target} was changed."),
            })
        }
        Command::User(UserCommand::Disable { name }) => {
            let mut session = unlock(cli, &config, &mut inputs, &NO_RECOVERY)?;
            session.disable_user(name)?;
            session.lock()?;
            Ok(Output {
                exit: exit::OK,
                json: json!({"user": name, "disabled": true}),
                text: format!("{name} is disabled: their password no longer opens the vault."),
            })
        }
        Command::User(UserCommand::Enable { name }) => {
            let mut session = unlock(cli, &config, &mut inputs, &NO_RECOVERY)?;
            let password = inputs.new_password(&format!("New password for {name}"))?;
            session.enable_user(name, &password)?;
            session.lock()?;
            Ok(Output {
                exit: exit::OK,
                json: json!({"user": name, "disabled": false}),
                text: format!("{name} is enabled again, with the new password."),
            })
        }
    }
}

/// Unlocks as the acting user, runs one verb, and locks again (auditing the lock).
fn with_session(
    cli: &Cli,
    config: &chartroom_core::VaultConfig,
    inputs: &mut Inputs,
    verb: impl FnOnce(&mut Session) -> Result<Output, Failure>,
) -> Result<Output, Failure> {
    let mut session = unlock(cli, config, inputs, &NO_RECOVERY)?;
    let out = verb(&mut session)?;
    session.lock()?;
    Ok(out)
}

fn unlock(
    cli: &Cli,
    config: &chartroom_core::VaultConfig,
    inputs: &mut Inputs,
    recovery: &RecoveryArg,
) -> Result<Session, Failure> {
    // Fail on a missing vault before asking anyone for a password.
    chartroom_core::vault_info(config)?;
    let session = credentials(cli, inputs, recovery)?.unlock(config.clone())?;
    records::use_clinic_zone(session.settings().zone());
    Ok(session)
}

/// Who is signing in: a user and their password, or the recovery key.
enum Credentials<'a> {
    Password(&'a str, SecretString),
    Recovery(RecoveryKey),
}

impl Credentials<'_> {
    fn unlock(&self, config: chartroom_core::VaultConfig) -> Result<Session, CoreError> {
        match self {
            Credentials::Password(user, password) => Session::unlock(config, user, password),
            Credentials::Recovery(key) => Session::unlock_with_recovery_key(config, key),
        }
    }
}

/// Reads the credentials `--user` or `--recovery-key` asks for (given, from the
/// environment or stdin, or by a prompt).
fn credentials<'a>(
    cli: &'a Cli,
    inputs: &mut Inputs,
    recovery: &RecoveryArg,
) -> Result<Credentials<'a>, Failure> {
    if let Some(given) = &recovery.recovery_key {
        let source = if given.is_empty() {
            SecretSource::Interactive
        } else {
            SecretSource::Given(given.clone())
        };
        let text = inputs.recovery_key(source)?;
        let key = RecoveryKey::parse(text.expose_secret()).map_err(CoreError::from)?;
        return Ok(Credentials::Recovery(key));
    }
    let user = cli.user.as_deref().ok_or_else(|| {
        Failure::usage(
            "Say who you are with --user NAME (or CHARTROOM_USER), or use --recovery-key.",
        )
    })?;
    Ok(Credentials::Password(user, inputs.password(user)?))
}

fn user_json(u: &User) -> Value {
    json!({
        "name": u.name,
        "role": u.role,
        "disabled": u.disabled,
        "created_at": u.created_at,
        "created_by": u.created_by,
        "keys": u.keys,
        "keys_pending": u.keys_pending,
    })
}

fn recovery_notice(recovery: &RecoveryKey) -> String {
    let key = recovery.display_grouped();
    format!(
        "RECOVERY KEY (shown only this once; write it down and keep it somewhere safe):\n\n    {}\n\n\
         With it, an administrator can reset any password. Without it, a vault whose\n\
         administrators all forget their passwords cannot be opened by anyone.",
        key.expose_secret()
    )
}

fn eprint_unless_json(cli: &Cli, message: &str) {
    if !cli.json {
        eprintln!("{message}");
    }
}
