//! Paginated listings: `GET /v2/<name>/tags/list` and `GET /v2/_catalog`.
//!
//! Distribution spec, end-8b: "the response will include a `Link` header ... `Link:
//! <<url>?n=<n from the request>&last=<last tag value from previous response>>;
//! rel="next"`". A listing is read page by page until no `rel="next"` remains.

use http::{Method, Request, Response};
use serde::Deserialize;

use crate::api::{next_link, Endpoint};
use crate::auth::Scope;
use crate::session::{AuthNeed, Call};

/// One page of names and the URL of the next page, if any.
pub(crate) struct Page {
    pub items: Vec<String>,
    pub next: Option<String>,
}

#[derive(Deserialize)]
struct TagList {
    #[serde(default)]
    tags: Option<Vec<String>>,
}

#[derive(Deserialize)]
struct Catalog {
    #[serde(default)]
    repositories: Option<Vec<String>>,
}

/// The GET for one page, authorised for `scope` on `registry`.
pub(crate) fn call(url: String, registry: &str, repository: &str, scope: Scope) -> Call {
    let request = Request::builder()
        .method(Method::GET)
        .uri(url)
        .header(http::header::ACCEPT, "application/json")
        .body(Vec::new())
        .unwrap_or_default();
    let auth =
        AuthNeed { registry: registry.to_owned(), repository: repository.to_owned(), scopes: vec![scope] };
    Call::Send { request, auth }
}

/// Reads a `tags/list` page.
pub(crate) fn tags(response: &Response<Vec<u8>>, endpoint: &Endpoint) -> Result<Page, String> {
    let list: TagList =
        serde_json::from_slice(response.body()).map_err(|e| format!("the answer is not a tag list ({e})"))?;
    Ok(Page { items: list.tags.unwrap_or_default(), next: next(response, endpoint) })
}

/// Reads a `_catalog` page.
pub(crate) fn catalog(response: &Response<Vec<u8>>, endpoint: &Endpoint) -> Result<Page, String> {
    let list: Catalog =
        serde_json::from_slice(response.body()).map_err(|e| format!("the answer is not a catalog ({e})"))?;
    Ok(Page { items: list.repositories.unwrap_or_default(), next: next(response, endpoint) })
}

fn next(response: &Response<Vec<u8>>, endpoint: &Endpoint) -> Option<String> {
    response
        .headers()
        .get(http::header::LINK)
        .and_then(|v| v.to_str().ok())
        .and_then(next_link)
        .map(|target| endpoint.resolve(target))
}
