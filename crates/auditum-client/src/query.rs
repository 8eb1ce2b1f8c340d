//! Reading a tenant's events page by page (keyset pagination, docs/API.md).

use crate::{AuthChannel, Error, Result};
use auditum_proto::pb;

/// Pages through a query: each call returns the next page until none is left.
pub struct Pager {
    client: pb::query_service_client::QueryServiceClient<AuthChannel>,
    filter: pb::EventFilter,
    descending: bool,
    token: String,
    done: bool,
}

impl Pager {
    pub fn new(channel: AuthChannel, filter: pb::EventFilter, descending: bool) -> Pager {
        // Pages are bounded by the server; the limit here only guards against a broken one.
        let client = pb::query_service_client::QueryServiceClient::new(channel).max_decoding_message_size(256 * 1024 * 1024);
        Pager { client, filter, descending, token: String::new(), done: false }
    }

    /// The next page of at most `page_size` events, or None after the last one.
    pub async fn next_page(&mut self, page_size: u32) -> Result<Option<pb::QueryResponse>> {
        if self.done {
            return Ok(None);
        }
        let request =
            pb::QueryRequest { filter: Some(self.filter.clone()), page_size, page_token: self.token.clone(), descending: self.descending };
        let response = self.client.query(request).await.map_err(Error::rpc("Query"))?.into_inner();
        self.token = response.next_page_token.clone();
        self.done = self.token.is_empty();
        Ok(Some(response))
    }

    /// Whether more events follow the pages read so far.
    pub fn has_more(&self) -> bool {
        !self.done
    }
}
