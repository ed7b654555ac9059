use ed25519_dalek::VerifyingKey;

use super::{Address, ChannelInfo, Message, Source, envelope};

/// How many messages one poll reads at most, so that a long chain cannot hold a
/// poller forever; the next poll continues.
pub const MAX_PER_POLL: usize = 10_000;

/// A reader's end of a channel: follows the chain from where it stopped.
pub struct ChannelReader {
    author: [u8; 32],
    /// The author's key as a curve point, made the first time a signature
    /// is checked: a reader whose source checked them (see
    /// [`Source::signed`]) never spends the point's decompression.
    key: Option<VerifyingKey>,
    root: [u8; 32],
    side_key: Option<[u8; 32]>,
    next_index: u64,
    /// Messages at the next address already found invalid: not counted again.
    examined: usize,
    closed: bool,
}

/// What one poll found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Poll {
    /// Data messages, in channel order.
    pub data: Vec<Vec<u8>>,
    /// The channel said goodbye; nothing after it is read.
    pub closed: bool,
    /// Messages at the addresses read that were not valid (junk, forgeries).
    pub dropped: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("author: not an Ed25519 public key")]
    BadAuthor,
    #[error("the channel does not open with hello")]
    NotOpened,
    #[error("transport: {0:#}")]
    Transport(anyhow::Error),
}

impl ChannelReader {
    pub fn new(info: &ChannelInfo) -> Result<Self, ReadError> {
        Self::resume(info, 0)
    }

    /// A reader that continues at `next_index` (saved from [`Self::next_index`]).
    pub fn resume(info: &ChannelInfo, next_index: u64) -> Result<Self, ReadError> {
        Self::resume_at(info, next_index, 0)
    }

    /// A reader that continues at `next_index`, where the first `examined`
    /// messages were found invalid before (saved from [`Self::examined`]), so
    /// that junk is dropped and counted once, however often a poll looks.
    pub fn resume_at(
        info: &ChannelInfo,
        next_index: u64,
        examined: usize,
    ) -> Result<Self, ReadError> {
        Ok(Self {
            author: info.author,
            key: None,
            root: info.root,
            side_key: info.side_key,
            next_index,
            examined,
            closed: false,
        })
    }

    pub fn examined(&self) -> usize {
        self.examined
    }

    pub fn next_index(&self) -> u64 {
        self.next_index
    }

    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// Reads every new message up to the end of the chain (or a goodbye).
    pub fn poll<S: Source + ?Sized>(&mut self, source: &S) -> Result<Poll, ReadError> {
        let mut poll = Poll::default();
        while !self.closed && poll.data.len() < MAX_PER_POLL {
            let address = Address::of(&self.root, self.next_index);
            let next = Address::of(&self.root, self.next_index + 1);
            let candidates = source.messages(&address).map_err(ReadError::Transport)?;
            let mut found = None;
            for (position, bytes) in candidates.iter().enumerate().skip(self.examined) {
                let side_key = self.side_key.as_ref();
                let opened = match source.signed(&self.author, &address, position) {
                    true => envelope::open_signed(side_key, &address, &next, bytes),
                    false => {
                        let key = match self.key {
                            Some(key) => key,
                            None => *self.key.insert(
                                VerifyingKey::from_bytes(&self.author)
                                    .map_err(|_| ReadError::BadAuthor)?,
                            ),
                        };
                        envelope::open(&key, side_key, &address, &next, bytes)
                    }
                };
                match opened {
                    Some(message) => {
                        found = Some(message);
                        break;
                    }
                    None => {
                        poll.dropped += 1;
                        self.examined += 1;
                    }
                }
            }
            let Some(message) = found else { break };
            self.examined = 0;
            match (self.next_index, message) {
                (0, Message::Hello) => {}
                (0, _) => return Err(ReadError::NotOpened),
                (_, Message::Hello) => {}
                (_, Message::Data(data)) => poll.data.push(data),
                (_, Message::Goodbye) => self.closed = true,
            }
            self.next_index += 1;
        }
        poll.closed = self.closed;
        Ok(poll)
    }
}
