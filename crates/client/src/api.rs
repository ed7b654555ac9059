//! The JSON bodies of the roles' HTTP APIs, shared by the servers and the
//! clients (an entity registering with its grid, the CLI, the demo, tests).

use powerplug_domain::EntityKind;
use serde::{Deserialize, Serialize};

use powerplug_channel::ChannelInfo;

/// A channel as JSON: keys in hex.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Channel {
    pub root: String,
    pub author: String,
    #[serde(default)]
    pub side_key: Option<String>,
}

fn key32(field: &'static str, hex_str: &str) -> Result<[u8; 32], &'static str> {
    let bytes = hex::decode(hex_str).map_err(|_| field)?;
    bytes.try_into().map_err(|_| field)
}

impl Channel {
    /// The channel, or the name of the field that is not 32 bytes of hex.
    pub fn info(&self) -> Result<ChannelInfo, &'static str> {
        Ok(ChannelInfo {
            root: key32("channel.root", &self.root)?,
            author: key32("channel.author", &self.author)?,
            side_key: match &self.side_key {
                Some(k) => Some(key32("channel.side_key", k)?),
                None => None,
            },
        })
    }
}

impl From<&ChannelInfo> for Channel {
    fn from(info: &ChannelInfo) -> Self {
        Self {
            root: hex::encode(info.root),
            author: hex::encode(info.author),
            side_key: info.side_key.map(hex::encode),
        }
    }
}

/// `PUT /registrations/{id}`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Register {
    pub kind: EntityKind,
    pub channel: Channel,
    /// The channel's first message (hello), sealed, in hex: a new channel
    /// opens with it (a repeat of a registered channel may leave it out).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hello: Option<String>,
    /// A registration token from the host's operator, where admission needs one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admission: Option<String>,
}

impl Register {
    /// A registration of the channel `writer` is about to open: seals its
    /// hello (so `writer` must be at message 0) to go with it.
    pub fn open(
        kind: EntityKind,
        writer: &mut powerplug_channel::ChannelWriter,
        admission: Option<&str>,
    ) -> anyhow::Result<Self> {
        let channel = Channel::from(&writer.info());
        let hello = writer.prepare(powerplug_channel::Message::Hello)?;
        Ok(Self {
            kind,
            channel,
            hello: Some(hex::encode(hello.bytes)),
            admission: admission.map(str::to_owned),
        })
    }
}

/// What a registration answers (and `GET /registrations/{id}`).
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Registered {
    pub id: String,
    pub index: u32,
    pub kind: EntityKind,
    /// Present every later change by this entity; only in answers to `PUT`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
    /// The channel the host writes back on (consumers: payment requests).
    #[serde(default)]
    pub return_channel: Option<Channel>,
    /// Where the host writes its next message on the return channel. A
    /// reader past it read messages of a history the host no longer has
    /// (it was restored from a backup).
    #[serde(default)]
    pub return_next: Option<u64>,
    /// Where the host reads the entity's channel next: all before it is
    /// taken; a restored host may need what came after sent again.
    pub read_index: u64,
    pub closed: bool,
    pub dropped: u64,
    pub rejected: u64,
}

/// `POST /wallet/issue` (operator).
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Issue {
    pub to: String,
    pub amount: powerplug_domain::Tokens,
    pub key: String,
    /// `to` is not registered (yet): the operator opens its account on
    /// purpose. Without it, money goes only to registered entities and the
    /// grid's own account.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unregistered: bool,
}
