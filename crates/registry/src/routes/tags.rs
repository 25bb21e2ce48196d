//! `GET /v2/<name>/tags/list?n=&last=`: distribution spec end-8a/8b. Tags come in
//! lexical order; "the registry MUST return … up to `n` tags … starting after `last`",
//! and a `Link: <…?n=<n>&last=<last>>; rel="next"` header when more remain.

use std::sync::Arc;

use axum::response::{IntoResponse, Response};
use http::header::{CONTENT_TYPE, LINK};
use http::HeaderValue;

use crate::error::{ErrorCode, RegistryError, Result};
use crate::state::AppState;
use crate::store::layout::Repo;
use crate::uri::query_value;

/// One page of a sorted list, and the `Link` to the next page if there is one.
pub(super) fn paginate(
    items: Vec<String>,
    uri: &http::Uri,
    path: &str,
) -> Result<(Vec<String>, Option<String>)> {
    let n = match query_value(uri, "n") {
        None => None,
        Some(n) if n.is_empty() => None,
        Some(n) => Some(n.parse::<usize>().map_err(|_| {
            RegistryError::new(
                ErrorCode::PaginationNumberInvalid,
                format!("`n` must be a non-negative integer, not {n:?}"),
            )
        })?),
    };
    let last = query_value(uri, "last");
    let mut page: Vec<String> = match &last {
        Some(last) => items.into_iter().filter(|item| item.as_str() > last.as_str()).collect(),
        None => items,
    };
    let mut link = None;
    if let Some(n) = n {
        if page.len() > n {
            page.truncate(n);
            if let Some(last) = page.last() {
                link = Some(format!("<{path}?n={n}&last={last}>; rel=\"next\""));
            }
        }
    }
    Ok((page, link))
}

pub(super) fn json_page(body: serde_json::Value, link: Option<String>) -> Response {
    let mut response = serde_json::to_vec(&body).unwrap_or_default().into_response();
    let h = response.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if let Some(link) = link.and_then(|l| HeaderValue::from_str(&l).ok()) {
        h.insert(LINK, link);
    }
    response
}

pub(super) async fn list(state: &Arc<AppState>, repo: &Repo, uri: &http::Uri) -> Result<Response> {
    let Some(tags) = state.store.tags(repo).await? else {
        return Err(RegistryError::new(
            ErrorCode::NameUnknown,
            format!("repository {repo} is not known to this registry"),
        )
        .with_detail(serde_json::json!({ "name": repo.as_str() })));
    };
    let (page, link) = paginate(tags, uri, &format!("/v2/{repo}/tags/list"))?;
    Ok(json_page(serde_json::json!({ "name": repo.as_str(), "tags": page }), link))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(query: &str) -> Result<(Vec<String>, Option<String>)> {
        let items = ["a", "b", "c", "d"].map(String::from).to_vec();
        let uri: http::Uri = format!("/x?{query}").parse().unwrap();
        paginate(items, &uri, "/p")
    }

    #[test]
    fn pagination_table() {
        let s = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let cases: Vec<(&str, Vec<String>, Option<&str>)> = vec![
            ("", s(&["a", "b", "c", "d"]), None),
            ("n=2", s(&["a", "b"]), Some("</p?n=2&last=b>; rel=\"next\"")),
            ("n=2&last=b", s(&["c", "d"]), None),
            ("n=3&last=b", s(&["c", "d"]), None),
            ("last=c", s(&["d"]), None),
            ("n=0", s(&[]), None),
            ("last=zz", s(&[]), None),
        ];
        for (query, items, link) in cases {
            let (got, got_link) = page(query).unwrap();
            assert_eq!(got, items, "{query}");
            assert_eq!(got_link.as_deref(), link, "{query}");
        }
        assert_eq!(page("n=-1").unwrap_err().code, ErrorCode::PaginationNumberInvalid);
        assert_eq!(page("n=x").unwrap_err().code, ErrorCode::PaginationNumberInvalid);
    }
}
