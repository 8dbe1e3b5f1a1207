//! `static:STATUS [BODY]`: one status and body for every request; the body
//! literal text or a file, read when a request comes.

use std::path::PathBuf;

use super::app::{App, Body, Request, Response, content_type};

/// Answers every request with one status and body.
pub struct Static {
    pub(super) status: u16,
    pub(super) body: StaticBody,
}

impl App for Static {
    fn reads_body(&self) -> bool {
        false
    }

    fn answers_from_memory(&self) -> bool {
        matches!(self.body, StaticBody::Text(_))
    }

    fn call(&self, _req: &mut Request<'_>) -> Response {
        match &self.body {
            StaticBody::Text(text) => Response::new(self.status, "text/plain; charset=utf-8", text.as_bytes()),
            StaticBody::File(path) => match std::fs::File::open(path).and_then(|f| Ok((f.metadata()?.len(), f))) {
                Ok((len, file)) => Response {
                    status: self.status,
                    headers: vec![("Content-Type".into(), content_type(path).into())],
                    body: Body::Stream { reader: Box::new(file), len: Some(len) },
                    ..Default::default()
                },
                Err(e) => Response::text(500, &format!("cannot read {}: {e}", path.display())),
            },
        }
    }
}

/// The body of a `static:` route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StaticBody {
    /// The text after the status, as written (empty for no body).
    Text(String),
    /// An absolute path, checked to exist when the configuration loads, read
    /// only when a request comes.
    File(PathBuf),
}
