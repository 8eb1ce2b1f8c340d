//! Event proofs: fetched from a server, verified offline against a pinned verifier key (the
//! verification itself is `auditum_format::proof`, which trusts nothing the server said).

use crate::{AuthChannel, Error, Result};
use auditum_proto::pb;

pub use auditum_format::proof::{Verified, VerifyError, verify};

/// Which event to prove.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventKey {
    Seq(u64),
    Id(String),
}

/// The §7 proof document of one sealed event, as the server sent it.
pub async fn fetch(channel: AuthChannel, log: &str, key: EventKey) -> Result<String> {
    let mut client = pb::proof_service_client::ProofServiceClient::new(channel).max_decoding_message_size(64 * 1024 * 1024);
    let key = match key {
        EventKey::Seq(seq) => pb::get_event_proof_request::Key::Seq(seq),
        EventKey::Id(id) => pb::get_event_proof_request::Key::EventId(id),
    };
    let request = pb::GetEventProofRequest { log: log.to_string(), key: Some(key) };
    Ok(client.get_event_proof(request).await.map_err(Error::rpc("GetEventProof"))?.into_inner().proof_json)
}
