//! gRPC wire constants, in one place: message framing, compression, content types and
//! the metadata keys the pipeline reads or writes.

use http::{HeaderMap, HeaderName, HeaderValue};
use volo_grpc::{
    Status,
    codec::compression::{CompressionEncoding, GzipConfig, ZstdConfig},
};

/// The length prefix of every gRPC message: 1 flag byte and a 4-byte big-endian length.
pub(crate) const PREFIX: usize = 5;

/// The prefix's flag of an uncompressed message.
pub(crate) const UNCOMPRESSED: u8 = 0;
/// The prefix's flag of a message compressed with the call's `grpc-encoding`.
pub(crate) const COMPRESSED: u8 = 1;

/// The flag and length of the message starting `bytes`, if its prefix is all there.
pub(crate) fn prefix(bytes: &[u8]) -> Option<(u8, usize)> {
    let prefix: &[u8; PREFIX] = bytes.get(..PREFIX)?.try_into().ok()?;
    let len = u32::from_be_bytes([prefix[1], prefix[2], prefix[3], prefix[4]]);
    Some((prefix[0], len as usize))
}

/// The protocol a call arrived in; its metrics carry it as the `protocol` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Protocol {
    Grpc,
    GrpcWeb,
    Connect,
}

impl Protocol {
    /// How many there are (for per-protocol tables).
    pub(crate) const COUNT: usize = 3;

    /// Its label.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Protocol::Grpc => "grpc",
            Protocol::GrpcWeb => "grpc-web",
            Protocol::Connect => "connect",
        }
    }
}

/// How a call's messages are written: protobuf, or the proto3 JSON mapping
/// ([`super::json`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Codec {
    Proto,
    Json,
}

/// What a call arrived as: its protocol and its codec, and whether its client takes
/// replies compressed as its request was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Wire {
    pub(crate) protocol: Protocol,
    pub(crate) codec: Codec,
    pub(crate) compressed_replies: bool,
}

impl Wire {
    /// gRPC with protobuf, the common case.
    pub(crate) const GRPC: Wire = Wire::new(Protocol::Grpc, Codec::Proto);

    /// `protocol` with `codec`, compressed replies allowed.
    pub(crate) const fn new(protocol: Protocol, codec: Codec) -> Wire {
        Wire {
            protocol,
            codec,
            compressed_replies: true,
        }
    }
}

/// The prefix of a message of `len` bytes with `flag` (the writing twin of [`prefix`]).
pub(crate) fn frame_prefix(flag: u8, len: usize) -> [u8; PREFIX] {
    let [a, b, c, d] = u32::try_from(len).unwrap_or(u32::MAX).to_be_bytes();
    [flag, a, b, c, d]
}

/// Appends a message to `out`, prefixed with `flag` and the length of what `write`
/// appends after the prefix; on an error nothing is left of it.
pub(crate) fn framed<E>(
    out: &mut Vec<u8>,
    flag: u8,
    write: impl FnOnce(&mut Vec<u8>) -> Result<(), E>,
) -> Result<(), E> {
    let start = out.len();
    out.extend_from_slice(&[0; PREFIX]);
    if let Err(err) = write(out) {
        out.truncate(start);
        return Err(err);
    }
    let len = out.len() - start - PREFIX;
    out[start..start + PREFIX].copy_from_slice(&frame_prefix(flag, len));
    Ok(())
}

/// A message compression the server undoes (requests) and applies (replies).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Encoding {
    Gzip,
    Zstd,
}

impl Encoding {
    /// Every one, in order of preference.
    pub(crate) const ALL: [Encoding; 2] = [Encoding::Gzip, Encoding::Zstd];

    /// The one a `grpc-encoding` value names, if we have it.
    pub(crate) fn of(name: &[u8]) -> Option<Self> {
        Self::ALL.into_iter().find(|e| e.name().as_bytes() == name)
    }

    /// Its name on the wire.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Encoding::Gzip => "gzip",
            Encoding::Zstd => "zstd",
        }
    }

    /// The same, as volo-grpc's encoder knows it (compressed replies are volo-grpc's).
    pub(crate) fn volo(self) -> CompressionEncoding {
        match self {
            Encoding::Gzip => CompressionEncoding::Gzip(Some(GzipConfig::default())),
            Encoding::Zstd => CompressionEncoding::Zstd(Some(ZstdConfig::default())),
        }
    }
}

/// The compression of a request's messages (`grpc-encoding`), which the request body
/// undoes: the header is removed, as the messages leave decompressed. An encoding the
/// server does not have is UNIMPLEMENTED (volo-grpc's wording), naming the ones it has.
pub(crate) fn request_encoding(headers: &mut HeaderMap) -> Result<Option<Encoding>, Status> {
    let Some(value) = headers.get(&ENCODING) else {
        return Ok(None);
    };
    if value.as_bytes() == b"identity" {
        return Ok(None);
    }
    match Encoding::of(value.as_bytes()) {
        Some(encoding) => {
            headers.remove(&ENCODING);
            Ok(Some(encoding))
        }
        None => Err(Status::unimplemented(format!(
            "Content is compressed with `{}` which isn't supported (supported: {})",
            String::from_utf8_lossy(value.as_bytes()),
            ACCEPTED.to_str().unwrap_or_default()
        ))),
    }
}

/// `grpc-accept-encoding`: what the server decompresses, sent on every gRPC response.
pub(crate) const ACCEPT_ENCODING: HeaderName = HeaderName::from_static("grpc-accept-encoding");
/// Its value: the names of [`Encoding::ALL`] (a test checks they agree).
pub(crate) const ACCEPTED: HeaderValue = HeaderValue::from_static("gzip,zstd");

/// `grpc-encoding`: the compression of a call's messages.
pub(crate) const ENCODING: HeaderName = HeaderName::from_static("grpc-encoding");
/// `grpc-timeout`: the caller's deadline.
pub(crate) const TIMEOUT: HeaderName = HeaderName::from_static("grpc-timeout");
/// `grpc-status`: a call's code, in trailers.
pub(crate) const STATUS: HeaderName = HeaderName::from_static("grpc-status");
/// `x-request-id`: the call's id, both ways.
pub(crate) const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The content type of gRPC responses.
pub(crate) const CONTENT_TYPE_GRPC: HeaderValue = HeaderValue::from_static("application/grpc");
/// The content type of gRPC responses in JSON.
pub(crate) const CONTENT_TYPE_GRPC_JSON: HeaderValue =
    HeaderValue::from_static("application/grpc+json");

/// The codec of a gRPC content type (`application/grpc`, `+proto`, `+json`, `;...`);
/// `None` if it is not gRPC's or names a codec the server does not have.
pub(crate) fn grpc_codec(content_type: &[u8]) -> Option<Codec> {
    let rest = content_type.strip_prefix(b"application/grpc")?;
    let subtype = rest.split(|&b| b == b';').next().unwrap_or(rest);
    match subtype {
        b"" | b"+proto" => Some(Codec::Proto),
        b"+json" => Some(Codec::Json),
        _ => None,
    }
}

/// The codec of a gRPC-Web content type (binary or base64 text); `None` if it is not
/// gRPC-Web's or names a codec the server does not have.
pub(crate) fn grpc_web_codec(content_type: &[u8]) -> Option<Codec> {
    match content_type {
        b"application/grpc-web"
        | b"application/grpc-web+proto"
        | b"application/grpc-web-text"
        | b"application/grpc-web-text+proto" => Some(Codec::Proto),
        b"application/grpc-web+json" => Some(Codec::Json),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_accepted_list_names_every_encoding() {
        let names: Vec<_> = Encoding::ALL.iter().map(|e| e.name()).collect();
        assert_eq!(ACCEPTED.to_str().unwrap(), names.join(","));
        for encoding in Encoding::ALL {
            assert_eq!(Encoding::of(encoding.name().as_bytes()), Some(encoding));
        }
        assert_eq!(Encoding::of(b"identity"), None);
    }

    #[test]
    fn prefixes_are_read_when_whole() {
        assert_eq!(prefix(&[0, 0, 0, 1, 2, 9]), Some((0, 258)));
        assert_eq!(prefix(&[1, 0, 0, 0]), None);
    }

    #[test]
    fn prefixes_written_read_back_and_failed_writes_leave_nothing() {
        assert_eq!(
            prefix(&frame_prefix(COMPRESSED, 258)),
            Some((COMPRESSED, 258))
        );
        let mut out = b"x".to_vec();
        framed(&mut out, UNCOMPRESSED, |out| {
            out.extend_from_slice(b"abc");
            Ok::<_, ()>(())
        })
        .unwrap();
        assert_eq!(out, b"x\0\0\0\0\x03abc");
        let failed = framed(&mut out, UNCOMPRESSED, |out| {
            out.extend_from_slice(b"partial");
            Err(())
        });
        assert!(failed.is_err());
        assert_eq!(out, b"x\0\0\0\0\x03abc");
    }
}
