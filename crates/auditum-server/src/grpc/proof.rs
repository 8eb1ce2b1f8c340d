//! `ProofService`: checkpoints, event and consistency proofs, server-side verification.

use super::request_meta;
use crate::status::{Status, status_from_engine};
use auditum_engine::access::Access;
use auditum_engine::auth::Scope;
use auditum_engine::proofs::{EventKey, Prover};
use auditum_proto::pb;
use std::sync::Arc;
use tonic::{Request, Response};
use tracing::Instrument;

#[derive(Clone)]
pub struct ProofApi {
    prover: Prover,
    access: Arc<Access>,
}

impl ProofApi {
    pub fn new(prover: Prover, access: Arc<Access>) -> Self {
        ProofApi { prover, access }
    }
}

#[tonic::async_trait]
impl pb::proof_service_server::ProofService for ProofApi {
    async fn get_checkpoint(&self, request: Request<pb::GetCheckpointRequest>) -> Result<Response<pb::GetCheckpointResponse>, Status> {
        let call = self.access.open("GetCheckpoint", Scope::Proof, 1, request_meta(&request)).map_err(status_from_engine)?;
        let span = call.span();
        let checkpoint = self.prover.checkpoint(&call, &request.get_ref().log).instrument(span).await.map_err(status_from_engine)?;
        Ok(Response::new(pb::GetCheckpointResponse { checkpoint }))
    }

    async fn get_event_proof(&self, request: Request<pb::GetEventProofRequest>) -> Result<Response<pb::GetEventProofResponse>, Status> {
        let call = self.access.open("GetEventProof", Scope::Proof, 1, request_meta(&request)).map_err(status_from_engine)?;
        let span = call.span();
        let request = request.into_inner();
        let key = match request.key {
            Some(pb::get_event_proof_request::Key::Seq(seq)) => Some(EventKey::Seq(seq)),
            Some(pb::get_event_proof_request::Key::EventId(id)) => Some(EventKey::Id(id)),
            None => None,
        };
        let proof_json = self.prover.event_proof(&call, &request.log, key).instrument(span).await.map_err(status_from_engine)?;
        Ok(Response::new(pb::GetEventProofResponse { proof_json }))
    }

    async fn get_consistency_proof(
        &self,
        request: Request<pb::GetConsistencyProofRequest>,
    ) -> Result<Response<pb::GetConsistencyProofResponse>, Status> {
        let call = self.access.open("GetConsistencyProof", Scope::Proof, 1, request_meta(&request)).map_err(status_from_engine)?;
        let span = call.span();
        let request = request.into_inner();
        let path = self
            .prover
            .consistency_proof(&call, &request.log, request.old_size, request.new_size)
            .instrument(span)
            .await
            .map_err(status_from_engine)?;
        Ok(Response::new(pb::GetConsistencyProofResponse { path: path.iter().map(|hash| hash.to_vec()).collect() }))
    }

    type VerifyLogStream = futures::stream::BoxStream<'static, Result<pb::VerifyLogResponse, Status>>;

    async fn verify_log(&self, request: Request<pb::VerifyLogRequest>) -> Result<Response<Self::VerifyLogStream>, Status> {
        let call = self.access.open("VerifyLog", Scope::Proof, 1, request_meta(&request)).map_err(status_from_engine)?;
        let span = call.span();
        let updates = self.prover.verify_log(&call, &request.get_ref().log).instrument(span).await.map_err(status_from_engine)?;
        let stream = tokio_stream::StreamExt::map(tokio_stream::wrappers::ReceiverStream::new(updates), |update| {
            update
                .map(|update| pb::VerifyLogResponse {
                    entries_checked: update.entries_checked,
                    events_checked: update.events_checked,
                    problem: update.problem,
                    object: update.object,
                    done: update.done,
                    ok: update.ok,
                })
                .map_err(status_from_engine)
        });
        Ok(Response::new(Box::pin(stream)))
    }
}
