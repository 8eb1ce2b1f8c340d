//! An Append larger than even the decoder's limit (twice the 4 MiB call limit, so that calls in
//! between get the precise per-field answer of validation) is refused by tonic before any of our
//! code runs, as OUT_OF_RANGE naming the decoder's limit. This wrapper answers it as every other
//! oversized call is answered: INVALID_ARGUMENT naming the size and the 4 MiB limit.

use auditum_proto::validate::MAX_APPEND_BYTES;
use std::convert::Infallible;
use std::task::{Context, Poll};
use tonic::codegen::{BoxFuture, Service, http};
use tonic::server::NamedService;
use tonic::{Code, Status};

#[derive(Debug, Clone)]
pub struct CallSizeAnswer<S>(pub S);

impl<S: NamedService> NamedService for CallSizeAnswer<S> {
    const NAME: &'static str = S::NAME;
}

impl<S, B> Service<http::Request<B>> for CallSizeAnswer<S>
where
    S: Service<http::Request<B>, Response = http::Response<tonic::body::Body>, Error = Infallible>,
    S::Future: Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, context: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_ready(context)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let answer = self.0.call(request);
        Box::pin(async move { Ok(reworded(answer.await?)) })
    }
}

fn reworded(response: http::Response<tonic::body::Body>) -> http::Response<tonic::body::Body> {
    let Some(status) = response.extensions().get::<Status>() else { return response };
    if status.code() != Code::OutOfRange || !status.message().starts_with("Error, decoded message length too large") {
        return response;
    }
    let found = status.message().split("found ").nth(1).and_then(|rest| rest.split(' ').next()).unwrap_or("more than the limit's");
    Status::invalid_argument(format!("request: encoded size {found} bytes exceeds the limit of {MAX_APPEND_BYTES} bytes")).into_http()
}
