//! A borrowed reading of an Envoy ext_authz `CheckRequest` straight off the
//! wire: the fields the generic HTTP mapping reads, as slices of the
//! received bytes, without building the envoy-types message (a hash map of
//! owned strings for the headers, another for the context extensions, and
//! every field iamgate never reads). Owns only protobuf decoding; what the
//! fields mean is `mapping`'s, and the EC2 and network paths decode the
//! whole message with prost.
//!
//! It decodes as prost decodes the envoy-types `CheckRequest` (unit tests
//! compare the two): a later scalar or map entry wins, a known field with
//! the wrong wire type or a string that is not UTF-8 is an error. Two
//! things differ by design:
//! - Fields iamgate never reads (`destination`, `time`, TLS session,
//!   body, ...) are skipped by their length, not decoded, so a malformed
//!   value there is not an error. `metadata_context` is read only when the
//!   caller asks for values in it ([`CheckView::parse_with`]), and then only
//!   along the paths asked for.
//! - A message field sent more than once (protobuf merges the copies), a
//!   `oneof` set twice, or a group is [`WireError::Unusual`]: Envoy never
//!   sends these, and the caller re-encodes the message with prost (which
//!   merges) and reads that instead.
//!
//! Field numbers are from envoy/service/auth/v3/{external_auth,
//! attribute_context}.proto and envoy/config/core/v3/{address,base}.proto.

use smallvec::SmallVec;

/// Why the bytes could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// Not a valid `CheckRequest`.
    #[error("{0}")]
    Malformed(&'static str),
    /// Valid, but in a shape this reader leaves to prost (see the module
    /// documentation).
    #[error("a message field is repeated, a oneof is set twice, or a group is used")]
    Unusual,
}

/// A header as Envoy's `HeaderMap` carries it (`encode_raw_headers`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RawHeader<'a> {
    pub key: &'a str,
    pub value: &'a str,
    pub raw_value: &'a [u8],
}

/// Headers kept on the stack; more spill to the heap.
type HeaderList<'a> = SmallVec<[(&'a str, &'a str); 20]>;

/// `AttributeContext.Request.http`.
#[derive(Debug, Clone, Default)]
pub struct HttpFields<'a> {
    pub method: &'a str,
    /// The request target (path and query), as Envoy sends it.
    pub path: &'a str,
    pub host: &'a str,
    pub scheme: &'a str,
    /// The `headers` map, in wire order; a later entry for the same key
    /// replaces an earlier one (see [`HttpFields::header`]).
    pub headers: HeaderList<'a>,
    /// `header_map.headers`, in order.
    pub raw_headers: Vec<RawHeader<'a>>,
    /// `size`: the body's length as Envoy saw it (`-1`: unknown).
    pub size: i64,
    /// `body`, a proto `string`: its bytes, not checked to be UTF-8 here
    /// (only SigV4 routes read it, and check it then; prost would refuse
    /// the whole message).
    pub body: &'a [u8],
    /// `raw_body` (`pack_as_bytes`).
    pub raw_body: &'a [u8],
}

impl<'a> HttpFields<'a> {
    /// The `headers` map's value for `key` (exact match): the last entry
    /// wins, as when the map is decoded.
    pub fn header(&self, key: &str) -> Option<&'a str> {
        header(&self.headers, key)
    }
}

/// The value for `key` (exact match) in a `map<string, string>` read off
/// the wire (headers, context extensions): the last entry wins, as when the
/// map is decoded.
pub fn header<'a>(headers: &[(&'a str, &'a str)], key: &str) -> Option<&'a str> {
    headers
        .iter()
        .rev()
        .find(|(k, _)| *k == key)
        .map(|(_, v)| *v)
}

/// A value found in `metadata_context.filter_metadata` by a path of three
/// names: the namespace, a field of its struct, and a field of the struct
/// that field holds (Envoy's `jwt_authn`: its namespace, the provider's
/// `payload_in_metadata` key, a claim).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetadataValue<'a> {
    /// The path's first `n` names were found, the next was not (0: no such
    /// namespace; 2: the second name does not hold a struct, or that
    /// struct has no such field).
    Missing(usize),
    /// A string.
    String(&'a str),
    /// Any other kind of value: null, number, bool, struct, list, or none.
    Other,
}

/// A path into `metadata_context.filter_metadata`: see [`MetadataValue`].
pub type MetadataPath<'p> = [&'p str; 3];

/// The parts of a `CheckRequest` the generic mapping reads.
#[derive(Debug, Clone, Default)]
pub struct CheckView<'a> {
    /// Whether `attributes` is present.
    pub has_attributes: bool,
    /// `attributes.source.principal`.
    pub source_principal: &'a str,
    /// `attributes.source.address.socket_address.address`.
    pub source_address: Option<&'a str>,
    /// `attributes.request.http`; `None` for Envoy's network filter.
    pub http: Option<HttpFields<'a>>,
    /// `attributes.context_extensions`, one entry per key (the last sent).
    /// Inline room for a SigV4 route's (auth, region, service, action,
    /// resource and a few context keys) without a heap spill.
    pub extensions: SmallVec<[(&'a str, &'a str); 10]>,
    /// The values at the paths given to [`CheckView::parse_with`], in order.
    pub metadata: SmallVec<[MetadataValue<'a>; 2]>,
}

impl<'a> CheckView<'a> {
    /// Reads a `CheckRequest`'s encoding.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, WireError> {
        Self::parse_with(bytes, &[])
    }

    /// Reads a `CheckRequest`'s encoding and the values at `paths` in its
    /// `metadata_context` (into [`CheckView::metadata`]); without paths,
    /// `metadata_context` is skipped like any field iamgate does not read.
    pub fn parse_with(bytes: &'a [u8], paths: &[MetadataPath<'_>]) -> Result<Self, WireError> {
        let mut view = CheckView::default();
        let mut attributes = Once::default();
        let mut metadata = None;
        for field in Fields::new(bytes) {
            if let (1, value) = field? {
                attributes.take()?;
                view.has_attributes = true;
                metadata = view.attributes(value.bytes()?, !paths.is_empty())?;
            }
        }
        for path in paths {
            let value = match metadata {
                Some(m) => metadata_value(m, *path)?,
                None => MetadataValue::Missing(0),
            };
            view.metadata.push(value);
        }
        Ok(view)
    }

    /// The context extension `key`, if any.
    pub fn extension(&self, key: &str) -> Option<&'a str> {
        header(&self.extensions, key)
    }

    /// Reads `AttributeContext`; returns `metadata_context` if asked to.
    fn attributes(
        &mut self,
        bytes: &'a [u8],
        with_metadata: bool,
    ) -> Result<Option<&'a [u8]>, WireError> {
        let (mut source, mut request) = (Once::default(), Once::default());
        let (mut metadata_once, mut metadata) = (Once::default(), None);
        for field in Fields::new(bytes) {
            match field? {
                (1, value) => {
                    source.take()?;
                    self.peer(value.bytes()?)?;
                }
                (4, value) => {
                    request.take()?;
                    self.request(value.bytes()?)?;
                }
                (10, value) => {
                    let (key, value) = entry(value.bytes()?)?;
                    match self.extensions.iter_mut().find(|(k, _)| *k == key) {
                        Some(e) => e.1 = value,
                        None => self.extensions.push((key, value)),
                    }
                }
                (11, value) if with_metadata => {
                    metadata_once.take()?;
                    metadata = Some(value.bytes()?);
                }
                _ => {}
            }
        }
        Ok(metadata)
    }

    fn peer(&mut self, bytes: &'a [u8]) -> Result<(), WireError> {
        let mut address = Once::default();
        for field in Fields::new(bytes) {
            match field? {
                (1, value) => {
                    address.take()?;
                    self.source_address = socket_address(value.bytes()?)?;
                }
                (4, value) => self.source_principal = value.string()?,
                _ => {}
            }
        }
        Ok(())
    }

    fn request(&mut self, bytes: &'a [u8]) -> Result<(), WireError> {
        let mut http = Once::default();
        for field in Fields::new(bytes) {
            if let (2, value) = field? {
                http.take()?;
                self.http = Some(http_fields(value.bytes()?)?);
            }
        }
        Ok(())
    }
}

/// `Address`: its `socket_address.address`, or `None` for the other
/// members of its `oneof` (pipe, internal address).
fn socket_address(bytes: &[u8]) -> Result<Option<&str>, WireError> {
    let mut member = Once::default();
    let mut found = None;
    for field in Fields::new(bytes) {
        match field? {
            (1, value) => {
                member.take()?;
                let mut address = "";
                for f in Fields::new(value.bytes()?) {
                    if let (2, v) = f? {
                        address = v.string()?;
                    }
                }
                found = Some(address);
            }
            (2 | 3, value) => {
                member.take()?;
                value.bytes()?;
            }
            _ => {}
        }
    }
    Ok(found)
}

fn http_fields(bytes: &[u8]) -> Result<HttpFields<'_>, WireError> {
    let mut http = HttpFields::default();
    let mut header_map = Once::default();
    for field in Fields::new(bytes) {
        match field? {
            (2, value) => http.method = value.string()?,
            (3, value) => http.headers.push(entry(value.bytes()?)?),
            (4, value) => http.path = value.string()?,
            (5, value) => http.host = value.string()?,
            (6, value) => http.scheme = value.string()?,
            // An `int64`: the varint's bits, as prost casts them.
            (9, value) => http.size = value.varint()? as i64,
            (11, value) => http.body = value.bytes()?,
            (12, value) => http.raw_body = value.bytes()?,
            (13, value) => {
                header_map.take()?;
                for f in Fields::new(value.bytes()?) {
                    if let (1, v) = f? {
                        http.raw_headers.push(raw_header(v.bytes()?)?);
                    }
                }
            }
            _ => {}
        }
    }
    Ok(http)
}

/// The value at `path` in an encoded `config.core.v3.Metadata`.
fn metadata_value<'a>(
    metadata: &'a [u8],
    [namespace, key, field]: MetadataPath<'_>,
) -> Result<MetadataValue<'a>, WireError> {
    // `Metadata.filter_metadata` (1): map<string, Struct>; a `Struct`'s
    // `fields` (1): map<string, Value>.
    let Some(payload) = map_message(metadata, 1, namespace)? else {
        return Ok(MetadataValue::Missing(0));
    };
    let Some(value) = map_message(payload, 1, key)? else {
        return Ok(MetadataValue::Missing(1));
    };
    let Kind::Struct(inner) = value_kind(value)? else {
        return Ok(MetadataValue::Missing(2));
    };
    Ok(match map_message(inner, 1, field)? {
        None => MetadataValue::Missing(2),
        Some(value) => match value_kind(value)? {
            Kind::String(s) => MetadataValue::String(s),
            Kind::Struct(_) | Kind::Other => MetadataValue::Other,
        },
    })
}

/// The message value of `key` in the `map<string, message>` field
/// `number`: the last entry for the key wins, as when the map is decoded;
/// an entry without a value holds the empty message.
fn map_message<'a>(bytes: &'a [u8], number: u32, key: &str) -> Result<Option<&'a [u8]>, WireError> {
    let mut found = None;
    for field in Fields::new(bytes) {
        let (n, value) = field?;
        if n != number {
            continue;
        }
        let (mut k, mut v, mut once) = ("", None, Once::default());
        for f in Fields::new(value.bytes()?) {
            match f? {
                (1, x) => k = x.string()?,
                (2, x) => {
                    // Two values in one entry would be merged.
                    once.take()?;
                    v = Some(x.bytes()?);
                }
                _ => {}
            }
        }
        if k == key {
            found = Some(v.unwrap_or_default());
        }
    }
    Ok(found)
}

/// The kind of a `google.protobuf.Value`, as far as iamgate reads it.
enum Kind<'a> {
    String(&'a str),
    /// `struct_value`, encoded.
    Struct(&'a [u8]),
    Other,
}

fn value_kind(bytes: &[u8]) -> Result<Kind<'_>, WireError> {
    let (mut kind, mut once) = (Kind::Other, Once::default());
    for field in Fields::new(bytes) {
        // The `kind` oneof: null, number, string, bool, struct, list.
        if let (n @ 1..=6, value) = field? {
            once.take()?;
            kind = match n {
                3 => Kind::String(value.string()?),
                5 => Kind::Struct(value.bytes()?),
                _ => Kind::Other,
            };
        }
    }
    Ok(kind)
}

/// A `map<string, string>` entry; a missing key or value is empty.
fn entry(bytes: &[u8]) -> Result<(&str, &str), WireError> {
    let (mut key, mut value) = ("", "");
    for field in Fields::new(bytes) {
        match field? {
            (1, v) => key = v.string()?,
            (2, v) => value = v.string()?,
            _ => {}
        }
    }
    Ok((key, value))
}

fn raw_header(bytes: &[u8]) -> Result<RawHeader<'_>, WireError> {
    let mut h = RawHeader::default();
    for field in Fields::new(bytes) {
        match field? {
            (1, v) => h.key = v.string()?,
            (2, v) => h.value = v.string()?,
            (3, v) => h.raw_value = v.bytes()?,
            _ => {}
        }
    }
    Ok(h)
}

/// A singular message field: seen at most once here.
#[derive(Default)]
struct Once(bool);

impl Once {
    fn take(&mut self) -> Result<(), WireError> {
        if std::mem::replace(&mut self.0, true) {
            Err(WireError::Unusual)
        } else {
            Ok(())
        }
    }
}

/// One field's value.
#[derive(Debug, Clone, Copy)]
enum Value<'a> {
    Varint(u64),
    Fixed,
    Delimited(&'a [u8]),
}

impl<'a> Value<'a> {
    /// A length-delimited value (message, bytes); any other wire type for
    /// a field read as one is an error, as in prost.
    fn bytes(self) -> Result<&'a [u8], WireError> {
        match self {
            Value::Delimited(b) => Ok(b),
            _ => Err(WireError::Malformed("invalid wire type for a known field")),
        }
    }

    /// A varint scalar; any other wire type is an error, as in prost.
    fn varint(self) -> Result<u64, WireError> {
        match self {
            Value::Varint(v) => Ok(v),
            _ => Err(WireError::Malformed("invalid wire type for a known field")),
        }
    }

    fn string(self) -> Result<&'a str, WireError> {
        std::str::from_utf8(self.bytes()?)
            .map_err(|_| WireError::Malformed("invalid string value: data is not UTF-8 encoded"))
    }
}

/// The fields of one message, in wire order.
struct Fields<'a> {
    rest: &'a [u8],
}

impl<'a> Fields<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Self { rest: bytes }
    }

    #[inline]
    fn varint(&mut self) -> Result<u64, WireError> {
        // Keys and most lengths fit in one byte.
        if let Some((&b, rest)) = self.rest.split_first()
            && b < 0x80
        {
            self.rest = rest;
            return Ok(u64::from(b));
        }
        self.long_varint()
    }

    fn long_varint(&mut self) -> Result<u64, WireError> {
        let mut value = 0u64;
        for (i, &b) in self.rest.iter().enumerate().take(10) {
            // The tenth byte holds the top bit of a u64 only.
            if i == 9 && b > 1 {
                break;
            }
            value |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                self.rest = self.rest.get(i + 1..).unwrap_or_default();
                return Ok(value);
            }
        }
        Err(WireError::Malformed("invalid varint"))
    }

    fn split(&mut self, len: usize) -> Result<&'a [u8], WireError> {
        if len > self.rest.len() {
            return Err(WireError::Malformed("buffer underflow"));
        }
        let (value, rest) = self.rest.split_at(len);
        self.rest = rest;
        Ok(value)
    }

    #[inline]
    fn field(&mut self) -> Result<(u32, Value<'a>), WireError> {
        let key = self.varint()?;
        let number = u32::try_from(key >> 3)
            .ok()
            .filter(|n| (1..=0x1fff_ffff).contains(n))
            .ok_or(WireError::Malformed("invalid field number"))?;
        let value = match key & 7 {
            0 => Value::Varint(self.varint()?),
            1 => {
                self.split(8)?;
                Value::Fixed
            }
            2 => {
                let len = usize::try_from(self.varint()?)
                    .map_err(|_| WireError::Malformed("buffer underflow"))?;
                Value::Delimited(self.split(len)?)
            }
            3 | 4 => return Err(WireError::Unusual),
            5 => {
                self.split(4)?;
                Value::Fixed
            }
            _ => return Err(WireError::Malformed("invalid wire type")),
        };
        Ok((number, value))
    }
}

impl<'a> Iterator for Fields<'a> {
    type Item = Result<(u32, Value<'a>), WireError>;

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let field = self.field();
        if field.is_err() {
            // Stop after an error.
            self.rest = &[];
        }
        Some(field)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use envoy_types::pb::envoy::config::core::v3::address::Address as AddressKind;
    use envoy_types::pb::envoy::config::core::v3::{
        Address, HeaderMap, HeaderValue, Metadata, Pipe, SocketAddress,
    };
    use envoy_types::pb::google::protobuf::value::Kind;
    use envoy_types::pb::google::protobuf::{Struct as ProtoStruct, Value as ProtoValue};

    use crate::server::ext_authz::mapping::metadata_value;
    use envoy_types::pb::envoy::service::auth::v3::attribute_context::{
        HttpRequest, Peer, Request,
    };
    use envoy_types::pb::envoy::service::auth::v3::{AttributeContext, CheckRequest};
    use prost::Message as _;

    fn socket(ip: &str, port: u32) -> Option<Address> {
        Some(Address {
            address: Some(AddressKind::SocketAddress(SocketAddress {
                address: ip.to_owned(),
                port_specifier: Some(
                    envoy_types::pb::envoy::config::core::v3::socket_address::PortSpecifier::PortValue(port),
                ),
                ..Default::default()
            })),
        })
    }

    fn full() -> CheckRequest {
        CheckRequest {
            attributes: Some(AttributeContext {
                source: Some(Peer {
                    address: socket("10.1.2.3", 5555),
                    principal: "spiffe://example.org/ns/a/sa/b".to_owned(),
                    service: "front".to_owned(),
                    ..Default::default()
                }),
                destination: Some(Peer {
                    address: socket("10.0.0.10", 8443),
                    ..Default::default()
                }),
                request: Some(Request {
                    time: Some(envoy_types::pb::google::protobuf::Timestamp {
                        seconds: 1_790_000_000,
                        nanos: 5,
                    }),
                    http: Some(HttpRequest {
                        id: "42".to_owned(),
                        method: "POST".to_owned(),
                        headers: [("x-a", "1"), (":path", "/v1/x?y=1"), ("x-é", "ü")]
                            .into_iter()
                            .map(|(k, v)| (k.to_owned(), v.to_owned()))
                            .collect(),
                        header_map: Some(HeaderMap {
                            headers: vec![
                                HeaderValue {
                                    key: "x-a".to_owned(),
                                    value: String::new(),
                                    raw_value: b"1".to_vec(),
                                },
                                HeaderValue {
                                    key: "x-b".to_owned(),
                                    value: "v".to_owned(),
                                    raw_value: Vec::new(),
                                },
                            ],
                        }),
                        path: "/v1/x?y=1".to_owned(),
                        host: "api.example.com".to_owned(),
                        scheme: "https".to_owned(),
                        protocol: "HTTP/2".to_owned(),
                        body: "b=1".to_owned(),
                        size: 3,
                        ..Default::default()
                    }),
                }),
                context_extensions: [("iamgate.action", "svc:Get"), ("k", "")]
                    .into_iter()
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .collect(),
                metadata_context: Some(metadata()),
                ..Default::default()
            }),
        }
    }

    fn string(s: &str) -> ProtoValue {
        ProtoValue {
            kind: Some(Kind::StringValue(s.to_owned())),
        }
    }

    fn object(fields: Vec<(&str, ProtoValue)>) -> ProtoStruct {
        ProtoStruct {
            fields: fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
        }
    }

    fn nested(fields: Vec<(&str, ProtoValue)>) -> ProtoValue {
        ProtoValue {
            kind: Some(Kind::StructValue(object(fields))),
        }
    }

    /// What Envoy's `jwt_authn` leaves, and another filter's namespace.
    fn metadata() -> Metadata {
        let payload = nested(vec![
            ("sub", string("engineering/bob")),
            ("iss", string("https://idp.example")),
            (
                "exp",
                ProtoValue {
                    kind: Some(Kind::NumberValue(1.79e9)),
                },
            ),
            (
                "groups",
                ProtoValue {
                    kind: Some(Kind::ListValue(Default::default())),
                },
            ),
            ("null", ProtoValue::default()),
        ]);
        Metadata {
            filter_metadata: [
                (
                    JWT,
                    object(vec![("jwt_payload", payload), ("other", string("x"))]),
                ),
                (
                    "envoy.lb",
                    object(vec![(
                        "canary",
                        ProtoValue {
                            kind: Some(Kind::BoolValue(true)),
                        },
                    )]),
                ),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect(),
            ..Default::default()
        }
    }

    const JWT: &str = "envoy.filters.http.jwt_authn";

    /// Every kind of outcome on `metadata()`.
    const PATHS: &[MetadataPath<'static>] = &[
        [JWT, "jwt_payload", "sub"],
        [JWT, "jwt_payload", "exp"],
        [JWT, "jwt_payload", "groups"],
        [JWT, "jwt_payload", "null"],
        [JWT, "jwt_payload", "missing"],
        [JWT, "other", "sub"],
        [JWT, "absent", "sub"],
        ["envoy.lb", "canary", "x"],
        ["absent", "jwt_payload", "sub"],
    ];

    fn http_mut(c: &mut CheckRequest) -> &mut Option<HttpRequest> {
        &mut c
            .attributes
            .as_mut()
            .unwrap()
            .request
            .as_mut()
            .unwrap()
            .http
    }

    /// What a mapping can read, owned, to compare the two decodings.
    #[derive(Debug, PartialEq)]
    struct Summary {
        attributes: bool,
        principal: String,
        address: Option<String>,
        /// method, path, host, scheme
        http: Option<[String; 4]>,
        /// The headers map, sorted by key.
        headers: Vec<(String, String)>,
        raw_headers: Vec<(String, String, Vec<u8>)>,
        /// Sorted by key.
        extensions: Vec<(String, String)>,
        /// The values at `PATHS`.
        metadata: Vec<String>,
        /// size, body, raw_body (what SigV4 routes read).
        body: Option<(i64, Vec<u8>, Vec<u8>)>,
    }

    fn owned(pairs: impl Iterator<Item = (impl ToString, impl ToString)>) -> Vec<(String, String)> {
        let mut v: Vec<_> = pairs.map(|(k, v)| (k.to_string(), v.to_string())).collect();
        v.sort();
        v
    }

    /// The reference: what prost decoded.
    fn of_message(c: &CheckRequest) -> Summary {
        let a = c.attributes.as_ref();
        let source = a.and_then(|a| a.source.as_ref());
        let http = a
            .and_then(|a| a.request.as_ref())
            .and_then(|r| r.http.as_ref());
        Summary {
            attributes: a.is_some(),
            principal: source.map(|s| s.principal.clone()).unwrap_or_default(),
            address: source
                .and_then(|s| s.address.as_ref())
                .and_then(|a| a.address.as_ref())
                .and_then(|a| match a {
                    AddressKind::SocketAddress(s) => Some(s.address.clone()),
                    _ => None,
                }),
            http: http.map(|h| [&h.method, &h.path, &h.host, &h.scheme].map(Clone::clone)),
            headers: owned(http.into_iter().flat_map(|h| h.headers.iter())),
            raw_headers: http
                .and_then(|h| h.header_map.as_ref())
                .map(|m| {
                    m.headers
                        .iter()
                        .map(|h| (h.key.clone(), h.value.clone(), h.raw_value.clone()))
                        .collect()
                })
                .unwrap_or_default(),
            extensions: owned(a.into_iter().flat_map(|a| a.context_extensions.iter())),
            metadata: PATHS
                .iter()
                .map(|p| {
                    format!(
                        "{:?}",
                        metadata_value(a.and_then(|a| a.metadata_context.as_ref()), *p)
                    )
                })
                .collect(),
            body: http.map(|h| (h.size, h.body.as_bytes().to_vec(), h.raw_body.clone())),
        }
    }

    fn of_view(v: &CheckView<'_>) -> Summary {
        let http = v.http.as_ref();
        // The map's semantics: one entry per key, the last sent.
        let mut keys: Vec<&str> = http
            .map(|h| h.headers.iter().map(|(k, _)| *k).collect())
            .unwrap_or_default();
        keys.sort();
        keys.dedup();
        Summary {
            attributes: v.has_attributes,
            principal: v.source_principal.to_owned(),
            address: v.source_address.map(str::to_owned),
            http: http.map(|h| [h.method, h.path, h.host, h.scheme].map(str::to_owned)),
            headers: owned(keys.iter().filter_map(|k| Some((*k, http?.header(k)?)))),
            raw_headers: http
                .map(|h| {
                    h.raw_headers
                        .iter()
                        .map(|r| (r.key.to_owned(), r.value.to_owned(), r.raw_value.to_vec()))
                        .collect()
                })
                .unwrap_or_default(),
            extensions: owned(v.extensions.iter().copied()),
            metadata: v.metadata.iter().map(|m| format!("{m:?}")).collect(),
            body: http.map(|h| (h.size, h.body.to_vec(), h.raw_body.to_vec())),
        }
    }

    fn same(bytes: &[u8]) {
        let reference = CheckRequest::decode(bytes).expect("prost decodes it");
        let view = CheckView::parse_with(bytes, PATHS).expect("the view reads it");
        assert_eq!(of_view(&view), of_message(&reference));
    }

    #[test]
    fn reads_what_prost_decodes() {
        same(&full().encode_to_vec());
        // Issue 13: what SigV4 routes read in place: the body in either
        // field, and sizes that need long or negative varints.
        for (size, body, raw) in [(-1, "", &b""[..]), (70_000, "", &[0, 159, 146, 150][..])] {
            let mut c = full();
            let http = http_mut(&mut c).as_mut().unwrap();
            http.size = size;
            http.body = body.to_owned();
            http.raw_body = raw.to_vec();
            same(&c.encode_to_vec());
        }
        same(&CheckRequest::default().encode_to_vec());
        let empty = CheckRequest {
            attributes: Some(AttributeContext::default()),
        };
        same(&empty.encode_to_vec());
        let mut no_http = full();
        *http_mut(&mut no_http) = None;
        same(&no_http.encode_to_vec());
        let view = CheckView::parse(&[]).unwrap();
        assert!(!view.has_attributes && view.http.is_none());
        // What each path reads.
        let bytes = full().encode_to_vec();
        let view = CheckView::parse_with(&bytes, PATHS).unwrap();
        use MetadataValue::{Missing, Other, String};
        assert_eq!(
            view.metadata.to_vec(),
            vec![
                String("engineering/bob"),
                Other,
                Other,
                Other,
                Missing(2),
                Missing(2),
                Missing(1),
                Missing(2),
                Missing(0),
            ]
        );
        // Without paths, metadata_context is skipped.
        assert!(CheckView::parse(&bytes).unwrap().metadata.is_empty());
    }

    #[test]
    fn metadata_is_read_only_when_asked_for() {
        // A metadata_context that does not decode: skipped like any field
        // iamgate does not read, refused once a path is asked for.
        let mut c = full();
        c.attributes.as_mut().unwrap().metadata_context = None;
        let mut attributes = c.attributes.as_ref().unwrap().encode_to_vec();
        attributes.extend([0x5a, 0x02, 0x0a, 0x05]); // field 11: a length past the end
        let bytes = [
            &[
                0x0a,
                0x80 | (attributes.len() & 0x7f) as u8,
                (attributes.len() >> 7) as u8,
            ][..],
            &attributes,
        ]
        .concat();
        assert!(CheckView::parse(&bytes).is_ok());
        assert!(CheckRequest::decode(bytes.as_slice()).is_err());
        assert_eq!(
            CheckView::parse_with(&bytes, PATHS).unwrap_err(),
            WireError::Malformed("buffer underflow")
        );
    }

    #[test]
    fn metadata_entries_win_as_prost_decodes_them() {
        // A namespace twice (the last entry wins), an entry without a
        // value (the empty struct), a claim twice in one struct.
        let entry = |key: &str, value: Option<ProtoStruct>| {
            let mut e = Vec::new();
            prost::encoding::string::encode(1, &key.to_owned(), &mut e);
            if let Some(v) = value {
                prost::encoding::message::encode(2, &v, &mut e);
            }
            e
        };
        let payload = |sub: &str| object(vec![("jwt_payload", nested(vec![("sub", string(sub))]))]);
        // Appends `body` to `out` as length-delimited field `tag`.
        let field = |tag: u32, body: &[u8], out: &mut Vec<u8>| {
            prost::encoding::encode_key(tag, prost::encoding::WireType::LengthDelimited, out);
            prost::encoding::encode_varint(body.len() as u64, out);
            out.extend(body);
        };
        // A CheckRequest whose attributes are `attributes` followed by a
        // metadata_context (field 11) of the encoded entries `entries`.
        let check = |mut attributes: Vec<u8>, entries: &[Vec<u8>]| {
            let mut m = Vec::new();
            for e in entries {
                field(1, e, &mut m);
            }
            field(11, &m, &mut attributes);
            let mut bytes = Vec::new();
            field(1, &attributes, &mut bytes);
            bytes
        };
        let mut c = full();
        c.attributes.as_mut().unwrap().metadata_context = None;
        let bytes = check(
            c.attributes.as_ref().unwrap().encode_to_vec(),
            &[
                entry(JWT, Some(payload("first"))),
                entry("other", None),
                entry(JWT, Some(payload("second"))),
            ],
        );
        same(&bytes);
        let view = CheckView::parse_with(&bytes, PATHS).unwrap();
        assert_eq!(view.metadata[0], MetadataValue::String("second"));
        // A value sent twice in one entry is merged by protobuf: left to
        // prost, which re-encodes it as one.
        let mut twice = entry(JWT, Some(payload("a")));
        prost::encoding::message::encode(2, &payload("b"), &mut twice);
        let bytes = check(AttributeContext::default().encode_to_vec(), &[twice]);
        assert_eq!(
            CheckView::parse_with(&bytes, PATHS).unwrap_err(),
            WireError::Unusual
        );
        let merged = CheckRequest::decode(bytes.as_slice())
            .unwrap()
            .encode_to_vec();
        same(&merged);
        let view = CheckView::parse_with(&merged, PATHS).unwrap();
        assert_eq!(view.metadata[0], MetadataValue::String("b"));
    }

    #[test]
    fn later_scalars_and_map_entries_win() {
        // http.method twice, a header key twice, an extension twice, an
        // unknown field and a skipped field: all as prost decodes them.
        let mut http = HttpRequest {
            method: "GET".to_owned(),
            ..Default::default()
        }
        .encode_to_vec();
        http.extend(
            HttpRequest {
                method: "PUT".to_owned(),
                headers: [("x-a".to_owned(), "2".to_owned())].into(),
                ..Default::default()
            }
            .encode_to_vec(),
        );
        http.extend(
            HttpRequest {
                headers: [("x-a".to_owned(), "3".to_owned())].into(),
                protocol: "HTTP/1.1".to_owned(),
                ..Default::default()
            }
            .encode_to_vec(),
        );
        http.extend([0xf8, 0x07, 0x01]); // field 127, varint: unknown
        let request = [&[0x12, http.len() as u8][..], &http].concat();
        let mut attributes = AttributeContext {
            context_extensions: [("a".to_owned(), "1".to_owned())].into(),
            ..Default::default()
        }
        .encode_to_vec();
        attributes.extend(
            AttributeContext {
                context_extensions: [("a".to_owned(), "2".to_owned())].into(),
                ..Default::default()
            }
            .encode_to_vec(),
        );
        attributes.extend([0x22, request.len() as u8]);
        attributes.extend(&request);
        let check = [&[0x0a, attributes.len() as u8][..], &attributes].concat();
        same(&check);
        let view = CheckView::parse(&check).unwrap();
        let http = view.http.unwrap();
        assert_eq!((http.method, http.header("x-a")), ("PUT", Some("3")));
        assert_eq!(view.extensions.as_slice(), &[("a", "2")]);
    }

    #[test]
    fn merged_messages_are_left_to_prost() {
        // `attributes` twice: protobuf merges the two.
        let mut twice = full().encode_to_vec();
        twice.extend(full().encode_to_vec());
        assert_eq!(CheckView::parse(&twice).unwrap_err(), WireError::Unusual);
        // The source address's oneof set twice.
        let mut c = full();
        let mut peer = c.attributes.as_ref().unwrap().source.clone().unwrap();
        let mut bytes = peer.encode_to_vec();
        peer.address = Some(Address {
            address: Some(AddressKind::Pipe(Pipe {
                path: "/p".to_owned(),
                mode: 0,
            })),
        });
        let pipe = peer.address.as_ref().unwrap().encode_to_vec();
        bytes.extend([0x0a, pipe.len() as u8]);
        bytes.extend(pipe);
        let decoded = Peer::decode(bytes.as_slice()).unwrap();
        c.attributes.as_mut().unwrap().source = Some(decoded);
        // Re-encoded by prost, it reads as prost decoded it.
        same(&c.encode_to_vec());
        let mut raw = AttributeContext::default().encode_to_vec();
        raw.extend([0x0a, bytes.len() as u8]);
        raw.extend(&bytes);
        let check = [&[0x0a, raw.len() as u8][..], &raw].concat();
        assert_eq!(CheckView::parse(&check).unwrap_err(), WireError::Unusual);
        // A group.
        assert_eq!(
            CheckView::parse(&[0x0b, 0x0c]).unwrap_err(),
            WireError::Unusual
        );
    }

    #[test]
    fn malformed_input_is_refused_like_prost() {
        let good = full().encode_to_vec();
        let cases: Vec<Vec<u8>> = vec![
            vec![0xff; 5],                            // varint never ends
            vec![0x0a, 0x05, 0x01],                   // length past the end
            vec![0x08, 0x01],                         // attributes as a varint
            vec![0x00],                               // field 0
            vec![0x0e],                               // wire type 6
            good[..good.len() - 1].to_vec(),          // truncated
            vec![0x0a, 0x04, 0x0a, 0x02, 0x22, 0x80], // bad nested length
        ];
        for bytes in cases {
            assert!(CheckView::parse(&bytes).is_err(), "{bytes:?}");
            assert!(CheckRequest::decode(bytes.as_slice()).is_err(), "{bytes:?}");
        }
        // A header value that is not UTF-8.
        let mut c = full();
        let http = http_mut(&mut c).as_mut().unwrap();
        http.headers.clear();
        http.headers.insert("x".to_owned(), "\u{7f}".to_owned());
        let mut bytes = c.encode_to_vec();
        let at = bytes.iter().rposition(|&b| b == 0x7f).unwrap();
        bytes[at] = 0xff;
        assert_eq!(
            CheckView::parse(&bytes).unwrap_err(),
            WireError::Malformed("invalid string value: data is not UTF-8 encoded")
        );
        assert!(CheckRequest::decode(bytes.as_slice()).is_err());
    }

    #[test]
    fn varints_and_fixed_fields() {
        // Ten-byte varints are the longest; fixed32/64 unknown fields are
        // skipped by their size.
        let mut bytes = vec![0x08 | 0x70]; // field 15, varint
        bytes.extend([0xff; 9]);
        bytes.push(0x01);
        bytes.extend([0x79]); // field 15, fixed64
        bytes.extend([0; 8]);
        bytes.extend([0x7d]); // field 15, fixed32
        bytes.extend([0; 4]);
        same(&bytes);
        let mut over = vec![0x78];
        over.extend([0xff; 9]);
        over.push(0x02);
        assert!(CheckView::parse(&over).is_err());
        assert!(CheckRequest::decode(over.as_slice()).is_err());
    }
    /// One edit to an encoding: overwrite, insert or delete a byte, or cut
    /// the rest (the position taken modulo the length).
    #[derive(Debug, Clone)]
    enum Edit {
        Set(usize, u8),
        Insert(usize, u8),
        Delete(usize),
        Truncate(usize),
    }

    fn apply(bytes: &mut Vec<u8>, edit: &Edit) {
        let at = |i: usize, len: usize| if len == 0 { 0 } else { i % len };
        match *edit {
            Edit::Set(i, b) if !bytes.is_empty() => {
                let i = at(i, bytes.len());
                bytes[i] = b;
            }
            Edit::Insert(i, b) => {
                let i = at(i, bytes.len() + 1);
                bytes.insert(i, b);
            }
            Edit::Delete(i) if !bytes.is_empty() => {
                let i = at(i, bytes.len());
                bytes.remove(i);
            }
            Edit::Truncate(i) => {
                let i = at(i, bytes.len() + 1);
                bytes.truncate(i);
            }
            _ => {}
        }
    }

    fn edit() -> impl proptest::strategy::Strategy<Value = Edit> {
        use proptest::prelude::*;
        prop_oneof![
            4 => (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Edit::Set(i, b)),
            2 => (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Edit::Insert(i, b)),
            2 => any::<usize>().prop_map(Edit::Delete),
            1 => any::<usize>().prop_map(Edit::Truncate),
        ]
    }

    proptest::proptest! {
        /// On damaged encodings the reader agrees with prost: what it
        /// refuses as malformed, prost refuses; what both read, they read
        /// alike; and what it leaves to prost reads alike once prost has
        /// re-encoded it (the server's path). It may accept damage in the
        /// fields it skips (see the module documentation).
        #[test]
        fn damaged_encodings_read_as_prost_decodes(
            edits in proptest::collection::vec(edit(), 1..4)
        ) {
            let mut bytes = full().encode_to_vec();
            for e in &edits {
                apply(&mut bytes, e);
            }
            let reference = CheckRequest::decode(bytes.as_slice());
            match (CheckView::parse_with(&bytes, PATHS), &reference) {
                (Ok(view), Ok(message)) => {
                    proptest::prop_assert_eq!(of_view(&view), of_message(message));
                }
                (Err(WireError::Malformed(e)), Ok(_)) => {
                    proptest::prop_assert!(false, "refused what prost decodes: {}", e);
                }
                (Err(WireError::Unusual), Ok(message)) => {
                    let canonical = message.encode_to_vec();
                    let view = CheckView::parse_with(&canonical, PATHS);
                    proptest::prop_assert!(view.is_ok(), "{:?}", view.err());
                    if let Ok(view) = view {
                        proptest::prop_assert_eq!(of_view(&view), of_message(message));
                    }
                }
                (_, Err(_)) => {}
            }
        }
    }
}
