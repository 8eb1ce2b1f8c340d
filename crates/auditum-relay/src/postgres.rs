//! `auditum relay postgres`: moves the rows of an outbox table to auditum.
//!
//! Each round is one Postgres transaction: lock up to `batch` rows (`FOR UPDATE SKIP LOCKED`, so
//! relays running side by side take different rows), append their events durably, then delete the
//! acknowledged rows and move the rejected ones to `<table>_dead` with the server's message, and
//! commit. A relay that dies mid-round leaves its transaction to roll back: the rows stay and are
//! sent again, and the server answers `duplicate` for any it already holds.
//!
//! An empty round waits for a NOTIFY on the channel (the table's name by default) or the poll
//! interval, whichever comes first. Losing Postgres or auditum mid-run is retried with backoff;
//! what cannot get better by waiting (an unusable table, a refused key, a missing privilege)
//! stops the relay with the reason.

use crate::outbox::OutboxRow;
use crate::send::send;
use crate::table::{TableName, channel_sql};
use crate::{Error, Result};
use auditum_client::{AuditClient, LogError};
use futures::StreamExt;
use std::error::Error as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::{Notify, watch};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::Type;
use tokio_postgres::{AsyncMessage, NoTls, Statement};

/// What `auditum relay postgres` is given.
#[derive(Debug, Clone)]
pub struct RelayOptions {
    /// libpq-style connection string or URL (`postgres://user@host/db`).
    pub dsn: String,
    pub table: TableName,
    /// LISTEN channel; `None` is the table's name.
    pub channel: Option<String>,
    /// Rows per round (and per transaction).
    pub batch: usize,
    /// Rounds under way at once, each on its own connection: one round's Postgres work overlaps
    /// another's wait for the server.
    pub workers: usize,
    /// How long an empty round waits when no NOTIFY comes.
    pub poll: Duration,
}

/// The largest `batch`: a round's rows stay locked while their events are appended.
pub const MAX_BATCH: usize = 10_000;

/// The most workers a relay runs.
pub const MAX_WORKERS: usize = 16;

/// Rows handled since the relay started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    /// Rows whose events the server acknowledged, deleted from the outbox.
    pub moved: u64,
    /// Of `moved`, events the server already had (rows sent again after a relay died).
    pub duplicates: u64,
    /// Rows moved to the dead table.
    pub dead: u64,
}

/// The text of a Postgres error: the server's message, detail and hint, or the client's chain.
fn describe(error: &tokio_postgres::Error) -> String {
    if let Some(db) = error.as_db_error() {
        let mut text = db.message().to_string();
        if let Some(detail) = db.detail() {
            text.push_str(&format!(" ({detail})"));
        }
        if let Some(hint) = db.hint() {
            text.push_str(&format!("; hint: {hint}"));
        }
        return text;
    }
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}

/// Errors that waiting will not cure.
fn is_permanent(error: &tokio_postgres::Error) -> bool {
    let code = error.code();
    [&SqlState::INSUFFICIENT_PRIVILEGE, &SqlState::UNDEFINED_TABLE, &SqlState::UNDEFINED_COLUMN]
        .into_iter()
        .any(|fatal| code == Some(fatal))
}

/// The SQL of a relay, built once from the checked table name.
struct Sql {
    select: String,
    delete: String,
    dead: String,
    create_dead: String,
}

impl Sql {
    fn new(table: &TableName, batch: usize) -> Sql {
        let (outbox, dead) = (table.sql(), table.dead_sql());
        Sql {
            // ctid::text lets rows be deleted whatever the id column's type; created_at becomes
            // microseconds whether it is timestamptz or timestamp.
            select: format!(
                "SELECT ctid::text, id::text, event, floor(extract(epoch FROM created_at) * 1000000)::int8 \
                 FROM {outbox} ORDER BY created_at LIMIT {batch} FOR UPDATE SKIP LOCKED"
            ),
            delete: format!("DELETE FROM {outbox} WHERE ctid = ANY($1::text[]::tid[])"),
            dead: format!(
                "INSERT INTO {dead} (id, event, created_at, error) \
                 SELECT id::text, event::jsonb, created_at::timestamptz, $2 FROM {outbox} WHERE ctid = $1::text::tid"
            ),
            create_dead: format!(
                "CREATE TABLE IF NOT EXISTS {dead} (\
                 id text, event jsonb, created_at timestamptz, error text NOT NULL, failed_at timestamptz NOT NULL DEFAULT now())"
            ),
        }
    }
}

/// One Postgres connection, listening, with the relay's statements prepared.
struct Session {
    client: tokio_postgres::Client,
    select: Statement,
    delete: Statement,
    dead: Statement,
    /// Woken by every NOTIFY on the channel (a permit is kept if nobody waits).
    notified: Arc<Notify>,
    connection: tokio::task::JoinHandle<()>,
}

impl Drop for Session {
    fn drop(&mut self) {
        self.connection.abort();
    }
}

/// A session that cannot be opened within this (connect, authenticate, prepare) is given up
/// and retried: a host that accepts connections and never answers must not hang the relay.
const OPEN_TIMEOUT: Duration = Duration::from_secs(15);
/// TCP connect timeout, unless the DSN sets `connect_timeout`.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Lock and statement timeouts of the relay's sessions, unless the role, database or DSN
/// already sets them: a table locked by a migration, or a statement stuck behind it, fails the
/// round (which is rolled back and retried with backoff) instead of holding it forever.
const LOCK_TIMEOUT: Duration = Duration::from_secs(5);
const STATEMENT_TIMEOUT: Duration = Duration::from_secs(60);

/// Why a session could not be opened.
enum OpenError {
    Postgres(tokio_postgres::Error),
    TimedOut,
}

impl OpenError {
    fn describe(&self) -> String {
        match self {
            OpenError::Postgres(error) => describe(error),
            OpenError::TimedOut => format!("no answer within {} s (connect, authenticate, prepare)", OPEN_TIMEOUT.as_secs()),
        }
    }

    fn is_permanent(&self) -> bool {
        matches!(self, OpenError::Postgres(error) if is_permanent(error))
    }

    fn code(&self) -> Option<&SqlState> {
        match self {
            OpenError::Postgres(error) => error.code(),
            OpenError::TimedOut => None,
        }
    }
}

/// Why a round failed.
enum RoundError {
    Postgres(tokio_postgres::Error),
    Auditum(LogError),
}

impl From<tokio_postgres::Error> for RoundError {
    fn from(error: tokio_postgres::Error) -> Self {
        RoundError::Postgres(error)
    }
}

impl Session {
    async fn open(options: &RelayOptions, sql: &Sql) -> Result<Session, OpenError> {
        match tokio::time::timeout(OPEN_TIMEOUT, Session::open_within(options, sql)).await {
            Ok(opened) => opened.map_err(OpenError::Postgres),
            Err(_) => Err(OpenError::TimedOut),
        }
    }

    async fn open_within(options: &RelayOptions, sql: &Sql) -> Result<Session, tokio_postgres::Error> {
        let mut config: tokio_postgres::Config = options.dsn.parse()?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        let (client, mut connection) = config.connect(NoTls).await?;
        let notified = Arc::new(Notify::new());
        let wake = notified.clone();
        // The connection is driven here rather than by `client`, so NOTIFY messages reach us.
        let connection = tokio::spawn(async move {
            let mut messages = futures::stream::poll_fn(move |context| connection.poll_message(context));
            while let Some(message) = messages.next().await {
                match message {
                    Ok(AsyncMessage::Notification(_)) => wake.notify_one(),
                    Ok(_) => {}
                    Err(error) => {
                        tracing::warn!(error = %describe(&error), "postgres connection lost");
                        break;
                    }
                }
            }
            // The client's next call fails, and the relay reconnects.
            wake.notify_one();
        });
        let settings = client.query_one("SELECT current_setting('lock_timeout'), current_setting('statement_timeout')", &[]).await?;
        let (lock_timeout, statement_timeout): (String, String) = (settings.try_get(0)?, settings.try_get(1)?);
        if lock_timeout == "0" {
            client.batch_execute(&format!("SET lock_timeout = '{}ms'", LOCK_TIMEOUT.as_millis())).await?;
        }
        if statement_timeout == "0" {
            client.batch_execute(&format!("SET statement_timeout = '{}ms'", STATEMENT_TIMEOUT.as_millis())).await?;
        }
        // The outbox first: a mistyped --table must not leave a stray dead table behind.
        let select = client.prepare(&sql.select).await?;
        let exists: Option<String> = client.query_one("SELECT to_regclass($1)::text", &[&options.table.dead_sql()]).await?.get(0);
        if exists.is_none() {
            match client.batch_execute(&sql.create_dead).await {
                Ok(()) => tracing::info!(table = %options.table, "created the dead-row table {}_dead", options.table.name()),
                // Another relay created it at the same moment.
                Err(error) if error.code() == Some(&SqlState::UNIQUE_VIOLATION) || error.code() == Some(&SqlState::DUPLICATE_TABLE) => {}
                Err(error) => return Err(error),
            }
        }
        let channel = options.channel.as_deref().unwrap_or(options.table.name());
        let channel = channel_sql(channel).unwrap_or_else(|_| format!("\"{}\"", options.table.name()));
        client.batch_execute(&format!("LISTEN {channel}")).await?;
        let delete = client.prepare(&sql.delete).await?;
        let dead = client.prepare(&sql.dead).await?;
        Ok(Session { client, select, delete, dead, notified, connection })
    }

    /// A row's ctid is unique only within one physical table: deleting by ctid through a
    /// partitioned table or one with inheritance children could delete other partitions' rows.
    async fn check_single_table(&self, table: &TableName) -> Result<()> {
        let sql = "SELECT c.relkind = 'p' OR EXISTS (SELECT 1 FROM pg_inherits WHERE inhparent = c.oid) FROM pg_class c WHERE c.oid = to_regclass($1)";
        let split: Option<bool> =
            self.client.query_one(sql, &[&table.sql()]).await.map_err(|error| Error::Postgres(describe(&error)))?.get(0);
        if split == Some(true) {
            return Err(Error::Config(format!(
                "--table {table}: a partitioned table or one with inheritance children is not supported (rows are deleted by ctid, unique only within one table); relay each partition with its own --table"
            )));
        }
        Ok(())
    }

    /// The table's `event` column must be json or jsonb: anything else would send every row to
    /// the dead table.
    fn check_event_column(&self, table: &TableName) -> Result<()> {
        let event_type = self.select.columns().get(2).map(|column| column.type_().clone());
        match event_type {
            Some(Type::JSONB) | Some(Type::JSON) => Ok(()),
            Some(other) => Err(Error::Config(format!("--table {table}: column event is {other}, expected jsonb (or json)"))),
            None => Err(Error::Config(format!("--table {table}: no event column"))),
        }
    }

    /// One round: lock, send, delete or move to the dead table, commit.
    async fn round(&mut self, client: &AuditClient, counts: &Counts) -> Result<usize, RoundError> {
        let transaction = self.client.transaction().await?;
        let rows = transaction.query(&self.select, &[]).await?;
        if rows.is_empty() {
            transaction.rollback().await?;
            return Ok(0);
        }
        let mut outbox = Vec::with_capacity(rows.len());
        for row in &rows {
            outbox.push(OutboxRow {
                ctid: row.try_get(0)?,
                id: row.try_get(1)?,
                event: row.try_get::<_, Option<serde_json::Value>>(2).map_err(|error| error.to_string()),
                created_micros: row.try_get(3)?,
            });
        }
        let mut events = Vec::with_capacity(outbox.len());
        let mut dead = Vec::new();
        for (index, row) in outbox.iter().enumerate() {
            match row.to_event() {
                Ok(event) => events.push((index, event)),
                Err(reason) => dead.push((index, reason)),
            }
        }
        // A row that made an event once makes it again.
        let rebuild = |index: usize| outbox[index].to_event().unwrap_or_default();
        let sent = send(client, events, rebuild).await.map_err(RoundError::Auditum)?;
        dead.extend(sent.rejected);
        for (index, reason) in &dead {
            let row = &outbox[*index];
            transaction.execute(&self.dead, &[&row.ctid, reason]).await?;
            tracing::warn!(id = row.id.as_deref().unwrap_or_default(), error = %reason, "outbox row rejected, moved to the dead table");
        }
        let gone: Vec<&str> =
            sent.acknowledged.iter().chain(dead.iter().map(|(index, _)| index)).map(|&index| outbox[index].ctid.as_str()).collect();
        transaction.execute(&self.delete, &[&gone]).await?;
        transaction.commit().await?;
        counts.moved.fetch_add(sent.acknowledged.len() as u64, Ordering::Relaxed);
        counts.duplicates.fetch_add(sent.duplicates as u64, Ordering::Relaxed);
        counts.dead.fetch_add(dead.len() as u64, Ordering::Relaxed);
        Ok(outbox.len())
    }
}

/// Doubling waits between failed rounds, from 200 ms up to 10 s.
struct Backoff(Duration);

impl Backoff {
    const MIN: Duration = Duration::from_millis(200);
    const MAX: Duration = Duration::from_secs(10);

    fn next(&mut self) -> Duration {
        let wait = self.0;
        self.0 = (self.0 * 2).min(Self::MAX);
        wait
    }
}

/// Rows handled since the relay started, across its workers.
#[derive(Default)]
struct Counts {
    moved: AtomicU64,
    duplicates: AtomicU64,
    dead: AtomicU64,
}

impl Counts {
    fn totals(&self) -> Totals {
        Totals {
            moved: self.moved.load(Ordering::Relaxed),
            duplicates: self.duplicates.load(Ordering::Relaxed),
            dead: self.dead.load(Ordering::Relaxed),
        }
    }
}

/// Runs the relay until `shutdown` completes (the rounds under way finish first); returns what
/// it moved. Errors only for what waiting will not cure; the first connections failing is one
/// (a wrong DSN should not look like a relay that runs).
pub async fn run(options: RelayOptions, client: &AuditClient, shutdown: impl Future<Output = ()>) -> Result<Totals> {
    if !(1..=MAX_BATCH).contains(&options.batch) {
        return Err(Error::Config(format!("--batch {}: must be between 1 and {MAX_BATCH}", options.batch)));
    }
    if !(1..=MAX_WORKERS).contains(&options.workers) {
        return Err(Error::Config(format!("--workers {}: must be between 1 and {MAX_WORKERS}", options.workers)));
    }
    if let Some(channel) = &options.channel {
        channel_sql(channel).map_err(Error::Config)?;
    }
    let sql = Sql::new(&options.table, options.batch);
    let mut shutdown = std::pin::pin!(shutdown);
    let opening = async {
        let mut sessions = Vec::with_capacity(options.workers);
        for _ in 0..options.workers {
            let session = Session::open(&options, &sql).await.map_err(|error| {
                let reason = error.describe();
                if error.code() == Some(&SqlState::UNDEFINED_TABLE) || error.code() == Some(&SqlState::UNDEFINED_COLUMN) {
                    Error::Config(format!("--table {}: {reason} (the README has the outbox table's DDL)", options.table))
                } else {
                    Error::Postgres(reason)
                }
            })?;
            session.check_event_column(&options.table)?;
            session.check_single_table(&options.table).await?;
            sessions.push(session);
        }
        Ok::<_, Error>(sessions)
    };
    // Told to stop while Postgres has not answered yet: nothing was moved, nothing is half done.
    let sessions = tokio::select! {
        sessions = opening => sessions?,
        () = &mut shutdown => {
            tracing::info!(table = %options.table, "relay stopped before it started");
            return Ok(Totals::default());
        }
    };
    tracing::info!(table = %options.table, batch = options.batch, workers = options.workers, poll_ms = options.poll.as_millis() as u64, "relay started");
    let counts = Counts::default();
    let (stop, stopped) = watch::channel(false);
    // The workers share this task: their time goes to waiting on Postgres and the server, which
    // they overlap; the CPU they use in between is small. A worker that must stop the relay
    // tells the others, which finish the round under way rather than being dropped mid-round.
    let stop = &stop;
    let workers = futures::future::join_all(sessions.into_iter().map(|session| {
        let stopped = stopped.clone();
        let (options, sql, counts) = (&options, &sql, &counts);
        async move {
            let outcome = worker(session, options, sql, client, counts, stopped).await;
            if outcome.is_err() {
                let _ = stop.send(true);
            }
            outcome
        }
    }));
    let report = async {
        let mut reported = Totals::default();
        loop {
            tokio::time::sleep(Duration::from_secs(10)).await;
            let totals = counts.totals();
            if totals != reported {
                tracing::info!(moved = totals.moved, duplicates = totals.duplicates, dead = totals.dead, "relay progress");
                reported = totals;
            }
        }
    };
    let mut workers = std::pin::pin!(workers);
    let finished = tokio::select! {
        finished = &mut workers => finished,
        _ = report => unreachable!("the report loop never ends"),
        () = &mut shutdown => {
            let _ = stop.send(true);
            workers.await
        }
    };
    let totals = counts.totals();
    tracing::info!(moved = totals.moved, duplicates = totals.duplicates, dead = totals.dead, "relay stopped");
    finished.into_iter().collect::<Result<Vec<()>>>().map(|_| totals)
}

/// Waits `wait`; false when the relay is told to stop first.
async fn sleep_unless_stopped(wait: Duration, stopped: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(wait) => true,
        _ = stopped.wait_for(|stop| *stop) => false,
    }
}

/// One worker: rounds on its own connection until stopped, reconnecting when Postgres fails.
async fn worker(
    first: Session,
    options: &RelayOptions,
    sql: &Sql,
    client: &AuditClient,
    counts: &Counts,
    mut stopped: watch::Receiver<bool>,
) -> Result<()> {
    let mut session = Some(first);
    let mut backoff = Backoff(Backoff::MIN);
    while !*stopped.borrow() {
        let current = match session.as_mut() {
            Some(current) => current,
            None => match Session::open(options, sql).await {
                Ok(opened) => {
                    tracing::info!("postgres reconnected");
                    session.insert(opened)
                }
                Err(error) if error.is_permanent() => return Err(Error::Postgres(error.describe())),
                Err(error) => {
                    let wait = backoff.next();
                    tracing::warn!(error = %error.describe(), retry_in_ms = wait.as_millis() as u64, "cannot connect to postgres");
                    sleep_unless_stopped(wait, &mut stopped).await;
                    continue;
                }
            },
        };
        let failure = match current.round(client, counts).await {
            Ok(0) => {
                backoff = Backoff(Backoff::MIN);
                let notified = current.notified.clone();
                tokio::select! {
                    _ = notified.notified() => {}
                    _ = sleep_unless_stopped(options.poll, &mut stopped) => {}
                }
                continue;
            }
            Ok(_) => {
                backoff = Backoff(Backoff::MIN);
                continue;
            }
            Err(failure) => failure,
        };
        let wait = backoff.next();
        match failure {
            RoundError::Postgres(error) if is_permanent(&error) => return Err(Error::Postgres(describe(&error))),
            RoundError::Postgres(error) => {
                tracing::warn!(error = %describe(&error), retry_in_ms = wait.as_millis() as u64, "postgres failed, the round is rolled back");
                session = None;
            }
            RoundError::Auditum(LogError::Rpc { status })
                if matches!(status.code(), tonic::Code::Unauthenticated | tonic::Code::PermissionDenied) =>
            {
                return Err(Error::Auditum(LogError::Rpc { status }));
            }
            RoundError::Auditum(error) => {
                tracing::warn!(error = %error, retry_in_ms = wait.as_millis() as u64, "append failed, the round is rolled back");
            }
        }
        sleep_unless_stopped(wait, &mut stopped).await;
    }
    Ok(())
}
