//! Paginated listings: `GET /v2/<name>/tags/list` and `GET /v2/_catalog`.
//!
//! Distribution spec, end-8b: "the response will include a `Link` header ... `Link:
//! <<url>?n=<n from the request>&last=<last tag value from previous response>>;
//! rel="next"`". A listing is read page by page until no `rel="next"` remains.

use http::header::{ACCEPT, LINK};
use http::{HeaderValue, Method, Response, Uri};
use serde::Deserialize;

use crate::api::{next_link, request, EndpointMap};
use crate::auth::Scope;
use crate::error::{Error, ErrorKind};
use crate::session::{AuthNeed, Call};

/// One listing of one registry: its catalog, or a repository's tags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Listing {
    Catalog { registry: String },
    Tags { registry: String, repository: String },
}

/// One page of names, and the call for the next page, if any.
pub(crate) struct Page {
    pub items: Vec<String>,
    pub next: Option<Call>,
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

impl Listing {
    /// `catalog of <registry>` or `tags of <registry>/<repository>`, for messages.
    pub(crate) fn describe(&self) -> String {
        match self {
            Listing::Catalog { registry } => format!("catalog of {registry}"),
            Listing::Tags { registry, repository } => format!("tags of {registry}/{repository}"),
        }
    }

    fn registry(&self) -> &str {
        match self {
            Listing::Catalog { registry } | Listing::Tags { registry, .. } => registry,
        }
    }

    /// The call for the first page. A repository name that cannot form a URL (one a
    /// catalog listed, say) fails this listing alone.
    pub(crate) fn first(&self, endpoints: &EndpointMap) -> Result<Call, Error> {
        let endpoint = endpoints.endpoint(self.registry());
        let uri = match self {
            Listing::Catalog { .. } => endpoint.catalog(),
            Listing::Tags { repository, .. } => endpoint.tags_list(repository),
        };
        let uri = uri.map_err(|e| Error::new(ErrorKind::InvalidName, e.to_string()))?;
        Ok(self.call(uri))
    }

    /// Reads a successful page; its `Link` names the next.
    pub(crate) fn read(&self, response: &Response<Vec<u8>>, endpoints: &EndpointMap) -> Result<Page, Error> {
        let invalid = |what: &str, e: serde_json::Error| {
            Error::new(ErrorKind::InvalidAnswer, format!("the answer is not a {what} ({e})"))
        };
        let items = match self {
            Listing::Catalog { .. } => {
                serde_json::from_slice::<Catalog>(response.body())
                    .map_err(|e| invalid("catalog", e))?
                    .repositories
            }
            Listing::Tags { .. } => {
                serde_json::from_slice::<TagList>(response.body()).map_err(|e| invalid("tag list", e))?.tags
            }
        };
        let link = response.headers().get(LINK).and_then(|v| v.to_str().ok()).and_then(next_link);
        let next = match link {
            Some(target) => {
                let uri = endpoints.endpoint(self.registry()).resolve(target);
                Some(self.call(uri.map_err(|e| Error::new(ErrorKind::InvalidAnswer, e.to_string()))?))
            }
            None => None,
        };
        Ok(Page { items: items.unwrap_or_default(), next })
    }

    /// The GET for one page, authorised to list.
    fn call(&self, uri: Uri) -> Call {
        let mut request = request(Method::GET, uri);
        request.headers_mut().insert(ACCEPT, HeaderValue::from_static("application/json"));
        let (repository, scope) = match self {
            Listing::Catalog { .. } => (String::new(), Scope::catalog()),
            Listing::Tags { repository, .. } => (repository.clone(), Scope::pull(repository)),
        };
        let auth = AuthNeed { registry: self.registry().to_owned(), repository, scopes: vec![scope] };
        Call::Send { request, auth }
    }
}
