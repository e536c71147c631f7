//! `chartroom sync`: enroll this computer with the clinic's collector, see the sync state,
//! push now. The worker in the desktop app does the same on its own, in the background.

use std::cell::RefCell;
use std::path::PathBuf;

use chartroom_core::sync::push_pending;
use chartroom_core::{CollectorClient, CoreError, Session, SessionAccess, SyncError};
use clap::Subcommand;
use serde_json::json;

use crate::{exit, Failure, Output};

#[derive(Debug, Subcommand)]
pub enum SyncCommand {
    /// Enroll this computer with the collector (admin), using a one-time token from
    /// `chartroom-collector token`; then push what is unsent.
    Enroll {
        /// The collector's address, e.g. https://collector.clinic.lan:8443
        url: String,
        /// The one-time enrollment token. Better left out: it is then read from
        /// CHARTROOM_ENROLL_TOKEN, standard input (with --password-stdin, on the line after
        /// the password) or a prompt, instead of being visible in the process list.
        token: Option<String>,
        /// The collector's certificate or its CA (PEM) to pin; without it, the usual public
        /// CAs are trusted. Also read from CHARTROOM_COLLECTOR_CA.
        #[arg(long, value_name = "PEM", env = "CHARTROOM_COLLECTOR_CA")]
        cert: Option<PathBuf>,
        /// What the collector should call this computer.
        #[arg(long)]
        label: Option<String>,
    },
    /// Where sync stands: the collector, the last success, entries queued, the last error.
    Status,
    /// Push every unsent audit entry now.
    Push,
}

struct Cell<'a>(RefCell<&'a mut Session>);

impl SessionAccess for Cell<'_> {
    fn with<R>(
        &self,
        f: impl FnOnce(&mut Session) -> Result<R, CoreError>,
    ) -> Result<R, CoreError> {
        f(&mut self.0.borrow_mut())
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure {
            code: "io",
            message: format!("cannot start: {e}"),
            exit: exit::IO,
            detail: None,
        })
}

fn failure(e: SyncError) -> Failure {
    match e {
        SyncError::Core(c) => Failure::from(c),
        SyncError::Unreachable(_) => Failure {
            code: "unreachable",
            message: format!(
                "Sync: {e}. The entries stay queued and are sent when the collector is back."
            ),
            exit: exit::TEMP_FAIL,
            detail: None,
        },
        SyncError::Refused(_) => Failure {
            code: "refused",
            message: format!("Sync: {e}."),
            exit: exit::DATA,
            detail: None,
        },
    }
}

fn status_text(s: &chartroom_core::SyncStatus) -> String {
    if !s.configured {
        return format!(
            "Sync: not set up (this computer works offline). {} audit entries are kept here.\nAn admin enrolls it with `chartroom sync enroll URL TOKEN`.",
            s.queued
        );
    }
    format!(
        "Collector:     {}\nAcknowledged:  entry {}\nQueued:        {} entries\nLast success:  {}\nLast error:    {}",
        s.url.as_deref().unwrap_or_default(),
        s.acknowledged,
        s.queued,
        s.last_success.as_deref().unwrap_or("never"),
        s.last_error.as_deref().unwrap_or("none")
    )
}

pub fn run(
    session: &mut Session,
    cmd: &SyncCommand,
    inputs: &mut crate::secrets::Inputs,
) -> Result<Output, Failure> {
    match cmd {
        SyncCommand::Status => {
            let s = session.sync_status()?;
            Ok(Output::new(
                serde_json::to_value(&s).unwrap_or_default(),
                status_text(&s),
            ))
        }
        SyncCommand::Enroll {
            url,
            token,
            cert,
            label,
        } => {
            session.require(chartroom_core::Permission::ManageSync, "sync.configure")?;
            let token = match token {
                Some(t) => {
                    crate::secrets::warn_visible(
                        "enrollment token",
                        crate::secrets::ENV_ENROLL_TOKEN,
                    );
                    secrecy::SecretString::from(t.clone())
                }
                None => inputs.enroll_token()?,
            };
            let pem = match cert {
                Some(path) => std::fs::read_to_string(path).map_err(|e| Failure {
                    code: "no_input",
                    message: format!("Cannot read the certificate {}: {e}.", path.display()),
                    exit: exit::NO_INPUT,
                    detail: None,
                })?,
                None => String::new(),
            };
            let client = CollectorClient::new(url, &pem)?;
            let device = session.device_id().to_owned();
            let public_key = session.device_public_key();
            let rt = runtime()?;
            rt.block_on(client.enroll(
                secrecy::ExposeSecret::expose_secret(&token),
                &device,
                &public_key,
                label.clone(),
            ))
            .map_err(failure)?;
            session.sync_configure(url, &pem)?;
            let access = Cell(RefCell::new(session));
            let pushed = rt.block_on(push_pending(&access, &client, 1000));
            let session = access.0.into_inner();
            let s = session.sync_status()?;
            let mut doc = serde_json::to_value(&s).unwrap_or_default();
            doc["device_id"] = json!(device);
            let mut text = format!("Enrolled this computer ({device}) with {url}.\n");
            match pushed {
                Ok(n) => text.push_str(&format!("Pushed {n} audit entries.\n")),
                Err(e) => text.push_str(&format!(
                    "The first push failed: {e}; it is retried later.\n"
                )),
            }
            text.push_str(&status_text(&s));
            Ok(Output::new(doc, text))
        }
        SyncCommand::Push => {
            let Some(target) = session.sync_target()? else {
                return Err(Failure::from(CoreError::InvalidInput(
                    "Sync is not set up on this computer: an admin enrolls it with `chartroom sync enroll URL TOKEN`.".into(),
                )));
            };
            let client = CollectorClient::new(&target.url, &target.certificate)?;
            let rt = runtime()?;
            let access = Cell(RefCell::new(session));
            let pushed = rt.block_on(push_pending(&access, &client, 1000));
            let session = access.0.into_inner();
            let s = session.sync_status()?;
            let stored = pushed.map_err(failure)?;
            let mut doc = serde_json::to_value(&s).unwrap_or_default();
            doc["pushed"] = json!(stored);
            Ok(Output::new(
                doc,
                format!("Pushed {stored} audit entries.\n{}", status_text(&s)),
            ))
        }
    }
}
