//! `AdminService` (scope `admin`): legal holds and restores of archived batches (DESIGN §12),
//! erasure by crypto-shredding (DESIGN §14).

use super::request_meta;
use crate::status::{Status, status_from_engine};
use auditum_engine::access::{Access, Call};
use auditum_engine::admin::{Admin, RangeScope};
use auditum_engine::auth::Scope;
use auditum_engine::erasure::{Erased, Eraser, ErasureScope};
use auditum_proto::convert::{timestamp_from_micros, timestamp_micros};
use auditum_proto::pb;
use auditum_store::RestoreTier;
use std::sync::Arc;
use tonic::{Request, Response};
use tracing::Instrument;

/// Restored copies stay readable this long when the request says 0.
const DEFAULT_RESTORE_DAYS: u32 = 7;
/// Restores started, named in an answer at most (the count is always given).
const MAX_LISTED_RESTORES: usize = 1000;

fn task_failed(error: tokio::task::JoinError) -> Status {
    tracing::error!(%error, "admin task failed");
    Status::internal(format!("admin task failed: {error}"))
}

#[derive(Clone)]
pub struct AdminApi {
    admin: Admin,
    eraser: Eraser,
    access: Arc<Access>,
}

impl AdminApi {
    pub fn new(admin: Admin, eraser: Eraser, access: Arc<Access>) -> Self {
        AdminApi { admin, eraser, access }
    }

    async fn erase(&self, call: Call, tenant_id: String, scope: ErasureScope, reason: String) -> Result<Erased, Status> {
        let span = call.span();
        let eraser = self.eraser.clone();
        // Its own task: a client that goes away does not stop an erasure half way.
        let erased: Erased = tokio::spawn(async move { eraser.erase(&call, &tenant_id, scope, &reason).await }.instrument(span))
            .await
            .map_err(task_failed)?
            .map_err(status_from_engine)?;
        Ok(erased)
    }
}

/// The wire scope in domain terms; both ends of the range are required.
fn range_scope(scope: Option<pb::TimeRangeScope>) -> Result<RangeScope, Status> {
    let scope = scope.ok_or_else(|| Status::invalid_argument("scope: required (log, since, until)"))?;
    let time = |field: &str, value: Option<prost_types::Timestamp>| {
        let value = value.ok_or_else(|| Status::invalid_argument(format!("scope.{field}: required")))?;
        timestamp_micros(&value).map_err(|error| Status::invalid_argument(format!("scope.{field}: {error}")))
    };
    Ok(RangeScope {
        log: if scope.log.is_empty() { "default".to_string() } else { scope.log },
        tenant_id: Some(scope.tenant_id).filter(|tenant| !tenant.is_empty()),
        since: time("since", scope.since)?,
        until: time("until", scope.until)?,
    })
}

fn wire_scope(log: &str, tenant_id: Option<&str>, since: i64, until: i64) -> pb::TimeRangeScope {
    pb::TimeRangeScope {
        log: log.to_string(),
        tenant_id: tenant_id.unwrap_or_default().to_string(),
        since: Some(timestamp_from_micros(since)),
        until: Some(timestamp_from_micros(until)),
    }
}

#[tonic::async_trait]
impl pb::admin_service_server::AdminService for AdminApi {
    async fn erase_subject(&self, request: Request<pb::EraseSubjectRequest>) -> Result<Response<pb::EraseSubjectResponse>, Status> {
        let call = self.access.open("EraseSubject", Scope::Admin, 1, request_meta(&request)).map_err(status_from_engine)?;
        let request = request.into_inner();
        let erased = self.erase(call, request.tenant_id, ErasureScope::Subject(request.subject_id), request.reason).await?;
        Ok(Response::new(pb::EraseSubjectResponse { log: erased.log, kids: erased.kids }))
    }

    async fn erase_tenant(&self, request: Request<pb::EraseTenantRequest>) -> Result<Response<pb::EraseTenantResponse>, Status> {
        let call = self.access.open("EraseTenant", Scope::Admin, 1, request_meta(&request)).map_err(status_from_engine)?;
        let request = request.into_inner();
        let erased = self.erase(call, request.tenant_id, ErasureScope::Tenant, request.reason).await?;
        Ok(Response::new(pb::EraseTenantResponse { log: erased.log, keys_erased: erased.keys_erased }))
    }

    async fn set_legal_hold(&self, request: Request<pb::SetLegalHoldRequest>) -> Result<Response<pb::SetLegalHoldResponse>, Status> {
        let call = self.access.open("SetLegalHold", Scope::Admin, 1, request_meta(&request)).map_err(status_from_engine)?;
        let span = call.span();
        let request = request.into_inner();
        let scope = range_scope(request.scope)?;
        let admin = self.admin.clone();
        // Its own task: a client that goes away does not stop a hold half way.
        let change = tokio::spawn(async move { admin.set_hold(&call, scope, request.reason).await }.instrument(span))
            .await
            .map_err(task_failed)?
            .map_err(status_from_engine)?;
        Ok(Response::new(pb::SetLegalHoldResponse {
            hold_id: change.hold_ids.into_iter().next().unwrap_or_default(),
            batch_objects: change.batch_objects,
            already_active: change.already_active,
            gone: change.gone,
        }))
    }

    async fn clear_legal_hold(&self, request: Request<pb::ClearLegalHoldRequest>) -> Result<Response<pb::ClearLegalHoldResponse>, Status> {
        let call = self.access.open("ClearLegalHold", Scope::Admin, 1, request_meta(&request)).map_err(status_from_engine)?;
        let span = call.span();
        let request = request.into_inner();
        let scope = range_scope(request.scope)?;
        let admin = self.admin.clone();
        let change = tokio::spawn(async move { admin.clear_hold(&call, scope, request.reason).await }.instrument(span))
            .await
            .map_err(task_failed)?
            .map_err(status_from_engine)?;
        Ok(Response::new(pb::ClearLegalHoldResponse {
            hold_ids: change.hold_ids,
            batch_objects: change.batch_objects,
            still_held: change.still_held,
            gone: change.gone,
        }))
    }

    async fn list_legal_holds(&self, request: Request<pb::ListLegalHoldsRequest>) -> Result<Response<pb::ListLegalHoldsResponse>, Status> {
        let call = self.access.open("ListLegalHolds", Scope::Admin, 1, request_meta(&request)).map_err(status_from_engine)?;
        let span = call.span();
        let listings = self.admin.list_holds(&call, &request.get_ref().log).instrument(span).await.map_err(status_from_engine)?;
        let holds = listings
            .into_iter()
            .map(|listing| {
                let record = listing.record;
                pb::LegalHold {
                    scope: Some(wire_scope(&record.log, record.tenant_id.as_deref(), record.since, record.until)),
                    hold_id: record.id,
                    reason: record.reason,
                    set_at: Some(timestamp_from_micros(record.set_at)),
                    set_by: record.set_by,
                    batch_objects: listing.batches,
                }
            })
            .collect();
        Ok(Response::new(pb::ListLegalHoldsResponse { holds }))
    }

    async fn restore_batches(&self, request: Request<pb::RestoreBatchesRequest>) -> Result<Response<pb::RestoreBatchesResponse>, Status> {
        let call = self.access.open("RestoreBatches", Scope::Admin, 1, request_meta(&request)).map_err(status_from_engine)?;
        let span = call.span();
        let request = request.into_inner();
        let tier = match pb::RestoreTier::try_from(request.tier) {
            Ok(pb::RestoreTier::Unspecified | pb::RestoreTier::Standard) => RestoreTier::Standard,
            Ok(pb::RestoreTier::Expedited) => RestoreTier::Expedited,
            Ok(pb::RestoreTier::Bulk) => RestoreTier::Bulk,
            Err(_) => return Err(Status::invalid_argument(format!("tier: {} is not a RestoreTier", request.tier))),
        };
        let days = if request.days == 0 { DEFAULT_RESTORE_DAYS } else { request.days };
        let scope = range_scope(request.scope)?;
        let admin = self.admin.clone();
        let summary = tokio::spawn(async move { admin.restore(&call, scope, days, tier).await }.instrument(span))
            .await
            .map_err(task_failed)?
            .map_err(status_from_engine)?;
        let started_count = summary.started.len() as u64;
        Ok(Response::new(pb::RestoreBatchesResponse {
            started: summary.started.into_iter().take(MAX_LISTED_RESTORES).collect(),
            in_progress: summary.in_progress,
            already_restored: summary.already_restored,
            not_archived: summary.not_archived,
            gone: summary.gone,
            started_count,
        }))
    }
}
