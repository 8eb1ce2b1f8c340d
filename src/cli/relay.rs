//! `auditum relay postgres`: the transactional-outbox relay (crate `auditum-relay`).

use super::args::ConnectArgs;
use auditum_client::{AuditClient, Options};
use auditum_relay::{RelayOptions, TableName};
use clap::{Args, Subcommand};
use std::time::Duration;

#[derive(Subcommand)]
pub enum RelayCommand {
    /// Move the rows of a Postgres outbox table to auditum; each row is deleted only once the
    /// server has its event (README, "Transactional outbox").
    Postgres(PostgresArgs),
}

#[derive(Args)]
pub struct PostgresArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    /// Postgres connection string (`host=… user=… dbname=…`) or URL (`postgres://user@host/db`).
    #[arg(long, env = "AUDITUM_RELAY_DSN", hide_env_values = true)]
    dsn: String,
    /// The outbox table, `table` or `schema.table`; rejected rows go to `<table>_dead`.
    #[arg(long, default_value = "audit_outbox")]
    table: String,
    /// Channel to LISTEN on for wake-ups; default: the table's name.
    #[arg(long)]
    channel: Option<String>,
    /// Rows per round (one transaction; 1 to 10000).
    #[arg(long, default_value_t = 1000)]
    batch: usize,
    /// Rounds under way at once, each on its own Postgres connection (1 to 16).
    #[arg(long, default_value_t = 2)]
    workers: usize,
    /// How long an empty round waits for a NOTIFY before looking again.
    #[arg(long, default_value = "200ms", value_parser = auditum_server::config::parse_duration)]
    poll: Duration,
}

pub async fn run(command: RelayCommand) -> Result<bool, String> {
    // Listening for SIGTERM from the start: stopped while it connects, the relay exits as it does
    // later (nothing moved), not by the signal's default action.
    let mut shutdown = Box::pin(super::serve::shutdown_signal());
    let RelayCommand::Postgres(args) = command;
    let options = RelayOptions {
        dsn: args.dsn,
        table: TableName::parse(&args.table)?,
        channel: args.channel,
        batch: args.batch,
        workers: args.workers,
        poll: args.poll,
    };
    // The server's verdict on each event, word for word, goes to the dead table; a round whose
    // server stays away for 30 s is rolled back and tried again.
    let client_options = Options {
        validate_locally: false,
        retry_max: Duration::from_secs(5),
        durable_timeout: Duration::from_secs(30),
        ..Options::default()
    };
    let connecting = async {
        let channel = args.connect.channel().await?;
        AuditClient::with_channel(channel, client_options).await.map_err(|error| error.to_string())
    };
    let client = tokio::select! {
        client = connecting => client?,
        () = &mut shutdown => {
            eprintln!("auditum relay: stopped before it connected; moved 0 rows");
            return Ok(true);
        }
    };
    let totals = auditum_relay::postgres::run(options, &client, shutdown).await;
    let _ = client.close(Duration::from_secs(1)).await;
    let totals = totals.map_err(|error| error.to_string())?;
    eprintln!("auditum relay: moved {} rows ({} already stored), {} to the dead table", totals.moved, totals.duplicates, totals.dead);
    Ok(true)
}
