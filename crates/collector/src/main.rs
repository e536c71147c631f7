//! chartroom-collector: the clinic's audit collector. Desktops push their audit trails here
//! over HTTPS; the collector verifies each batch against the device's key and the chain it
//! already holds, keeps it, and flags any device that rewrites its past.

#![forbid(unsafe_code)]

mod api;
mod store;
mod syslog;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::store::Store;

#[derive(Debug, Parser)]
#[command(
    name = "chartroom-collector",
    version,
    about = "The clinic's audit collector."
)]
struct Cli {
    /// A file of KEY=VALUE lines (the CHARTROOM_COLLECTOR_* settings); the environment and
    /// flags win over it.
    #[arg(
        long,
        global = true,
        env = "CHARTROOM_COLLECTOR_CONFIG",
        value_name = "FILE"
    )]
    config: Option<PathBuf>,
    /// Where the collector keeps what it receives: sqlite://PATH (default) or postgres://…
    #[arg(
        long,
        global = true,
        env = "CHARTROOM_COLLECTOR_DB",
        default_value = "sqlite://collector.db"
    )]
    db: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve HTTPS until interrupted (Ctrl+C or SIGTERM finish the batches in flight first).
    Serve {
        /// Address to listen on.
        #[arg(
            long,
            env = "CHARTROOM_COLLECTOR_LISTEN",
            default_value = "127.0.0.1:8443"
        )]
        listen: SocketAddr,
        /// The server certificate (PEM), e.g. from `chartroom-collector cert`.
        #[arg(long, env = "CHARTROOM_COLLECTOR_CERT")]
        cert: PathBuf,
        /// Its private key (PEM).
        #[arg(long, env = "CHARTROOM_COLLECTOR_KEY")]
        key: PathBuf,
        /// Also forward every stored entry as RFC 5424 syslog over TLS to HOST:PORT.
        #[arg(long, env = "CHARTROOM_COLLECTOR_SYSLOG", value_name = "HOST:PORT")]
        syslog: Option<String>,
        /// The CA certificate (PEM) that signed the syslog receiver's certificate.
        #[arg(
            long,
            env = "CHARTROOM_COLLECTOR_SYSLOG_CA",
            value_name = "PEM",
            requires = "syslog"
        )]
        syslog_ca: Option<PathBuf>,
        /// Raise an alert when an enrolled device has sent nothing for this long: a number
        /// with h, m or s (72h, 30m), or `off`.
        #[arg(
            long,
            env = "CHARTROOM_COLLECTOR_ALERT_SILENCE",
            default_value = "72h",
            value_parser = parse_silence
        )]
        alert_silence: Silence,
        /// Requests per second one client address may make, sustained.
        #[arg(long, env = "CHARTROOM_COLLECTOR_RATE", default_value_t = api::RATE_PER_SECOND, value_parser = clap::value_parser!(u32).range(1..))]
        rate: u32,
        /// Requests one client address may make at once before the rate applies.
        #[arg(long, env = "CHARTROOM_COLLECTOR_BURST", default_value_t = api::RATE_BURST, value_parser = clap::value_parser!(u32).range(1..))]
        burst: u32,
    },
    /// Issue a one-time enrollment token for a desktop (`chartroom sync enroll URL`), or
    /// with --auditor an access token for auditors' queries; `token list` and
    /// `token revoke ID` manage those issued.
    #[command(args_conflicts_with_subcommands = true)]
    Token {
        #[command(subcommand)]
        action: Option<TokenAction>,
        /// How long it stays valid, in hours (an auditor token: days).
        #[arg(long, default_value_t = 24)]
        hours: i64,
        /// An auditor's token for GET /v1/audit, valid for 30 days.
        #[arg(long)]
        auditor: bool,
    },
    /// Re-verify every stored chain and its signed checkpoints; exits 1 on any break.
    Verify,
    /// Make a self-signed certificate for this collector (desktops pin it).
    Cert {
        /// Host names and addresses the certificate is for.
        #[arg(long = "host", default_values_t = ["localhost".to_owned(), "127.0.0.1".to_owned()])]
        hosts: Vec<String>,
        /// Folder to write collector.crt and collector.key into.
        #[arg(long, default_value = ".")]
        out: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum TokenAction {
    /// Every token issued (enrollment and auditor), newest first: its id (the start of its
    /// hash; the token itself is never kept), kind, times and state.
    List,
    /// Revoke a token by the id `token list` shows: it opens nothing from now on.
    Revoke { id: String },
}

/// How long a device may stay quiet before an alert; None for never.
#[derive(Clone, Copy, Debug)]
struct Silence(Option<Duration>);

/// `72h`, `30m`, `45s`, or `off`.
fn parse_silence(text: &str) -> Result<Silence, String> {
    let text = text.trim();
    if text.eq_ignore_ascii_case("off") {
        return Ok(Silence(None));
    }
    let (number, unit) = text.split_at(text.len().saturating_sub(1));
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 72h, 30m or 45s, or off"))?;
    let secs = match unit {
        "h" => n.saturating_mul(3600),
        "m" => n.saturating_mul(60),
        "s" => n,
        _ => {
            return Err(format!(
                "{text:?} is not a duration like 72h, 30m or 45s, or off"
            ))
        }
    };
    if secs == 0 {
        return Err("the silence before an alert must be longer than 0".into());
    }
    Ok(Silence(Some(Duration::from_secs(secs))))
}

/// Reads the configuration file named by --config (or CHARTROOM_COLLECTOR_CONFIG) into the
/// environment, without overriding what is already set there.
fn load_config() -> Result<(), String> {
    let args: Vec<String> = std::env::args().collect();
    let from_flag = args
        .iter()
        .position(|a| a == "--config")
        .and_then(|i| args.get(i + 1).cloned())
        .or_else(|| {
            args.iter()
                .find_map(|a| a.strip_prefix("--config=").map(str::to_owned))
        });
    let Some(path) = from_flag.or_else(|| std::env::var("CHARTROOM_COLLECTOR_CONFIG").ok()) else {
        return Ok(());
    };
    let text = std::fs::read_to_string(&path).map_err(|e| format!("cannot read {path}: {e}"))?;
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, value) = line
            .split_once('=')
            .ok_or_else(|| format!("{path} line {}: expected KEY=VALUE", n + 1))?;
        let key = key.trim();
        if !key.starts_with("CHARTROOM_COLLECTOR_") {
            return Err(format!("{path} line {}: unknown setting {key}", n + 1));
        }
        if std::env::var_os(key).is_none() {
            std::env::set_var(key, value.trim().trim_matches('"'));
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    // Its database, keys and logs are for the account that runs it only.
    rustix::process::umask(rustix::fs::Mode::from_bits_truncate(0o077));
    // No core dump either: one would hold tokens and whatever was in flight.
    let _ = rustix::process::setrlimit(
        rustix::process::Resource::Core,
        rustix::process::Rlimit {
            current: Some(0),
            maximum: Some(0),
        },
    );
    if let Err(message) = load_config() {
        eprintln!("chartroom-collector: {message}");
        return ExitCode::from(78);
    }
    let filter = tracing_subscriber::EnvFilter::try_from_env("CHARTROOM_COLLECTOR_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Structured logs: key=value for people, or one JSON object per line for a log system.
    if std::env::var("CHARTROOM_COLLECTOR_LOG_FORMAT").as_deref() == Ok("json") {
        tracing_subscriber::fmt()
            .json()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .init();
    } else {
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .init();
    }
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("chartroom-collector: cannot start: {e}");
            return ExitCode::from(70);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(message) => {
            eprintln!("chartroom-collector: {message}");
            ExitCode::from(1)
        }
    }
}

async fn run(cli: Cli) -> Result<ExitCode, String> {
    match cli.command {
        Command::Cert { hosts, out } => {
            let cert = rcgen::generate_simple_self_signed(hosts)
                .map_err(|e| format!("cannot make a certificate: {e}"))?;
            std::fs::create_dir_all(&out).map_err(|e| e.to_string())?;
            std::fs::write(out.join("collector.crt"), cert.cert.pem())
                .map_err(|e| e.to_string())?;
            write_private(&out.join("collector.key"), &cert.key_pair.serialize_pem())?;
            println!("{}", out.join("collector.crt").display());
            Ok(ExitCode::SUCCESS)
        }
        Command::Token {
            action: Some(TokenAction::List),
            ..
        } => {
            let store = Store::open(&cli.db).await.map_err(|e| e.to_string())?;
            println!("id            kind        created                      expires                      state");
            for t in store.tokens().await.map_err(|e| e.to_string())? {
                println!(
                    "{:<13} {:<11} {:<28} {:<28} {}",
                    t.id, t.kind, t.created_at, t.expires_at, t.state
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Token {
            action: Some(TokenAction::Revoke { id }),
            ..
        } => {
            let store = Store::open(&cli.db).await.map_err(|e| e.to_string())?;
            if store.revoke_token(&id).await.map_err(|e| e.to_string())? {
                println!("revoked {id}");
                Ok(ExitCode::SUCCESS)
            } else {
                Err(format!("there is no token {id} (see `token list`)"))
            }
        }
        Command::Token {
            action: None,
            hours,
            auditor,
        } => {
            let store = Store::open(&cli.db).await.map_err(|e| e.to_string())?;
            let token = if auditor {
                store.issue_auditor_token(30).await
            } else {
                store.issue_token(hours).await
            }
            .map_err(|e| e.to_string())?;
            println!("{token}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Verify => {
            let store = Store::open(&cli.db).await.map_err(|e| e.to_string())?;
            let mut broken = 0;
            for (device, key) in store.devices().await.map_err(|e| e.to_string())? {
                let records = store.records(&device).await.map_err(|e| e.to_string())?;
                let checkpoints = store
                    .checkpoints(&device)
                    .await
                    .map_err(|e| e.to_string())?;
                let mut held: std::collections::HashSet<(u64, chartroom_audit::Hash)> =
                    records.iter().map(|r| (r.entry.seq, r.hash)).collect();
                let report = chartroom_audit::verify(&device, &key, records, checkpoints);
                match &report.failure {
                    None => println!("{device}: {} entries, intact", report.entries),
                    Some(f) => {
                        broken += 1;
                        println!("{device}: BROKEN at entry {}: {}", f.seq, f.reason);
                    }
                }
                // Each restore: its statement signed by the device, and the epoch it closed
                // intact from the entry it went on from.
                let closed = store
                    .closed_epochs(&device)
                    .await
                    .map_err(|e| e.to_string())?;
                held.extend(
                    closed
                        .iter()
                        .flat_map(|c| c.records.iter().map(|r| (r.entry.seq, r.hash))),
                );
                for epoch in &closed {
                    let start = &epoch.closed_by;
                    let first = epoch.records.first();
                    // The closed epoch's first record follows an entry held in the current
                    // trail or in another closed epoch.
                    let anchored = first.is_none_or(|r| {
                        held.contains(&(r.entry.seq.saturating_sub(1), r.prev_hash))
                    });
                    let from = first.map_or(start.base_seq, |r| r.entry.seq.saturating_sub(1));
                    let base = first.map_or(start.base_hash, |r| r.prev_hash);
                    let mut v = chartroom_audit::Verifier::resume(
                        &device,
                        &key,
                        epoch.checkpoints.clone(),
                        from,
                        base,
                    );
                    for r in &epoch.records {
                        v.push(r);
                    }
                    let segment = v.finish();
                    let signed = start.is_signed_by(&key, &device);
                    match (&segment.failure, signed, anchored) {
                        (None, true, true) => println!(
                            "{device}: epoch {} (closed when it was restored from a backup at entry {}): {} entries, intact",
                            epoch.epoch, start.base_seq, segment.entries
                        ),
                        (Some(f), _, _) => {
                            broken += 1;
                            println!(
                                "{device}: epoch {} BROKEN at entry {}: {}",
                                epoch.epoch, f.seq, f.reason
                            );
                        }
                        (None, false, _) => {
                            broken += 1;
                            println!(
                                "{device}: the restore that opened epoch {} is not signed by the device's key",
                                start.epoch
                            );
                        }
                        (None, true, false) => {
                            broken += 1;
                            println!(
                                "{device}: epoch {} does not go on from any entry held from the device",
                                epoch.epoch
                            );
                        }
                    }
                }
            }
            Ok(if broken == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Command::Serve {
            listen,
            cert,
            key,
            syslog,
            syslog_ca,
            alert_silence,
            rate,
            burst,
        } => {
            let _ = rustls::crypto::ring::default_provider().install_default();
            let store = Store::open(&cli.db).await.map_err(|e| e.to_string())?;
            if let Silence(Some(silence)) = alert_silence {
                let watched = store.clone();
                // Looked at often enough that an alert comes within a tenth of the silence.
                let every = (silence / 10).clamp(Duration::from_secs(1), Duration::from_secs(300));
                tokio::spawn(async move {
                    loop {
                        if let Err(e) = watched.alert_silent_devices(silence).await {
                            tracing::error!(error = %e, "checking for silent devices failed");
                        }
                        tokio::time::sleep(every).await;
                    }
                });
            }
            if let Some(address) = syslog {
                let ca = syslog_ca
                    .ok_or("--syslog needs --syslog-ca (the receiver's CA certificate)")?;
                tokio::spawn(syslog::run(store.clone(), syslog::Target { address, ca }));
            }
            let tls = axum_server::tls_rustls::RustlsConfig::from_pem_file(&cert, &key)
                .await
                .map_err(|e| format!("cannot read the certificate or key: {e}"))?;
            let handle = axum_server::Handle::new();
            let shutdown = handle.clone();
            tokio::spawn(async move {
                wait_for_signal().await;
                tracing::info!("shutting down: finishing batches in flight");
                shutdown.graceful_shutdown(Some(Duration::from_secs(30)));
            });
            tracing::info!(%listen, db = %redact(&cli.db), "collector listening");
            axum_server::bind_rustls(listen, tls)
                .handle(handle)
                .serve(
                    api::router(api::App::new(
                        store,
                        api::Rate {
                            per_second: f64::from(rate),
                            burst: f64::from(burst),
                        },
                    ))
                    .into_make_service_with_connect_info::<SocketAddr>(),
                )
                .await
                .map_err(|e| format!("the server stopped: {e}"))?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The database URL without a password, for logs.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => format!("{}://…@{}", &url[..s], &url[at + 1..]),
        _ => url.to_owned(),
    }
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

fn write_private(path: &std::path::Path, text: &str) -> Result<(), String> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut f = options.open(path).map_err(|e| e.to_string())?;
    f.write_all(text.as_bytes()).map_err(|e| e.to_string())
}
