use ed25519_dalek::SigningKey;

use super::{Address, ChannelInfo, Message, Sealed, Transport, envelope, random32};

/// The author's end of a channel. Its position (`next_index`) is all the state
/// it has besides its keys; persist it with them to continue after a restart.
pub struct ChannelWriter {
    author: SigningKey,
    root: [u8; 32],
    side_key: Option<[u8; 32]>,
    next_index: u64,
}

impl ChannelWriter {
    /// A new channel of `author` with a fresh random root, restricted (encrypted
    /// with a fresh side key) or public.
    pub fn new(author: SigningKey, restricted: bool) -> anyhow::Result<Self> {
        Ok(Self {
            author,
            root: random32()?,
            side_key: if restricted { Some(random32()?) } else { None },
            next_index: 0,
        })
    }

    /// A channel continued from saved state.
    pub fn resume(
        author: SigningKey,
        root: [u8; 32],
        side_key: Option<[u8; 32]>,
        next_index: u64,
    ) -> Self {
        Self {
            author,
            root,
            side_key,
            next_index,
        }
    }

    /// What a reader needs; hand it over at registration.
    pub fn info(&self) -> ChannelInfo {
        ChannelInfo {
            root: self.root,
            author: self.author.verifying_key().to_bytes(),
            side_key: self.side_key,
        }
    }

    pub fn next_index(&self) -> u64 {
        self.next_index
    }

    pub fn hello(&mut self, transport: &dyn Transport) -> anyhow::Result<Address> {
        self.write(transport, Message::Hello)
    }

    pub fn publish(&mut self, transport: &dyn Transport, data: Vec<u8>) -> anyhow::Result<Address> {
        self.write(transport, Message::Data(data))
    }

    pub fn goodbye(&mut self, transport: &dyn Transport) -> anyhow::Result<Address> {
        self.write(transport, Message::Goodbye)
    }

    /// Seals the next message and advances, without sending it: the address and
    /// bytes go into a durable outbox in the same transaction as the writer's new
    /// position, and sending them again after a crash lands at the same address,
    /// where readers keep only the first valid message. Nothing is repeated.
    pub fn prepare(&mut self, message: Message) -> anyhow::Result<Sealed> {
        match message {
            Message::Hello => anyhow::ensure!(
                self.next_index == 0,
                "hello: only the first message of a channel says hello"
            ),
            Message::Data(_) => anyhow::ensure!(
                self.next_index > 0,
                "publish: the channel has not said hello"
            ),
            Message::Goodbye => {}
        }
        let address = Address::of(&self.root, self.next_index);
        let next = Address::of(&self.root, self.next_index + 1);
        let bytes = envelope::seal(
            &self.author,
            self.side_key.as_ref(),
            &address,
            &next,
            &message,
        )?;
        let sealed = Sealed {
            author: self.author.verifying_key().to_bytes(),
            index: self.next_index,
            address,
            bytes,
        };
        self.next_index += 1;
        Ok(sealed)
    }

    fn write(&mut self, transport: &dyn Transport, message: Message) -> anyhow::Result<Address> {
        let sealed = self.prepare(message)?;
        if let Err(e) = transport.put(&sealed) {
            // Not sent: the next message takes this address, or readers would wait at a gap.
            self.next_index -= 1;
            return Err(e);
        }
        Ok(sealed.address)
    }
}
