//! The `envoy.service.auth.v3.Authorization` gRPC service: routing, the
//! codec, and the wire encoding of an allowed Check.
//!
//! It stands in for envoy-types' generated `AuthorizationServer` for one
//! reason: an allowed Check, the answer on every request path, is written
//! straight to the wire ([`AllowAnswer`]) instead of being built as a
//! `CheckResponse` of owned strings and a hashed metadata map, then encoded
//! and dropped; and a request reaches [`super::ExtAuthz::check`] as the
//! frame's bytes, which [`super::wire`] reads in place (fields borrowed,
//! nothing copied) rather than decoding a whole envoy-types
//! `CheckRequest`. The frame size limit is tonic's, as in the generated
//! server; every answer other than an allow is a `CheckResponse`. The
//! allow's bytes decode to exactly the message [`super::response::decided`]
//! builds (unit test below). Mapping and deciding are
//! [`super::ExtAuthz`]'s, not this module's.

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};

use envoy_types::pb::envoy::config::core::v3::header_value_option::HeaderAppendAction;
use envoy_types::pb::envoy::service::auth::v3::CheckResponse;
use prost::Message;
use prost::bytes::{Buf, BufMut, Bytes};
use prost::encoding::{WireType, encode_key, encode_varint, encoded_len_varint, key_len};
use tonic::body::Body;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::codegen::{Body as HttpBody, BoxFuture, StdError};
use tonic::server::{Grpc, NamedService, UnaryService};

use super::ExtAuthz;
use super::response::{DECISION_ID_HEADER, PRINCIPAL_HEADER};

/// The one method of the service.
pub const CHECK_PATH: &str = "/envoy.service.auth.v3.Authorization/Check";

/// What a Check answers.
#[derive(Debug)]
pub enum CheckAnswer {
    /// Any answer, as the envoy-types message.
    Message(Box<CheckResponse>),
    /// An allow, encoded without building the message.
    Allowed(AllowAnswer),
}

impl From<CheckResponse> for CheckAnswer {
    fn from(m: CheckResponse) -> Self {
        CheckAnswer::Message(Box::new(m))
    }
}

impl CheckAnswer {
    /// The protobuf encoding (what goes in the gRPC frame).
    pub fn encode_to_vec(&self) -> Vec<u8> {
        match self {
            CheckAnswer::Message(m) => m.encode_to_vec(),
            CheckAnswer::Allowed(a) => {
                let mut out = Vec::with_capacity(a.encoded_len());
                a.encode(&mut out);
                out
            }
        }
    }
}

/// An allowed Check: status OK, an `ok_response` that overwrites
/// `x-iamgate-decision-id` and `x-iamgate-principal` upstream, and
/// `dynamic_metadata` with `decision_id`, `decision` and `revision`.
#[derive(Debug, Clone)]
pub struct AllowAnswer {
    pub decision_id: String,
    pub principal: String,
    pub revision: Arc<str>,
}

// Field numbers, from envoy/service/auth/v3/external_auth.proto,
// envoy/config/core/v3/base.proto and google/protobuf/struct.proto.
const CHECK_STATUS: u32 = 1;
const CHECK_OK_RESPONSE: u32 = 3;
const CHECK_DYNAMIC_METADATA: u32 = 4;
const OK_HEADERS: u32 = 2;
const OPTION_HEADER: u32 = 1;
const OPTION_APPEND_ACTION: u32 = 3;
const HEADER_KEY: u32 = 1;
const HEADER_VALUE: u32 = 2;
const STRUCT_FIELDS: u32 = 1;
const ENTRY_KEY: u32 = 1;
const ENTRY_VALUE: u32 = 2;
const VALUE_STRING: u32 = 3;
const OVERWRITE: u64 = HeaderAppendAction::OverwriteIfExistsOrAdd as u64;

impl AllowAnswer {
    fn metadata(&self) -> [(&str, &str); 3] {
        [
            ("decision_id", &self.decision_id),
            ("decision", "allowed"),
            ("revision", &self.revision),
        ]
    }

    fn ok_len(&self) -> usize {
        delimited_len(
            OK_HEADERS,
            option_len(DECISION_ID_HEADER, &self.decision_id),
        ) + delimited_len(OK_HEADERS, option_len(PRINCIPAL_HEADER, &self.principal))
    }

    fn metadata_len(&self) -> usize {
        self.metadata()
            .iter()
            .map(|(k, v)| delimited_len(STRUCT_FIELDS, entry_len(k, v)))
            .sum()
    }

    /// The encoded length.
    pub fn encoded_len(&self) -> usize {
        delimited_len(CHECK_STATUS, 0)
            + delimited_len(CHECK_OK_RESPONSE, self.ok_len())
            + delimited_len(CHECK_DYNAMIC_METADATA, self.metadata_len())
    }

    fn encode(&self, buf: &mut impl BufMut) {
        // `google.rpc.Status` with code OK: an empty message.
        head(CHECK_STATUS, 0, buf);
        head(CHECK_OK_RESPONSE, self.ok_len(), buf);
        put_option(DECISION_ID_HEADER, &self.decision_id, buf);
        put_option(PRINCIPAL_HEADER, &self.principal, buf);
        head(CHECK_DYNAMIC_METADATA, self.metadata_len(), buf);
        for (k, v) in self.metadata() {
            head(STRUCT_FIELDS, entry_len(k, v), buf);
            put_str(ENTRY_KEY, k, buf);
            head(ENTRY_VALUE, delimited_len(VALUE_STRING, v.len()), buf);
            put_str(VALUE_STRING, v, buf);
        }
    }
}

/// Length of a length-delimited field whose payload is `len` bytes.
fn delimited_len(tag: u32, len: usize) -> usize {
    key_len(tag) + encoded_len_varint(len as u64) + len
}

fn head(tag: u32, len: usize, buf: &mut impl BufMut) {
    encode_key(tag, WireType::LengthDelimited, buf);
    encode_varint(len as u64, buf);
}

fn put_str(tag: u32, s: &str, buf: &mut impl BufMut) {
    head(tag, s.len(), buf);
    buf.put_slice(s.as_bytes());
}

/// A `HeaderValue`'s payload.
fn header_len(key: &str, value: &str) -> usize {
    delimited_len(HEADER_KEY, key.len()) + delimited_len(HEADER_VALUE, value.len())
}

/// A `HeaderValueOption`'s payload: the header and `append_action`.
fn option_len(key: &str, value: &str) -> usize {
    delimited_len(OPTION_HEADER, header_len(key, value))
        + key_len(OPTION_APPEND_ACTION)
        + encoded_len_varint(OVERWRITE)
}

fn put_option(key: &str, value: &str, buf: &mut impl BufMut) {
    head(OK_HEADERS, option_len(key, value), buf);
    head(OPTION_HEADER, header_len(key, value), buf);
    put_str(HEADER_KEY, key, buf);
    put_str(HEADER_VALUE, value, buf);
    encode_key(OPTION_APPEND_ACTION, WireType::Varint, buf);
    encode_varint(OVERWRITE, buf);
}

/// A `Struct.fields` map entry's payload: the key and a string `Value`.
fn entry_len(key: &str, value: &str) -> usize {
    delimited_len(ENTRY_KEY, key.len())
        + delimited_len(ENTRY_VALUE, delimited_len(VALUE_STRING, value.len()))
}

/// Encodes [`CheckAnswer`]s.
#[derive(Debug, Default)]
pub struct AnswerEncoder;

impl Encoder for AnswerEncoder {
    type Item = CheckAnswer;
    type Error = tonic::Status;

    fn encode(&mut self, item: CheckAnswer, buf: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        match &item {
            CheckAnswer::Message(m) => m
                .encode(buf)
                .map_err(|e| tonic::Status::internal(format!("encoding the CheckResponse: {e}"))),
            CheckAnswer::Allowed(a) => {
                buf.reserve(a.encoded_len());
                a.encode(buf);
                Ok(())
            }
        }
    }
}

/// Hands over a request frame's bytes as they are.
#[derive(Debug, Default)]
pub struct FrameDecoder;

impl Decoder for FrameDecoder {
    type Item = Bytes;
    type Error = tonic::Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, tonic::Status> {
        Ok(Some(buf.copy_to_bytes(buf.remaining())))
    }
}

/// A `CheckRequest`'s bytes in, [`CheckAnswer`] out.
#[derive(Debug, Default, Clone, Copy)]
pub struct CheckCodec;

impl Codec for CheckCodec {
    type Encode = CheckAnswer;
    type Decode = Bytes;
    type Encoder = AnswerEncoder;
    type Decoder = FrameDecoder;

    fn encoder(&mut self) -> AnswerEncoder {
        AnswerEncoder
    }

    fn decoder(&mut self) -> FrameDecoder {
        FrameDecoder
    }
}

/// The tower service for the gRPC router.
#[derive(Debug, Clone)]
pub struct AuthorizationService {
    inner: Arc<ExtAuthz>,
    max_decoding_message_size: usize,
}

impl AuthorizationService {
    /// `inner` answers Checks of at most `max_decoding_message_size` bytes.
    pub fn new(inner: ExtAuthz, max_decoding_message_size: usize) -> Self {
        Self {
            inner: Arc::new(inner),
            max_decoding_message_size,
        }
    }
}

impl NamedService for AuthorizationService {
    const NAME: &'static str = "envoy.service.auth.v3.Authorization";
}

struct CheckMethod(Arc<ExtAuthz>);

impl UnaryService<Bytes> for CheckMethod {
    type Response = CheckAnswer;
    type Future = std::future::Ready<Result<tonic::Response<CheckAnswer>, tonic::Status>>;

    fn call(&mut self, request: tonic::Request<Bytes>) -> Self::Future {
        // Deciding never waits, so the answer is ready at once.
        std::future::ready(self.0.check(request.get_ref()).map(tonic::Response::new))
    }
}

impl<B> tower::Service<http::Request<B>> for AuthorizationService
where
    B: HttpBody + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Infallible>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        if req.uri().path() != CHECK_PATH {
            return Box::pin(async { Ok(tonic::Status::unimplemented("").into_http()) });
        }
        let method = CheckMethod(Arc::clone(&self.inner));
        let max = self.max_decoding_message_size;
        Box::pin(async move {
            let mut grpc = Grpc::new(CheckCodec).apply_max_message_size_config(Some(max), None);
            Ok(grpc.unary(method, req).await)
        })
    }
}

// ── The listener's direct path ─────────────────────────────────────────

/// Most request bytes buffered in one piece before the frame is read.
const GRPC_PREFIX: usize = 5;

impl AuthorizationService {
    /// Answers one `Check` call straight off the connection: the gRPC
    /// listener (`server::grpc`) hands every request for [`CHECK_PATH`]
    /// here rather than through tonic's router and generic unary server,
    /// which box the body, build a metadata map, stream-decode the frame
    /// and encode the answer through an 8 KiB buffer on every call. What
    /// the client sees is what tonic answers: the same statuses and
    /// messages for a compressed, oversized, missing or truncated message
    /// (see [`read_frame`]), `content-type: application/grpc`, one
    /// length-prefixed message and `grpc-status: 0` trailers.
    pub fn call_direct<B>(&self, req: http::Request<B>) -> DirectCheck<B>
    where
        B: HttpBody<Data = Bytes> + Unpin,
        B::Error: std::fmt::Display,
    {
        let encoding = req
            .headers()
            .get("grpc-encoding")
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
        let refused = match encoding.as_deref() {
            None | Some("identity") => None,
            // tonic's words when no compression is enabled.
            Some(other) => Some(tonic::Status::unimplemented(format!(
                "Content is compressed with `{other}` which isn't supported"
            ))),
        };
        DirectCheck {
            inner: Arc::clone(&self.inner),
            body: req.into_body(),
            buf: None,
            max: self.max_decoding_message_size,
            refused,
        }
    }
}

/// The future of [`AuthorizationService::call_direct`]: reads the request
/// body to its end (bounded by the message size limit), then decides.
pub struct DirectCheck<B> {
    inner: Arc<ExtAuthz>,
    body: B,
    /// What has arrived: the first DATA frame as is, later ones appended.
    buf: Option<Bytes>,
    max: usize,
    refused: Option<tonic::Status>,
}

impl<B> std::future::Future for DirectCheck<B>
where
    B: HttpBody<Data = Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    type Output = http::Response<Body>;

    fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        if let Some(status) = this.refused.take() {
            return Poll::Ready(status.into_http());
        }
        loop {
            let frame = match std::pin::Pin::new(&mut this.body).poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => break,
                Poll::Ready(Some(Err(e))) => {
                    return Poll::Ready(
                        tonic::Status::internal(format!(
                            "error reading a body from connection: {e}"
                        ))
                        .into_http(),
                    );
                }
                Poll::Ready(Some(Ok(frame))) => frame,
            };
            // Request trailers carry nothing a Check reads.
            let Ok(data) = frame.into_data() else {
                continue;
            };
            this.buf = Some(match this.buf.take() {
                None => data,
                Some(held) => {
                    let mut joined = Vec::with_capacity(held.len() + data.len());
                    joined.extend_from_slice(&held);
                    joined.extend_from_slice(&data);
                    Bytes::from(joined)
                }
            });
            // Past the limit: stop reading (tonic refuses it the same way).
            let held = this.buf.as_ref().map_or(0, Bytes::len);
            if held > this.max.saturating_add(GRPC_PREFIX) {
                break;
            }
        }
        let buf = this.buf.take().unwrap_or_default();
        let answer = read_frame(&buf, this.max).and_then(|message| this.inner.check(message));
        Poll::Ready(match answer {
            Ok(answer) => grpc_ok(&answer),
            Err(status) => status.into_http(),
        })
    }
}

/// The one message of a unary request body, as tonic reads it: a
/// compressed flag without `grpc-encoding` is a protocol error, a length
/// over `max` is OUT_OF_RANGE, no message or a truncated one is INTERNAL;
/// whole messages after the first are read and dropped.
fn read_frame(buf: &[u8], max: usize) -> Result<&[u8], tonic::Status> {
    let mut rest = buf;
    let mut first = None;
    while !rest.is_empty() {
        let (Some(&flag), Some(len)) = (
            rest.first(),
            rest.get(1..GRPC_PREFIX)
                .and_then(|b| <[u8; 4]>::try_from(b).ok()),
        ) else {
            return Err(tonic::Status::internal("Unexpected EOF decoding stream."));
        };
        match flag {
            0 => {}
            1 => {
                return Err(tonic::Status::internal(
                    "protocol error: received message with compressed-flag but no grpc-encoding was specified",
                ));
            }
            f => {
                return Err(tonic::Status::internal(format!(
                    "protocol error: received message with invalid compression flag: {f} (valid flags are 0 and 1) while receiving request"
                )));
            }
        }
        let len = usize::try_from(u32::from_be_bytes(len)).unwrap_or(usize::MAX);
        if len > max {
            return Err(tonic::Status::out_of_range(format!(
                "Error, decoded message length too large: found {len} bytes, the limit is: {max} bytes"
            )));
        }
        let end = GRPC_PREFIX.saturating_add(len);
        let Some(message) = rest.get(GRPC_PREFIX..end) else {
            return Err(tonic::Status::internal("Unexpected EOF decoding stream."));
        };
        first.get_or_insert(message);
        rest = rest.get(end..).unwrap_or_default();
    }
    first.ok_or_else(|| tonic::Status::internal("Missing request message."))
}

/// An OK answer: `content-type: application/grpc`, the answer as one
/// uncompressed length-prefixed message, then `grpc-status: 0`.
fn grpc_ok(answer: &CheckAnswer) -> http::Response<Body> {
    let len = match answer {
        CheckAnswer::Message(m) => m.encoded_len(),
        CheckAnswer::Allowed(a) => a.encoded_len(),
    };
    let Ok(prefix) = u32::try_from(len) else {
        return tonic::Status::internal("the CheckResponse is too large to send").into_http();
    };
    let mut frame = Vec::with_capacity(GRPC_PREFIX + len);
    frame.push(0);
    frame.extend_from_slice(&prefix.to_be_bytes());
    match answer {
        // A `Vec` grows as needed: encoding into it cannot fail.
        CheckAnswer::Message(m) => m.encode_raw(&mut frame),
        CheckAnswer::Allowed(a) => a.encode(&mut frame),
    }
    let mut response = http::Response::new(Body::new(OneMessage {
        data: Some(Bytes::from(frame)),
        trailers: true,
    }));
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/grpc"),
    );
    response
}

/// A gRPC response body: one DATA frame, then `grpc-status: 0`.
struct OneMessage {
    data: Option<Bytes>,
    trailers: bool,
}

impl HttpBody for OneMessage {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Bytes>, Infallible>>> {
        if let Some(data) = self.data.take() {
            return Poll::Ready(Some(Ok(hyper::body::Frame::data(data))));
        }
        if std::mem::take(&mut self.trailers) {
            let mut trailers = http::HeaderMap::with_capacity(1);
            trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
            return Poll::Ready(Some(Ok(hyper::body::Frame::trailers(trailers))));
        }
        Poll::Ready(None)
    }

    fn is_end_stream(&self) -> bool {
        self.data.is_none() && !self.trailers
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bundle::AuthzAnswer;
    use crate::engine::Outcome;
    use crate::server::ext_authz::response;
    use crate::server::state::Decided;

    /// The hand-written allow decodes to the message `response::decided`
    /// builds, for short and long (multi-byte length) values.
    #[test]
    fn allow_bytes_decode_to_the_reference_message() {
        for (id, principal, revision) in [
            ("abc-000000000001", "arn:aws:iam::1:user/bob", "rev-7"),
            ("", "", ""),
            (
                &*"d".repeat(300),
                &*format!("arn:aws:iam::111122223333:user/{}", "p".repeat(20_000)),
                &*"r".repeat(130),
            ),
        ] {
            let allow = AllowAnswer {
                decision_id: id.to_owned(),
                principal: principal.to_owned(),
                revision: revision.into(),
            };
            let reference = response::decided(
                &Decided {
                    answer: AuthzAnswer {
                        decision: Outcome::Allowed,
                        reason: crate::engine::Reason::IdentityAllows.into(),
                        matched: Vec::new(),
                        missing_context_keys: Vec::new(),
                        revision: revision.into(),
                    },
                    decision_id: id.to_owned(),
                },
                principal,
            );
            let bytes = CheckAnswer::Allowed(allow.clone()).encode_to_vec();
            assert_eq!(bytes.len(), allow.encoded_len());
            assert_eq!(CheckResponse::decode(bytes.as_slice()).unwrap(), reference);
            let message = CheckAnswer::from(reference.clone()).encode_to_vec();
            assert_eq!(
                CheckResponse::decode(message.as_slice()).unwrap(),
                reference
            );
        }
    }

    /// Issue 12: the direct path reads a request body as tonic's unary
    /// server does: one message, tonic's statuses for the rest.
    #[test]
    fn read_frame_answers_as_tonic() {
        let frame = |flag: u8, msg: &[u8]| {
            let mut f = vec![flag];
            f.extend_from_slice(&u32::try_from(msg.len()).unwrap().to_be_bytes());
            f.extend_from_slice(msg);
            f
        };
        assert_eq!(read_frame(&frame(0, b"abc"), 10).unwrap(), b"abc");
        assert_eq!(read_frame(&frame(0, b""), 10).unwrap(), b"");
        // Whole messages after the first are read and dropped.
        let two = [frame(0, b"first"), frame(0, b"second")].concat();
        assert_eq!(read_frame(&two, 10).unwrap(), b"first");
        let code = |buf: &[u8]| read_frame(buf, 10).unwrap_err();
        assert_eq!(code(b"").code(), tonic::Code::Internal);
        assert_eq!(code(b"").message(), "Missing request message.");
        for truncated in [&frame(0, b"abc")[..6], &[0, 0, 0][..], &two[..12]] {
            let e = code(truncated);
            assert_eq!(e.code(), tonic::Code::Internal, "{truncated:?}");
            assert_eq!(e.message(), "Unexpected EOF decoding stream.");
        }
        let compressed = code(&frame(1, b"abc"));
        assert_eq!(compressed.code(), tonic::Code::Internal);
        assert!(compressed.message().contains("compressed-flag"));
        assert_eq!(code(&frame(2, b"abc")).code(), tonic::Code::Internal);
        let big = code(&frame(0, &[7; 11]));
        assert_eq!(big.code(), tonic::Code::OutOfRange);
        assert!(big.message().contains("message length too large"));
    }

    /// Issue 12: the direct path's OK answer is one length-prefixed
    /// message (the allow's bytes) and `grpc-status: 0` trailers.
    #[tokio::test]
    async fn grpc_ok_is_one_message_then_status() {
        use http_body_util::BodyExt as _;
        let allow = CheckAnswer::Allowed(AllowAnswer {
            decision_id: "d-1".to_owned(),
            principal: "arn:aws:iam::1:user/bob".to_owned(),
            revision: "r".into(),
        });
        let response = grpc_ok(&allow);
        assert_eq!(
            response.headers().get("content-type").unwrap(),
            "application/grpc"
        );
        let collected = response.into_body().collect().await.unwrap();
        let trailers = collected.trailers().cloned().unwrap();
        assert_eq!(trailers.get("grpc-status").unwrap(), "0");
        let bytes = collected.to_bytes();
        let message = allow.encode_to_vec();
        assert_eq!(bytes[0], 0);
        assert_eq!(
            u32::from_be_bytes(bytes[1..5].try_into().unwrap()) as usize,
            message.len()
        );
        assert_eq!(&bytes[5..], &message[..]);
    }

    /// Issue 12: `prost::encoding` is `#[doc(hidden)]`, outside prost's
    /// semver, so Cargo.toml pins prost exactly; this pins what the allow
    /// writer takes from it to the protobuf wire format itself (golden
    /// bytes from the encoding spec), so a prost upgrade that changes any
    /// of these fails here rather than on the wire.
    #[test]
    fn prost_encoding_primitives_match_the_wire_format() {
        let key = |tag, wire| {
            let mut out = Vec::new();
            encode_key(tag, wire, &mut out);
            out
        };
        // (field number << 3) | wire type, as a varint.
        assert_eq!(key(1, WireType::LengthDelimited), [0x0a]);
        assert_eq!(key(3, WireType::Varint), [0x18]);
        assert_eq!(key(4, WireType::LengthDelimited), [0x22]);
        assert_eq!(key(16, WireType::LengthDelimited), [0x82, 0x01]);
        assert_eq!(key_len(15), 1);
        assert_eq!(key_len(16), 2);
        let varint = |v| {
            let mut out = Vec::new();
            encode_varint(v, &mut out);
            out
        };
        assert_eq!(varint(0), [0x00]);
        assert_eq!(varint(1), [0x01]);
        assert_eq!(varint(127), [0x7f]);
        assert_eq!(varint(300), [0xac, 0x02]);
        assert_eq!(varint(16_384), [0x80, 0x80, 0x01]);
        for v in [
            0,
            1,
            127,
            128,
            300,
            16_383,
            16_384,
            u64::from(u32::MAX),
            u64::MAX,
        ] {
            assert_eq!(encoded_len_varint(v), varint(v).len(), "{v}");
        }
        assert_eq!(encoded_len_varint(u64::MAX), 10);
        // A whole allow, byte for byte: status {} (0a 00), ok_response with
        // the two headers (append_action OVERWRITE_IF_EXISTS_OR_ADD = 2),
        // dynamic_metadata with three string fields.
        let allow = AllowAnswer {
            decision_id: "d".to_owned(),
            principal: "p".to_owned(),
            revision: "r".into(),
        };
        let mut want: Vec<u8> = vec![0x0a, 0x00];
        let option = |k: &str, v: &str| {
            let header: Vec<u8> = [
                &[0x0a, k.len() as u8][..],
                k.as_bytes(),
                &[0x12, v.len() as u8],
                v.as_bytes(),
            ]
            .concat();
            let opt: Vec<u8> = [&[0x0a, header.len() as u8][..], &header, &[0x18, 0x02]].concat();
            [&[0x12, opt.len() as u8][..], &opt].concat()
        };
        let ok: Vec<u8> = [
            option(DECISION_ID_HEADER, "d"),
            option(PRINCIPAL_HEADER, "p"),
        ]
        .concat();
        want.extend([0x1a, ok.len() as u8]);
        want.extend(&ok);
        let entry = |k: &str, v: &str| {
            let value: Vec<u8> = [&[0x1a, v.len() as u8][..], v.as_bytes()].concat();
            let e: Vec<u8> = [
                &[0x0a, k.len() as u8][..],
                k.as_bytes(),
                &[0x12, value.len() as u8],
                &value,
            ]
            .concat();
            [&[0x0a, e.len() as u8][..], &e].concat()
        };
        let meta: Vec<u8> = [
            entry("decision_id", "d"),
            entry("decision", "allowed"),
            entry("revision", "r"),
        ]
        .concat();
        want.extend([0x22, meta.len() as u8]);
        want.extend(&meta);
        assert_eq!(CheckAnswer::Allowed(allow).encode_to_vec(), want);
    }
}
