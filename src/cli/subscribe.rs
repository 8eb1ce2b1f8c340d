//! `auditum subscribe`: a tenant's events as they become durable, in seq order (DESIGN §10).
//! Survives server restarts (it resumes from its cursor); prints the cursor on exit, so the next
//! run continues with `--after-seq`.

use super::args::{ConnectArgs, FilterArgs};
use super::query::{print_event, print_header};
use auditum_proto::pb;
use auditum_proto::pb::query_service_client::QueryServiceClient;
use clap::Args;
use std::time::Duration;

#[derive(Args)]
pub struct SubscribeArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    #[command(flatten)]
    filter: FilterArgs,
    /// Start after this seq (the cursor a previous run printed).
    #[arg(long, conflicts_with = "from_beginning")]
    after_seq: Option<u64>,
    /// Start at the first event (default: the next append).
    #[arg(long)]
    from_beginning: bool,
    /// One JSON object per line (as `auditum query --json`).
    #[arg(long)]
    json: bool,
    /// Stop after this many events.
    #[arg(long)]
    limit: Option<u64>,
}

/// How the stream went: the cursor to resume from, and why it stopped.
enum Stopped {
    Limit,
    Signal,
    /// The server went away (restart, network): reconnect and resume.
    Unavailable(String),
}

pub async fn run(args: SubscribeArgs) -> Result<bool, String> {
    let filter = args.filter.to_filter()?;
    // Every seq up to cursor has been considered (None: nothing yet).
    let mut cursor: Option<u64> = args.after_seq;
    let mut printed = 0u64;
    let mut signal = std::pin::pin!(super::serve::shutdown_signal());
    if !args.json {
        print_header();
    }
    let mut delay = Duration::from_millis(200);
    let stopped = loop {
        let start = match cursor {
            Some(seq) => Some(pb::subscribe_request::Start::AfterSeq(seq)),
            None if args.from_beginning => Some(pb::subscribe_request::Start::FromBeginning(true)),
            None => None,
        };
        let request = pb::SubscribeRequest { filter: Some(filter.clone()), start };
        let opened = async {
            let mut client = QueryServiceClient::new(args.connect.channel().await?).max_decoding_message_size(16 * 1024 * 1024);
            client.subscribe(request).await.map(tonic::Response::into_inner).map_err(super::hold::status_text)
        };
        let mut stream = match tokio::select! { opened = opened => opened, _ = &mut signal => break Stopped::Signal } {
            Ok(stream) => stream,
            // Not reachable yet (restarting): wait and retry; anything else is the answer.
            Err(error) if error.starts_with("Unavailable") || error.contains("connect") => {
                eprintln!("subscribe: {error}; retrying in {} ms", delay.as_millis());
                tokio::select! { _ = tokio::time::sleep(delay) => {}, _ = &mut signal => break Stopped::Signal }
                delay = (delay * 2).min(Duration::from_secs(10));
                continue;
            }
            Err(error) => return Err(error),
        };
        delay = Duration::from_millis(200);
        let stopped = loop {
            let message = tokio::select! { message = stream.message() => message, _ = &mut signal => break Stopped::Signal };
            match message {
                Ok(Some(pb::SubscribeResponse { item: Some(pb::subscribe_response::Item::Event(stored)) })) => {
                    print_event(&stored, args.json)?;
                    cursor = Some(stored.seq);
                    printed += 1;
                    if args.limit.is_some_and(|limit| printed >= limit) {
                        break Stopped::Limit;
                    }
                }
                Ok(Some(pb::SubscribeResponse { item: Some(pb::subscribe_response::Item::Progress(progress)) })) => {
                    cursor = Some(progress.cursor);
                }
                Ok(Some(_)) => {}
                Ok(None) => break Stopped::Unavailable("the server ended the stream".into()),
                Err(status) if status.code() == tonic::Code::Unavailable => break Stopped::Unavailable(status.message().to_string()),
                Err(status) => return Err(super::hold::status_text(status)),
            }
        };
        match stopped {
            Stopped::Unavailable(reason) => {
                eprintln!("subscribe: {reason}; resuming after seq {}", cursor.map(|seq| seq.to_string()).unwrap_or("(none)".into()));
                continue;
            }
            other => break other,
        }
    };
    let how = match stopped {
        Stopped::Limit => "limit reached",
        Stopped::Signal => "interrupted",
        Stopped::Unavailable(_) => "stream ended",
    };
    match cursor {
        Some(seq) => eprintln!("cursor: {seq} ({how}; continue with --after-seq {seq})"),
        None => eprintln!("cursor: none ({how}; nothing considered yet)"),
    }
    Ok(true)
}
