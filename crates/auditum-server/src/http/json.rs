//! The protobuf JSON mapping of the API's messages, from the same descriptors gRPC reflection
//! serves: a request body becomes the prost message the gRPC service takes, and a response
//! message becomes canonical proto3 JSON (lowerCamelCase names, enum names, 64-bit integers as
//! strings, RFC 3339 timestamps). Fields with default values are written too (`"seq": "0"`,
//! `"nextPageToken": ""`): a client need not know the defaults to read an answer.

use prost::Message;
use prost_reflect::{DescriptorPool, DeserializeOptions, DynamicMessage, MessageDescriptor, MethodDescriptor, SerializeOptions};
use tonic::Status;

#[derive(Debug, Clone)]
pub struct JsonMapping {
    pool: DescriptorPool,
}

impl JsonMapping {
    pub fn new() -> Result<JsonMapping, String> {
        let pool = DescriptorPool::decode(auditum_proto::pb::FILE_DESCRIPTOR_SET).map_err(|error| format!("api descriptors: {error}"))?;
        Ok(JsonMapping { pool })
    }

    /// `auditum.v1.<service>` / `<method>`, as named in the proto files.
    pub fn method(&self, service: &str, method: &str) -> Option<MethodDescriptor> {
        self.pool.get_service_by_name(&format!("auditum.v1.{service}"))?.methods().find(|candidate| candidate.name() == method)
    }

    pub fn message(&self, full_name: &str) -> Option<MessageDescriptor> {
        self.pool.get_message_by_name(full_name)
    }

    /// A request body (an empty body is the empty message) as the prost message `T`. Unknown
    /// fields are refused: a misspelt filter must not silently widen a search.
    pub fn decode<T: Message + Default>(&self, descriptor: &MessageDescriptor, body: &[u8]) -> Result<T, Status> {
        let body = if body.iter().all(u8::is_ascii_whitespace) { b"{}".as_slice() } else { body };
        let mut deserializer = serde_json::Deserializer::from_slice(body);
        let dynamic = DynamicMessage::deserialize_with_options(descriptor.clone(), &mut deserializer, &DeserializeOptions::new())
            .and_then(|message| deserializer.end().map(|()| message))
            .map_err(|error| {
                Status::invalid_argument(format!("request body: not a {} in the protobuf JSON mapping: {error}", descriptor.name()))
            })?;
        T::decode(dynamic.encode_to_vec().as_slice())
            .map_err(|error| Status::invalid_argument(format!("request body: {}: {error}", descriptor.name())))
    }

    /// A response message as JSON text.
    pub fn encode<T: Message>(&self, descriptor: &MessageDescriptor, message: &T) -> Result<Vec<u8>, Status> {
        let dynamic = DynamicMessage::decode(descriptor.clone(), message.encode_to_vec().as_slice())
            .map_err(|error| Status::internal(format!("response {}: {error}", descriptor.name())))?;
        let mut out = Vec::with_capacity(256);
        let mut serializer = serde_json::Serializer::new(&mut out);
        dynamic
            .serialize_with_options(&mut serializer, &SerializeOptions::new().skip_default_fields(false))
            .map_err(|error| Status::internal(format!("response {}: {error}", descriptor.name())))?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use auditum_proto::pb;

    #[test]
    fn requests_and_responses_use_the_canonical_mapping() {
        let mapping = JsonMapping::new().unwrap();
        let query = mapping.method("QueryService", "Query").unwrap();
        let body = br#"{"filter":{"tenantId":"acme","actor_id":"u1","outcome":"OUTCOME_RESULT_FAILURE","startTime":"2026-11-30T10:00:00.5Z"},"pageSize":7}"#;
        let request: pb::QueryRequest = mapping.decode(&query.input(), body).unwrap();
        let filter = request.filter.unwrap();
        assert_eq!((filter.tenant_id.as_str(), filter.actor_id.as_str(), request.page_size), ("acme", "u1", 7));
        assert_eq!(filter.outcome, pb::OutcomeResult::Failure as i32);
        assert_eq!(filter.start_time.map(|time| (time.seconds, time.nanos)), Some((1_796_032_800, 500_000_000)));

        let unknown = mapping.decode::<pb::QueryRequest>(&query.input(), br#"{"filter":{"tenant":"acme"}}"#).unwrap_err();
        assert_eq!(unknown.code(), tonic::Code::InvalidArgument);
        assert!(unknown.message().contains("tenant"), "{}", unknown.message());

        let response = pb::QueryResponse {
            events: vec![pb::StoredEvent { seq: 42, ..Default::default() }],
            next_page_token: String::new(),
            stats: None,
        };
        let json: serde_json::Value = serde_json::from_slice(&mapping.encode(&query.output(), &response).unwrap()).unwrap();
        let event = serde_json::json!({"seq": "42", "batchIndex": "0", "leafHash": "", "log": "", "sealed": false});
        assert_eq!(json, serde_json::json!({"events": [event], "nextPageToken": ""}), "defaults written, unset messages left out");
    }
}
