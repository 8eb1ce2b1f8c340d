//! `QueryService`: Query, Export, Subscribe and Summarize.

use super::request_meta;
use crate::status::{Status, status_from_engine, status_from_export};
use auditum_engine::access::Access;
use auditum_engine::auth::Scope;
use auditum_engine::export::{ExportItem, Format};
use auditum_engine::query::{ExportRequest, QueryRequest, Reader};
use auditum_engine::read::{FilterError, FilterSpec};
use auditum_engine::scan::ScanStats;
use auditum_engine::subscribe::{Ended, SubscribeItem, SubscribeRequest, SubscribeStart};
use auditum_engine::summarize::{Bucket, Dimension, SummarizeRequest};
use auditum_proto::convert::{self, actor_type_name, outcome_name, timestamp_ceil_micros};
use auditum_proto::pb;
use std::sync::Arc;
use tonic::{Request, Response};
use tracing::Instrument;

fn reject(field: &str, rule: impl Into<String>) -> Status {
    Status::invalid_argument(FilterError { field: field.to_string(), rule: rule.into() }.to_string())
}

/// An `EventFilter` in domain terms: times to microseconds, enums to their stored names.
pub fn filter_spec(filter: Option<&pb::EventFilter>) -> Result<FilterSpec, Status> {
    let Some(filter) = filter else { return Err(reject("filter", "required (filter.tenant_id at least)")) };
    let time = |field: &str, time: &Option<prost_types::Timestamp>| {
        time.as_ref().map(timestamp_ceil_micros).transpose().map_err(|rule| reject(field, rule))
    };
    let actor_type =
        actor_type_name(filter.actor_type).map_err(|value| reject("filter.actor_type", format!("unknown enum value {value}")))?;
    let outcome = match filter.outcome {
        0 => None,
        value => Some(outcome_name(value).map_err(|rule| reject("filter.outcome", rule))?),
    };
    Ok(FilterSpec {
        tenant_id: filter.tenant_id.clone(),
        start: time("filter.start_time", &filter.start_time)?,
        end: time("filter.end_time", &filter.end_time)?,
        actor_id: filter.actor_id.clone(),
        actor_type: actor_type.map(str::to_string),
        actions: filter.actions.clone(),
        target_type: filter.target_type.clone(),
        target_id: filter.target_id.clone(),
        outcome: outcome.map(str::to_string),
        request_id: filter.request_id.clone(),
        correlation_id: filter.correlation_id.clone(),
        session_id: filter.session_id.clone(),
        source_ip: filter.source_ip.clone(),
    })
}

pub fn stats_message(stats: &ScanStats, bytes_read: u64, read_requests: u64, pages_read: u64) -> pb::QueryStats {
    pb::QueryStats {
        batches_considered: stats.batches_considered,
        batches_pruned: stats.batches_pruned,
        row_groups_considered: stats.row_groups_considered,
        row_groups_pruned: stats.row_groups_pruned,
        rows_considered: stats.rows_considered,
        rows_pruned: stats.rows_pruned,
        rows_read: stats.rows_read,
        batches_opened: stats.batches_opened,
        row_groups_pruned_by_bloom: stats.row_groups_pruned_by_bloom,
        row_groups_pruned_by_index: stats.row_groups_pruned_by_index,
        rows_matched: stats.rows_matched,
        unsealed_considered: stats.unsealed_considered,
        bytes_read,
        read_requests,
        pages_read,
    }
}

fn details(filter: Option<&pb::EventFilter>) -> serde_json::Value {
    convert::filter_details(filter.unwrap_or(&pb::EventFilter::default()))
}

#[derive(Clone)]
pub struct QueryApi {
    reader: Reader,
    access: Arc<Access>,
}

impl QueryApi {
    pub fn new(reader: Reader, access: Arc<Access>) -> Self {
        QueryApi { reader, access }
    }

    async fn query(&self, call: &auditum_engine::access::Call, request: pb::QueryRequest) -> Result<pb::QueryResponse, Status> {
        let query = QueryRequest {
            filter: filter_spec(request.filter.as_ref())?,
            filter_details: details(request.filter.as_ref()),
            page_size: request.page_size,
            page_token: request.page_token,
            descending: request.descending,
        };
        let page = self.reader.query(call, query).await.map_err(status_from_engine)?;
        Ok(pb::QueryResponse {
            events: page.rows.iter().map(|row| convert::stored_event(&row.record, &row.leaf_hash, row.batch_index, &page.log)).collect(),
            next_page_token: page.next_page_token,
            stats: Some(stats_message(&page.stats, page.bytes_read, page.read_requests, page.pages_read)),
        })
    }

    async fn export(
        &self,
        call: &auditum_engine::access::Call,
        request: pb::ExportRequest,
    ) -> Result<futures::stream::BoxStream<'static, Result<pb::ExportResponse, Status>>, Status> {
        let filter = filter_spec(request.filter.as_ref())?;
        let format = match pb::ExportFormat::try_from(request.format) {
            Ok(pb::ExportFormat::Jsonl) => Format::Jsonl,
            Ok(pb::ExportFormat::Csv) => Format::Csv,
            Ok(pb::ExportFormat::Parquet) => Format::Parquet,
            _ => return Err(Status::invalid_argument("format: must be EXPORT_FORMAT_JSONL, EXPORT_FORMAT_CSV or EXPORT_FORMAT_PARQUET")),
        };
        let export = ExportRequest {
            filter,
            filter_details: details(request.filter.as_ref()),
            format,
            format_name: pb::ExportFormat::try_from(request.format).map(|format| format.as_str_name()).unwrap_or_default().to_string(),
            include_unsealed: request.include_unsealed,
            raw: request.raw,
        };
        let items = self.reader.export(call, export).await.map_err(status_from_engine)?;
        let stream = tokio_stream::StreamExt::map(tokio_stream::wrappers::ReceiverStream::new(items), |item| match item {
            Ok(ExportItem::Chunk(bytes)) => Ok(pb::ExportResponse { item: Some(pb::export_response::Item::Chunk(bytes)) }),
            Ok(ExportItem::Summary(summary)) => Ok(pb::ExportResponse {
                item: Some(pb::export_response::Item::Summary(pb::ExportSummary {
                    rows: summary.rows,
                    sha256: summary.sha256,
                    checkpoint: summary.checkpoint,
                    unsealed_rows: summary.unsealed_rows,
                })),
            }),
            Err(failure) => Err(status_from_export(failure)),
        });
        Ok(Box::pin(stream))
    }

    async fn summarize(&self, call: &auditum_engine::access::Call, request: pb::SummarizeRequest) -> Result<pb::SummarizeResponse, Status> {
        let group_by = request
            .group_by
            .iter()
            .enumerate()
            .map(|(index, value)| match pb::SummaryDimension::try_from(*value) {
                Ok(pb::SummaryDimension::Action) => Ok(Dimension::Action),
                Ok(pb::SummaryDimension::ActorId) => Ok(Dimension::ActorId),
                Ok(pb::SummaryDimension::ActorType) => Ok(Dimension::ActorType),
                Ok(pb::SummaryDimension::TargetType) => Ok(Dimension::TargetType),
                Ok(pb::SummaryDimension::TargetId) => Ok(Dimension::TargetId),
                Ok(pb::SummaryDimension::Outcome) => Ok(Dimension::Outcome),
                Ok(pb::SummaryDimension::Service) => Ok(Dimension::Service),
                Ok(pb::SummaryDimension::SourceIp) => Ok(Dimension::SourceIp),
                Ok(pb::SummaryDimension::Unspecified) => {
                    Err(reject(&format!("group_by[{index}]"), "SUMMARY_DIMENSION_UNSPECIFIED is not a dimension"))
                }
                Err(_) => Err(reject(&format!("group_by[{index}]"), format!("unknown enum value {value}"))),
            })
            .collect::<Result<Vec<_>, _>>()?;
        let bucket = match pb::TimeBucket::try_from(request.bucket) {
            Ok(pb::TimeBucket::Unspecified) => Bucket::Whole,
            Ok(pb::TimeBucket::Hour) => Bucket::Hour,
            Ok(pb::TimeBucket::Day) => Bucket::Day,
            Ok(pb::TimeBucket::Week) => Bucket::Week,
            Ok(pb::TimeBucket::Month) => Bucket::Month,
            Err(_) => return Err(reject("bucket", format!("unknown enum value {}", request.bucket))),
        };
        let summarize = SummarizeRequest {
            filter: filter_spec(request.filter.as_ref())?,
            filter_details: details(request.filter.as_ref()),
            group_by,
            bucket,
            limit: request.limit,
        };
        let summary = self.reader.summarize(call, summarize).await.map_err(status_from_engine)?;
        Ok(pb::SummarizeResponse {
            rows: summary
                .rows
                .into_iter()
                .map(|row| pb::SummaryRow {
                    bucket_start: Some(convert::timestamp_from_micros(row.bucket_start)),
                    keys: row.keys.to_vec(),
                    count: row.count,
                })
                .collect(),
            total_events: summary.total_events,
            truncated: summary.truncated,
            checkpoint: summary.checkpoint,
        })
    }

    async fn subscribe(
        &self,
        call: &auditum_engine::access::Call,
        request: pb::SubscribeRequest,
    ) -> Result<futures::stream::BoxStream<'static, Result<pb::SubscribeResponse, Status>>, Status> {
        let start = match request.start {
            Some(pb::subscribe_request::Start::AfterSeq(seq)) => SubscribeStart::AfterSeq(seq),
            Some(pb::subscribe_request::Start::FromBeginning(true)) => SubscribeStart::FromBeginning,
            Some(pb::subscribe_request::Start::FromBeginning(false)) | None => SubscribeStart::Next,
        };
        let subscribe =
            SubscribeRequest { filter: filter_spec(request.filter.as_ref())?, filter_details: details(request.filter.as_ref()), start };
        let subscribed = self.reader.subscribe(call, subscribe).await.map_err(status_from_engine)?;
        let log = subscribed.log;
        let stream = tokio_stream::StreamExt::map(tokio_stream::wrappers::ReceiverStream::new(subscribed.items), move |item| match item {
            Ok(SubscribeItem::Event(row)) => {
                let event = convert::stored_event(&row.record, &row.leaf_hash, row.batch_index, &log);
                Ok(pb::SubscribeResponse { item: Some(pb::subscribe_response::Item::Event(event)) })
            }
            Ok(SubscribeItem::Progress(cursor)) => {
                Ok(pb::SubscribeResponse { item: Some(pb::subscribe_response::Item::Progress(pb::SubscribeProgress { cursor })) })
            }
            Err(Ended::ShuttingDown { cursor }) => {
                Err(Status::unavailable(format!("the server is shutting down; resume with after_seq = {cursor}")))
            }
            Err(Ended::Failed(error)) => Err(status_from_engine(error)),
        });
        Ok(Box::pin(stream))
    }
}

#[tonic::async_trait]
impl pb::query_service_server::QueryService for QueryApi {
    async fn query(&self, request: Request<pb::QueryRequest>) -> Result<Response<pb::QueryResponse>, Status> {
        let call = self.access.open("Query", Scope::Query, 1, request_meta(&request)).map_err(status_from_engine)?;
        let span = call.span();
        QueryApi::query(self, &call, request.into_inner()).instrument(span).await.map(Response::new)
    }

    type ExportStream = futures::stream::BoxStream<'static, Result<pb::ExportResponse, Status>>;

    async fn export(&self, request: Request<pb::ExportRequest>) -> Result<Response<Self::ExportStream>, Status> {
        let call = self.access.open("Export", Scope::Export, 1, request_meta(&request)).map_err(status_from_engine)?;
        let span = call.span();
        QueryApi::export(self, &call, request.into_inner()).instrument(span).await.map(Response::new)
    }

    async fn summarize(&self, request: Request<pb::SummarizeRequest>) -> Result<Response<pb::SummarizeResponse>, Status> {
        let call = self.access.open("Summarize", Scope::Query, 1, request_meta(&request)).map_err(status_from_engine)?;
        let span = call.span();
        QueryApi::summarize(self, &call, request.into_inner()).instrument(span).await.map(Response::new)
    }

    type SubscribeStream = futures::stream::BoxStream<'static, Result<pb::SubscribeResponse, Status>>;

    async fn subscribe(&self, request: Request<pb::SubscribeRequest>) -> Result<Response<Self::SubscribeStream>, Status> {
        let call = self.access.open("Subscribe", Scope::Query, 1, request_meta(&request)).map_err(status_from_engine)?;
        let span = call.span();
        QueryApi::subscribe(self, &call, request.into_inner()).instrument(span).await.map(Response::new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(tenant: &str) -> pb::EventFilter {
        pb::EventFilter { tenant_id: tenant.into(), ..Default::default() }
    }

    #[test]
    fn wire_filters_convert_with_the_field_named() {
        assert!(filter_spec(None).unwrap_err().message().starts_with("filter: required"));
        let bad_time = pb::EventFilter { start_time: Some(prost_types::Timestamp { seconds: 0, nanos: -1 }), ..filter("acme") };
        assert!(filter_spec(Some(&bad_time)).unwrap_err().message().starts_with("filter.start_time:"));
        let bad_enum = pb::EventFilter { actor_type: 99, ..filter("acme") };
        assert!(filter_spec(Some(&bad_enum)).unwrap_err().message().starts_with("filter.actor_type:"));
        let typed =
            pb::EventFilter { actor_type: pb::ActorType::ApiKey as i32, outcome: pb::OutcomeResult::Denied as i32, ..filter("acme") };
        let spec = filter_spec(Some(&typed)).unwrap();
        assert_eq!((spec.actor_type.as_deref(), spec.outcome.as_deref()), (Some("api_key"), Some("denied")));
    }

    #[test]
    fn time_bounds_round_up_to_microseconds() {
        let spec = filter_spec(Some(&pb::EventFilter {
            start_time: Some(prost_types::Timestamp { seconds: 1, nanos: 1 }),
            end_time: Some(prost_types::Timestamp { seconds: 2, nanos: 0 }),
            ..filter("acme")
        }))
        .unwrap();
        assert_eq!((spec.start, spec.end), (Some(1_000_001), Some(2_000_000)));
    }
}
