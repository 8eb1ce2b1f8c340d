//! The gRPC codec: prost's, except that a request that does not decode is the caller's error
//! (INVALID_ARGUMENT), not INTERNAL. Deeply nested Structs beyond prost's recursion limit land here.
//! Messages (responses, and the clients' requests) are encoded into a buffer reserved for the
//! whole message at once.

use prost::Message;
use std::marker::PhantomData;
use tonic::Status;
use tonic::codec::{BufferSettings, DecodeBuf, EncodeBuf};
use tonic_prost::ProstDecoder;

#[derive(Debug, Clone, Copy)]
pub struct Codec<T, U>(PhantomData<(T, U)>);

impl<T, U> Default for Codec<T, U> {
    fn default() -> Self {
        Codec(PhantomData)
    }
}

impl<T, U> tonic::codec::Codec for Codec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = Encoder<T>;
    type Decoder = Decoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        Encoder(PhantomData)
    }

    fn decoder(&mut self) -> Self::Decoder {
        Decoder(ProstDecoder::default())
    }
}

#[derive(Debug)]
pub struct Decoder<U>(ProstDecoder<U>);

impl<U: Message + Default> tonic::codec::Decoder for Decoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        self.0.decode(buf).map_err(|status| {
            // prost's message lists every nesting level: keep only what went wrong.
            let message = status.message();
            let reason = message.rsplit(": ").next().unwrap_or(message);
            if reason.contains("recursion limit") {
                return Status::invalid_argument(format!(
                    "message: nested too deeply to decode; Struct values are limited to {} levels",
                    auditum_format::rules::MAX_STRUCT_DEPTH
                ));
            }
            Status::invalid_argument(format!("message: not a valid protobuf message: {reason}"))
        })
    }

    fn buffer_settings(&self) -> BufferSettings {
        self.0.buffer_settings()
    }
}

#[derive(Debug)]
pub struct Encoder<T>(PhantomData<T>);

impl<T: Message> tonic::codec::Encoder for Encoder<T> {
    type Item = T;
    type Error = Status;

    fn encode(&mut self, item: T, buf: &mut EncodeBuf<'_>) -> Result<(), Status> {
        // prost writes into the buffer as it goes, and the buffer grows by doubling: a large
        // answer (a Summarize of 70,000 groups is ~2.5 MB) was copied at every step and faulted in
        // fresh pages for each copy. One reservation of the exact size avoids both.
        buf.reserve(item.encoded_len());
        item.encode(buf).map_err(|error| Status::internal(format!("encoding the message: {error}")))
    }
}
