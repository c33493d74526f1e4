//! The web page at `/`: three files embedded in the binary, served as they are.
//!
//! `web/index.html`, `web/app.js` and `web/style.css` are plain files (no build step):
//! the script speaks gRPC-Web to this same server with `fetch`, and encodes and
//! decodes the few protobuf messages it needs by hand.

use bytes::Bytes;
use http::{HeaderValue, Method, Response, StatusCode, header};
use http_body_util::{BodyExt as _, Full};
use volo_grpc::body::BoxBody;

/// One embedded file.
struct Asset {
    path: &'static str,
    content_type: &'static str,
    body: &'static str,
}

const ASSETS: [Asset; 3] = [
    Asset {
        path: "/",
        content_type: "text/html; charset=utf-8",
        body: include_str!("../../web/index.html"),
    },
    Asset {
        path: "/app.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../../web/app.js"),
    },
    Asset {
        path: "/style.css",
        content_type: "text/css; charset=utf-8",
        body: include_str!("../../web/style.css"),
    },
];

/// Only this server's own files and calls; the favicon is an inline `data:` URL.
const CSP: &str = "default-src 'self'; img-src 'self' data:; base-uri 'none'; \
                   form-action 'none'; frame-ancestors 'none'";

/// The response to a GET or HEAD of `path`, if it names one of the page's files.
pub(crate) fn get(method: &Method, path: &str) -> Option<Response<BoxBody>> {
    let asset = ASSETS
        .iter()
        .find(|a| a.path == path || (a.path == "/" && path == "/index.html"))?;
    let body = if method == Method::HEAD {
        Bytes::new()
    } else {
        Bytes::from_static(asset.body.as_bytes())
    };
    let mut resp = Response::new(boxed(body));
    let headers = resp.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    );
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(asset.body.len()));
    // Small files that change with the binary: always revalidate.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    Some(resp)
}

/// A short plain-text response with `status`.
pub(crate) fn text(status: StatusCode, message: &'static str) -> Response<BoxBody> {
    let mut resp = Response::new(boxed(Bytes::from_static(message.as_bytes())));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

fn boxed(bytes: Bytes) -> BoxBody {
    Full::new(bytes)
        .map_err(|never| match never {})
        .boxed_unsync()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_and_its_files_are_served() {
        for (path, kind) in [
            ("/", "text/html"),
            ("/index.html", "text/html"),
            ("/app.js", "text/javascript"),
            ("/style.css", "text/css"),
        ] {
            let resp = get(&Method::GET, path).unwrap_or_else(|| panic!("{path}"));
            let content_type = resp.headers()[header::CONTENT_TYPE].to_str().unwrap();
            assert!(content_type.starts_with(kind), "{path}: {content_type}");
        }
        assert!(get(&Method::GET, "/nothing").is_none());
    }

    #[test]
    fn the_page_names_the_elements_the_browser_test_drives() {
        let html = ASSETS[0].body;
        for id in [
            "hello-name",
            "hello-send",
            "hello-out",
            "talk-input",
            "talk-send",
            "talk-log",
            "bg-processes",
            "bg-start",
            "bg-cancel",
            "bg-progress",
            "bg-summary",
        ] {
            assert!(html.contains(&format!("id=\"{id}\"")), "#{id} missing");
        }
        assert!(html.contains("src=\"/app.js\""));
    }
}
