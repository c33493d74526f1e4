//! CORS for browser pages served elsewhere: which origins may call the server.
//!
//! The page at `/` calls from its own origin and needs nothing. A page served from
//! another origin can call only when `--cors-allowed-origins` names that origin (or is
//! `*`): then preflights are answered and responses carry the headers a gRPC-Web or
//! Connect client must read (`grpc-status`, `grpc-message`, `x-request-id`, ...). tower-http does the
//! protocol; this file only turns the flag into its configuration.

use std::time::Duration;

use http::{HeaderName, HeaderValue, Method};
use tower_http::cors::{AllowHeaders, AllowOrigin, CorsLayer};

/// Which foreign origins may call; the server's own page always may.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum AllowedOrigins {
    /// None but the page's own (the default).
    #[default]
    SameOnly,
    /// Any origin (`*`).
    Any,
    /// These origins, as `scheme://host[:port]`.
    List(Vec<HeaderValue>),
}

/// A value of `--cors-allowed-origins` that is not an origin.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("--cors-allowed-origins: {0:?} is not an origin (scheme://host[:port], no path), nor `*`")]
pub struct BadOrigin(pub String);

impl AllowedOrigins {
    /// Parses the flag's comma-separated items: origins, or `*` alone.
    pub fn parse<S: AsRef<str>>(items: &[S]) -> Result<Self, BadOrigin> {
        let items: Vec<&str> = items
            .iter()
            .map(|s| s.as_ref().trim())
            .filter(|s| !s.is_empty())
            .collect();
        match items.as_slice() {
            [] => Ok(Self::SameOnly),
            ["*"] => Ok(Self::Any),
            _ => items
                .iter()
                .map(|item| parse_origin(item).ok_or_else(|| BadOrigin((*item).to_owned())))
                .collect::<Result<_, _>>()
                .map(Self::List),
        }
    }
}

/// `scheme://host[:port]` exactly as a browser sends it in `Origin` (no path, no
/// trailing slash; lower-case scheme), as a header value.
fn parse_origin(item: &str) -> Option<HeaderValue> {
    let uri: http::Uri = item.parse().ok()?;
    let scheme = uri.scheme_str()?;
    let authority = uri.authority()?;
    let exact = format!("{scheme}://{authority}");
    let plain =
        matches!(scheme, "http" | "https") && exact == item && !authority.as_str().contains('@');
    plain.then(|| HeaderValue::from_str(item).ok()).flatten()
}

/// Response headers a browser script may read: the gRPC status, Connect's stream
/// compression, and our request id.
const EXPOSED: [&str; 7] = [
    "grpc-status",
    "grpc-message",
    "grpc-status-details-bin",
    "grpc-encoding",
    "grpc-accept-encoding",
    "connect-content-encoding",
    "x-request-id",
];

/// The CORS layer for `origins`.
pub(crate) fn layer(origins: &AllowedOrigins) -> CorsLayer {
    let allow = match origins {
        AllowedOrigins::SameOnly => AllowOrigin::list([]),
        AllowedOrigins::Any => AllowOrigin::any(),
        AllowedOrigins::List(list) => AllowOrigin::list(list.iter().cloned()),
    };
    CorsLayer::new()
        .allow_origin(allow)
        // POST for every call, GET for Connect's side-effect-free ones.
        .allow_methods([Method::POST, Method::GET])
        // gRPC metadata travels in headers of the caller's choosing.
        .allow_headers(AllowHeaders::mirror_request())
        .expose_headers(EXPOSED.map(HeaderName::from_static))
        .max_age(Duration::from_secs(2 * 3600))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_flag_parses_to_origins() {
        assert_eq!(
            AllowedOrigins::parse::<&str>(&[]).unwrap(),
            AllowedOrigins::SameOnly
        );
        assert_eq!(AllowedOrigins::parse(&["*"]).unwrap(), AllowedOrigins::Any);
        assert_eq!(
            AllowedOrigins::parse(&["http://localhost:5173", " https://app.example.com "]).unwrap(),
            AllowedOrigins::List(vec![
                HeaderValue::from_static("http://localhost:5173"),
                HeaderValue::from_static("https://app.example.com"),
            ])
        );
    }

    #[test]
    fn what_is_not_an_origin_is_refused() {
        for bad in [
            "localhost:5173",
            "http://localhost:5173/",
            "https://example.com/app",
            "ftp://example.com",
            "https://user@example.com",
            "*.example.com",
        ] {
            assert_eq!(
                AllowedOrigins::parse(&[bad]),
                Err(BadOrigin(bad.to_owned())),
                "{bad}"
            );
        }
        // `*` only alone: mixed with origins it is a mistake.
        assert!(AllowedOrigins::parse(&["*", "https://example.com"]).is_err());
    }
}
