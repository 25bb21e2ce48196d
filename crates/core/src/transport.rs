//! What the core asks a driver to do, and the trait a driver's transport implements.
//!
//! The core never touches a socket. It hands out [`Action`]s: a small request to send,
//! or a blob to move. The driver performs them and feeds the outcome back. Blob bytes
//! never pass through the core: a [`Transfer`] describes a move and the transport
//! streams the bytes, hashing them with the core's [`Verifier`](crate::digest::Verifier)
//! on the way.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use crate::digest::{Digest, VerifyError};
use crate::error_body::describe_body;
use crate::retry::{parse_retry_after, FailureClass, RetryPolicy};
use crate::time::{Instant, UnixTime};
use crate::tls::TlsFailure;

/// Identifies one action until its outcome is fed back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ActionId(pub u64);

impl fmt::Display for ActionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// Work for the driver.
// An action is moved once, from the machine to the driver: boxing the transfer would
// buy nothing but an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Action {
    /// Send a small request (manifest, HEAD, token, mount, tags) with
    /// [`Transport::send`] and feed the result back as
    /// [`Completion::of_send`](crate::machine::Completion::of_send).
    Send {
        /// Names the action when its completion is fed back.
        id: ActionId,
        /// The request, authorisation included: send it as it is.
        request: http::Request<Vec<u8>>,
    },
    /// Move one blob with [`Transport::transfer`] and feed the result back as
    /// [`Completion::of_transfer`](crate::machine::Completion::of_transfer).
    Transfer {
        /// Names the action when its completion is fed back.
        id: ActionId,
        /// What to move, and where.
        transfer: Transfer,
    },
}

impl Action {
    /// The id to feed this action's completion back under.
    pub fn id(&self) -> ActionId {
        match self {
            Action::Send { id, .. } | Action::Transfer { id, .. } => *id,
        }
    }
}

/// One blob to move: GET `source`, stream it into an upload session at the destination.
#[derive(Debug, Clone)]
pub struct Transfer {
    /// The blob GET, authorised for the source. It may redirect (to object storage);
    /// `Authorization` must not follow a redirect to another host.
    pub source: http::Request<()>,
    /// `POST /v2/<name>/blobs/uploads/` at the destination, used to open a session when
    /// `upload_location` is `None`.
    pub upload_start: String,
    /// An upload session the core already opened (a mount answered `202 Accepted`), or
    /// one a past run left (`resumes_session`).
    pub upload_location: Option<String>,
    /// `upload_location` is a session a past run opened and did not finish (see
    /// [`crate::resume`]): ask the registry where it stands before sending, and send only
    /// the rest; a session it no longer knows gives way to a new one.
    pub resumes_session: bool,
    /// Headers for every upload request (POST, PATCH, PUT): the destination's authorisation.
    pub upload_headers: http::HeaderMap,
    /// The blob's digest: the bytes read must hash to it, and the upload is committed
    /// with it (end-6, `PUT <location>?digest=<digest>`).
    pub digest: Digest,
    /// The blob's size as the manifest gives it; more or fewer bytes fail the transfer.
    pub size: u64,
    /// How the upload retries its own steps (a chunk, a commit) before the transfer fails:
    /// the job's policy.
    pub retry: RetryPolicy,
    /// Seeds the upload's retry jitter, so a simulation replays the same schedule.
    pub seed: u64,
    /// This transfer is one of several that move the same blob from the same source
    /// registry to different destination registries, handed out together: a transport may read the
    /// source once for all of them (see [`Share`]).
    pub share: Option<Share>,
}

/// Transfers of one blob, from one source registry, to several destinations (a rule with a list of
/// destinations). The core hands the members out in one drain, each as its own
/// [`Action::Transfer`] with its own outcome: a destination that fails does not fail the
/// others. A transport that can tees one source stream into every member's upload, paced
/// by the slowest, each upload verifying the digest as it streams; a member that comes
/// late, or must re-read the source (a resume), reads the source on its own. A transport
/// that cannot share (the browser's) moves each member alone: the outcome is the same.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Share {
    /// Names the group within the job; never reused.
    pub id: u64,
    /// How many transfers the group has.
    pub members: usize,
    /// The member that stands for the group's one read of the source in the core's
    /// windows (a blob-read slot at the source registry); the others take only an upload
    /// slot at their destination.
    pub leader: bool,
}

/// How a transfer went when it succeeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TransferReport {
    /// Bytes read from the source (more than `size` when a resume re-read a prefix).
    pub bytes: u64,
}

/// Who failed: one side of a transfer, or the registry a small request went to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The registry a transfer reads the blob from.
    Source,
    /// The registry a transfer uploads the blob to.
    Destination,
    /// A small request (`Transport::send`), which talks to one registry.
    Registry,
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Side::Source => "source",
            Side::Destination => "destination",
            Side::Registry => "registry",
        })
    }
}

/// A failure below HTTP, or an HTTP answer that stopped a transfer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// Could not connect, the connection broke, TLS failed, or the body was cut short.
    #[error("{side} connection failed: {message}")]
    Connection {
        /// Where it failed.
        side: Side,
        /// The underlying error, naming the host.
        message: String,
    },
    /// An answer, or the next bytes of a body, did not come within the transport's limit.
    #[error("{side} timed out: {message}")]
    Timeout {
        /// Where it timed out.
        side: Side,
        /// What timed out, naming the host.
        message: String,
    },
    /// An HTTP status that ended a transfer (small requests report statuses as responses).
    #[error("{side} answered HTTP {status}{}", detail.as_deref().map(|d| format!(": {d}")).unwrap_or_default())]
    Status {
        /// Which registry answered.
        side: Side,
        /// The HTTP status code.
        status: u16,
        /// The answer's `Retry-After`, parsed: the retry waits that long, or is given up
        /// when that is beyond the retry policy's patience.
        retry_after: Option<Duration>,
        /// What the answer says, e.g. the spec's `{"errors":[{"code","message"}]}` body.
        detail: Option<String>,
    },
    /// A `401 Unauthorized` that ended a transfer. `challenge` is the answer's
    /// `WWW-Authenticate` (RFC 9110 §11.6.1): a registry that lets anyone pull may ask for
    /// credentials only when a push starts, so this may be the first challenge it sends.
    #[error("{side} answered HTTP 401{}", detail.as_deref().map(|d| format!(": {d}")).unwrap_or_default())]
    Unauthorized {
        /// Which registry refused.
        side: Side,
        /// The `WWW-Authenticate` value, if the answer had one.
        challenge: Option<String>,
        /// What the answer says, e.g. the spec's `{"errors":[{"code","message"}]}` body.
        detail: Option<String>,
    },
    /// The source's bytes do not match the descriptor. Nothing was committed.
    #[error("{0}")]
    Verify(VerifyError),
    /// The caller cancelled the job.
    #[error("cancelled")]
    Cancelled,
    /// The transport's allowlist refused the host or the address it resolved to (a relay
    /// reaches only the registries its operator listed). `message` names the host and
    /// the setting that allows it.
    #[error("{side}: {message}")]
    NotAllowed {
        /// Which side's request was refused.
        side: Side,
        /// The host, why it was refused, and the fix.
        message: String,
    },
    /// A TLS handshake failed for a reason that another attempt cannot change. `message`
    /// names the registry, what was wrong and which file or flag fixes it.
    #[error("{message}")]
    Tls {
        /// Which side's handshake failed.
        side: Side,
        /// What was wrong.
        failure: TlsFailure,
        /// One line: the registry, the problem and the fix.
        message: String,
    },
}

impl TransportError {
    /// Whether a chunked upload that failed this way is worth resuming: the destination's
    /// connection broke, timed out or answered a transient status, so the registry may
    /// hold part of what was sent, and its `Range` says how much.
    pub fn upload_may_resume(&self) -> bool {
        match self {
            TransportError::Connection { side: Side::Destination, .. }
            | TransportError::Timeout { side: Side::Destination, .. } => true,
            TransportError::Status { side: Side::Destination, .. } => self.class().is_transient(),
            _ => false,
        }
    }

    /// An answer whose status ended a request to `host`: its status, `Retry-After` (read
    /// at wall-clock time `now`), challenge, and the registry's own words from the body.
    pub fn from_answer<B: AsRef<[u8]>>(
        side: Side,
        host: &str,
        answer: &http::Response<B>,
        now: UnixTime,
    ) -> TransportError {
        let header = |name| answer.headers().get(name).and_then(|v: &http::HeaderValue| v.to_str().ok());
        let detail = Some(match describe_body(answer.body().as_ref()) {
            Some(words) => format!("{host}: {words}"),
            None => host.to_owned(),
        });
        let status = answer.status().as_u16();
        if status == 401 {
            let challenge = header(http::header::WWW_AUTHENTICATE).map(str::to_owned);
            return TransportError::Unauthorized { side, challenge, detail };
        }
        let retry_after = header(http::header::RETRY_AFTER).and_then(|v| parse_retry_after(v, now));
        TransportError::Status { side, status, retry_after, detail }
    }

    /// Whether another attempt may succeed.
    pub fn class(&self) -> FailureClass {
        match self {
            TransportError::Connection { .. } | TransportError::Timeout { .. } => {
                FailureClass::Transient { retry_after: None }
            }
            TransportError::Status { status, retry_after, .. } => match http::StatusCode::from_u16(*status) {
                Ok(code) => FailureClass::of_status(code, *retry_after),
                Err(_) => FailureClass::Permanent,
            },
            // A body cut short is a broken connection; a body that is complete and wrong is a lie.
            TransportError::Verify(VerifyError::TooShort { .. }) => {
                FailureClass::Transient { retry_after: None }
            }
            TransportError::Unauthorized { .. }
            | TransportError::Verify(_)
            | TransportError::Cancelled
            | TransportError::NotAllowed { .. }
            | TransportError::Tls { .. } => FailureClass::Permanent,
        }
    }
}

/// Bytes of one transfer moved so far; the transport stores, the driver reads.
pub type ProgressCounter = Arc<AtomicU64>;

/// A transport's future. `Send` on native targets, local in the browser.
#[cfg(not(target_arch = "wasm32"))]
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;
/// A transport's future. `Send` on native targets, local in the browser.
#[cfg(target_arch = "wasm32")]
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + 'a>>;

/// Moves bytes for the core. Implemented by the native (reqwest) and browser (fetch)
/// drivers, and by the test kit's in-memory registries.
#[cfg_attr(not(target_arch = "wasm32"), async_trait::async_trait)]
#[cfg_attr(target_arch = "wasm32", async_trait::async_trait(?Send))]
pub trait Transport {
    /// Sends a small request and returns the whole answer, whatever its status.
    async fn send(&self, request: http::Request<Vec<u8>>) -> Result<http::Response<Vec<u8>>, TransportError>;

    /// Streams a blob from source to upload session, verifying digest and size on the way,
    /// and completes the upload only when verification passed. Stores the bytes moved so
    /// far in `progress`. The upload's protocol is the core's
    /// [`Upload`](crate::upload::Upload) machine; its waits are on `clock`, the driver's.
    async fn transfer(
        &self,
        transfer: Transfer,
        progress: ProgressCounter,
        clock: &dyn Clock,
    ) -> Result<TransferReport, TransportError>;
}

/// The driver's clock. Native drivers use the runtime's timer, the browser its own, and
/// the test kit a virtual clock.
pub trait Clock: ClockBounds {
    /// The current point on the driver's monotonic clock.
    fn now(&self) -> Instant;
    /// Resolves once `deadline` has been reached.
    fn sleep_until(&self, deadline: Instant) -> BoxFuture<'_, ()>;
}

/// What every [`Clock`] is, so that a driver can lend its clock to a transport: shareable
/// across threads on native targets (a transfer's future is `Send` there), and viewable
/// as `&dyn Clock` whatever its type.
#[cfg(not(target_arch = "wasm32"))]
pub trait ClockBounds: Send + Sync {
    /// This clock as a trait object, to lend to a transport.
    fn as_dyn(&self) -> &dyn Clock;
}

/// What every [`Clock`] is: viewable as `&dyn Clock` whatever its type.
#[cfg(target_arch = "wasm32")]
pub trait ClockBounds {
    /// This clock as a trait object, to lend to a transport.
    fn as_dyn(&self) -> &dyn Clock;
}

#[cfg(not(target_arch = "wasm32"))]
impl<C: Clock + Send + Sync> ClockBounds for C {
    fn as_dyn(&self) -> &dyn Clock {
        self
    }
}

#[cfg(target_arch = "wasm32")]
impl<C: Clock> ClockBounds for C {
    fn as_dyn(&self) -> &dyn Clock {
        self
    }
}
