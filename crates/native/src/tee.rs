//! One read of the source for several uploads: the members of a core
//! [`Share`](ferry_core::transport::Share).
//!
//! The core hands the members of a share group out together, one transfer each. The
//! first member to start opens the group and a pump task; the others join it with a
//! bounded channel each. Once every member has joined (or after [`GATHER`], so that a
//! member the driver holds back cannot stall the rest), the pump `GET`s the blob once and
//! sends every piece to every member still listening, waiting for each channel to take
//! it: the read is paced by the slowest upload and memory stays bounded by
//! [`PIECES_AHEAD`] pieces per member. Each member's upload verifies the bytes it sends
//! with its own verifier, as a transfer alone does. A member that leaves (its upload
//! failed, or must re-read the source to resume) drops its channel; the pump goes on for
//! the others. A member that arrives after the read began reads the source on its own.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use ferry_core::transport::{Share, Transfer, TransportError};
use futures_util::StreamExt as _;
use tokio::sync::{mpsc, Notify};

use crate::client::Client;
use crate::source;

/// How long the first member of a group waits for the others before the read begins.
pub(crate) const GATHER: Duration = Duration::from_secs(2);

/// Pieces of the source a member's channel holds before the pump waits for it.
pub(crate) const PIECES_AHEAD: usize = 4;

/// One piece of the source, or the failure that ended the read.
pub(crate) type Piece = Result<Bytes, TransportError>;

enum Group {
    /// Members joining; the pump waits for `expected` of them.
    Gathering { expected: usize, members: Vec<mpsc::Sender<Piece>>, all_in: Arc<Notify> },
    /// The read has begun: no one joins any more.
    Reading,
}

/// The share groups of a transport, by id.
#[derive(Default)]
pub(crate) struct Tees {
    groups: Mutex<HashMap<u64, Group>>,
}

impl std::fmt::Debug for Tees {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tees").finish_non_exhaustive()
    }
}

impl Tees {
    /// Joins `transfer`'s share group: a channel of the blob's pieces from byte 0, or
    /// `None` when the transfer shares nothing or its group's read has already begun.
    pub(crate) fn join(
        self: &Arc<Self>,
        client: &Client,
        transfer: &Transfer,
    ) -> Option<mpsc::Receiver<Piece>> {
        let Share { id, members, .. } = transfer.share?;
        let (sender, receiver) = mpsc::channel(PIECES_AHEAD);
        let mut groups = self.groups.lock().unwrap_or_else(PoisonError::into_inner);
        match groups.get_mut(&id) {
            Some(Group::Reading) => return None,
            Some(Group::Gathering { expected, members, all_in }) => {
                members.push(sender);
                if members.len() >= *expected {
                    all_in.notify_one();
                }
            }
            None => {
                let all_in = Arc::new(Notify::new());
                groups.insert(
                    id,
                    Group::Gathering { expected: members, members: vec![sender], all_in: all_in.clone() },
                );
                let (tees, client, transfer) = (self.clone(), client.clone(), transfer.clone());
                tokio::spawn(async move {
                    let _ = tokio::time::timeout(GATHER, all_in.notified()).await;
                    let members = tees.start_reading(id);
                    pump(&client, &transfer, members).await;
                });
            }
        }
        Some(receiver)
    }

    /// Closes group `id` to new members and returns those it has.
    fn start_reading(&self, id: u64) -> Vec<mpsc::Sender<Piece>> {
        let mut groups = self.groups.lock().unwrap_or_else(PoisonError::into_inner);
        match groups.insert(id, Group::Reading) {
            Some(Group::Gathering { members, .. }) => members,
            _ => Vec::new(),
        }
    }
}

/// Reads the blob once and hands every piece to every member still listening.
async fn pump(client: &Client, transfer: &Transfer, mut members: Vec<mpsc::Sender<Piece>>) {
    // Members count the bytes they take; the pump's own count is not reported.
    let uncounted = Arc::default();
    let mut source = match source::open(client, transfer, 0, &uncounted).await {
        Ok(source) => source,
        Err(error) => {
            for member in members {
                let _ = member.send(Err(error.clone())).await;
            }
            return;
        }
    };
    tracing::debug!(digest = %transfer.digest, members = members.len(), "reading a blob once for several destinations");
    while let Some(piece) = source.next().await {
        let failed = piece.is_err();
        let mut listening = Vec::with_capacity(members.len());
        for member in members {
            if member.send(piece.clone()).await.is_ok() {
                listening.push(member);
            }
        }
        members = listening;
        if members.is_empty() || failed {
            return;
        }
    }
}
