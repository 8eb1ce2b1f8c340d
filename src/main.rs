//! The `auditum` binary (README, Command line): argument parsing, one module per command in `cli/`.

mod cli;

use auditum_server::config::LogFormat;
use clap::{Parser, Subcommand};
use std::process::ExitCode;

// Append handling allocates many small strings per event; mimalloc halves what glibc spends there.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "auditum", version, about = "A tamper-evident audit-log vault")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (no flags: file store and WAL under ./auditum-data, 127.0.0.1:50051).
    Serve(cli::serve::ServeArgs),
    /// Append one event from flags, or JSON lines from a file or stdin.
    Append(cli::append::AppendArgs),
    /// Generate a checkpoint signing key and print its verifier key.
    Keygen(cli::keygen::KeygenArgs),
    /// Start a server in-process, append a realistic sample, seal, and show the signed result.
    Demo(cli::demo::DemoArgs),
    /// Verify a log's archive offline, straight from the store.
    Verify(cli::verify::VerifyArgs),
    /// Query a tenant's events from a server (a table, or JSON lines with --json).
    Query(cli::query::QueryArgs),
    /// Export a tenant's events to a file (JSONL, CSV or Parquet) and check the summary hash.
    Export(cli::export::ExportArgs),
    /// Follow a tenant's events as they become durable, in seq order (resumable with --after-seq).
    Subscribe(cli::subscribe::SubscribeArgs),
    /// Count a tenant's events by dimension and time bucket (e.g. --by action --bucket day).
    Summarize(cli::summarize::SummarizeArgs),
    /// Fetch an event's proof (docs/FORMAT.md, Proofs) from a server and save it.
    Proof(cli::proof::ProofArgs),
    /// Verify a saved event proof offline against a pinned verifier key.
    VerifyProof(cli::proof::VerifyProofArgs),
    /// Configuration tools.
    #[command(subcommand)]
    Config(cli::config::ConfigCommand),
    /// Move audit events from where applications write them (a Postgres outbox table) to a server.
    #[command(subcommand)]
    Relay(cli::relay::RelayCommand),
    /// Legal holds on a log's batches (scope admin): set, clear, list.
    #[command(subcommand)]
    Hold(cli::hold::HoldCommand),
    /// Request restores of archived batches (Glacier, Deep Archive) in a range (scope admin).
    Restore(cli::restore::RestoreArgs),
    /// Bucket lifecycle rules for a log's batches: archive tier and expiry after retention.
    #[command(subcommand)]
    Lifecycle(cli::lifecycle::LifecycleCommand),
    /// Erase a data subject's (or a whole tenant's) encrypted fields by destroying its keys (scope admin).
    Erase(cli::erase::EraseArgs),
    /// The keyring's key-encryption key: create one, rotate to a new one.
    #[command(subcommand)]
    Keyring(cli::keyring::KeyringCommand),
}

fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("AUDITUM_LOG").unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The server's config is read once, before logging starts (it chooses the log format); an
    // invalid one is reported and nothing starts.
    let serve_config = match &cli.command {
        Command::Serve(args) => match args.config() {
            Ok(config) => Some(config),
            Err(message) => {
                eprintln!("auditum: {message}");
                return ExitCode::FAILURE;
            }
        },
        _ => None,
    };
    init_tracing(serve_config.as_ref().map(|config| config.log_format).unwrap_or_default());
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("auditum: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let outcome: Result<bool, String> = runtime.block_on(async move {
        match cli.command {
            Command::Serve(_) => match serve_config {
                Some(config) => cli::serve::run(config).await,
                None => Err("no configuration".into()),
            },
            Command::Append(args) => cli::append::run(args).await,
            Command::Keygen(args) => cli::keygen::run(args),
            Command::Demo(args) => cli::demo::run(args).await,
            Command::Verify(args) => cli::verify::run(args).await,
            Command::Query(args) => cli::query::run(args).await,
            Command::Export(args) => cli::export::run(args).await,
            Command::Proof(args) => cli::proof::run(args).await,
            Command::Subscribe(args) => cli::subscribe::run(args).await,
            Command::Summarize(args) => cli::summarize::run(args).await,
            Command::VerifyProof(args) => cli::proof::verify_saved(args),
            Command::Config(command) => cli::config::run(command),
            Command::Relay(command) => cli::relay::run(command).await,
            Command::Hold(command) => cli::hold::run(command).await,
            Command::Restore(args) => cli::restore::run(args).await,
            Command::Lifecycle(command) => cli::lifecycle::run(command).await,
            Command::Erase(args) => cli::erase::run(args).await,
            Command::Keyring(command) => cli::keyring::run(command).await,
        }
    });
    match outcome {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(message) => {
            eprintln!("auditum: {message}");
            ExitCode::FAILURE
        }
    }
}
