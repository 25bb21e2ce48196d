//! distribution's notification envelope ("Notifications", docs/notifications.md): a POST
//! with `Content-Type: application/vnd.docker.distribution.events.v1+json` and a body
//! `{"events": [...]}`, each event with an `id`, a `timestamp`, an `action` (`push`,
//! `pull`, `delete`, `mount`), a `target` (media type, size, digest, repository, URL, tag),
//! the `request` that caused it, the `actor` and the `source` registry.

use serde::Serialize;

/// The envelope's media type, as distribution sends it.
pub const EVENTS_MEDIA_TYPE: &str = "application/vnd.docker.distribution.events.v1+json";

/// `{"events": [...]}`.
#[derive(Debug, Clone, Serialize)]
pub struct Envelope<'a> {
    pub events: &'a [Event],
}

/// One event, field for field as distribution's `notifications.Event`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    pub id: String,
    /// RFC 3339 in UTC.
    pub timestamp: String,
    pub action: Action,
    pub target: Target,
    pub request: RequestRecord,
    pub actor: Actor,
    pub source: Source,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Push,
    Pull,
    Delete,
    Mount,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Push => "push",
            Action::Pull => "pull",
            Action::Delete => "delete",
            Action::Mount => "mount",
        }
    }
}

/// What the event is about.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Target {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub media_type: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub digest: String,
    /// distribution sends the size twice, as `size` and `length`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub length: Option<u64>,
    pub repository: String,
    /// The repository a mounted blob came from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from_repository: Option<String>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub url: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub tag: String,
}

/// The request that caused the event.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub struct RequestRecord {
    pub id: String,
    pub host: String,
    pub method: String,
    pub useragent: String,
}

/// Who made the request: the user, empty for anonymous clients.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Actor {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
}

/// The registry that sent the event.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Source {
    pub addr: String,
    #[serde(rename = "instanceID")]
    pub instance_id: String,
}
