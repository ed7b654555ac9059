//! Channels on the Tangle. A channel message is a basic output whose tag is
//! the message's channel address (32 bytes) and whose metadata is the sealed
//! message; a reader finds the messages at an address through the indexer's
//! `outputs/basic?tag=`. Outputs, unlike tagged-data blocks, stay in the
//! ledger (a node prunes old blocks, not unspent outputs) and are indexed by
//! tag, which is what a reader that knows only addresses needs.
//!
//! What it costs and gives up:
//! - Each message locks a storage deposit (a few hundred thousand glow for a
//!   4 KiB message) in an output owned by the second address of the writer's
//!   wallet (index 1). The transport pays only from the first (index 0), so
//!   it never spends a message to fund the next; the wallet's holder could
//!   take a deposit back by hand, and a reader that had not read the message
//!   by then would not find it. Readers keep their position, so what they
//!   read stays read; the tick anchors (`anchor`) show later what was settled.
//! - The Tangle takes anyone's output with any tag: as in the host's own
//!   store, a reader drops what fails the channel's signature, link or
//!   decryption and keeps the first valid message. It reads at most
//!   [`MAX_AT_ADDRESS`] outputs of one tag, so junk costs a reader a bounded
//!   amount; junk enough to hide a message costs its sender that many
//!   deposits.
//! - A resend of a message already on the Tangle is skipped (looked up by tag
//!   first), so resending after a lost answer posts nothing twice.

use iota_client::block::address::Address as IotaAddress;
use iota_client::block::output::feature::{MetadataFeature, TagFeature};
use iota_client::block::output::unlock_condition::AddressUnlockCondition;
use iota_client::block::output::{BasicOutputBuilder, Output};
use iota_client::node_api::indexer::query_parameters::QueryParameter;
use iota_client::secret::SecretManager;
use powerplug_channel::{Address, Refused, Sealed, Transport};

use crate::Bech32Wallet;
use crate::node::{Node, NodeConfig};

/// Outputs read at one channel address at most.
pub const MAX_AT_ADDRESS: usize = 16;
/// Metadata bytes one transaction carries at most: a block is at most 32 KiB.
const TRANSACTION_BYTES: usize = 20 * 1024;
/// Outputs one transaction makes at most (128 with the remainder).
const TRANSACTION_OUTPUTS: usize = 100;

pub struct IotaTransport {
    node: Node,
    secret: SecretManager,
    /// Pays the deposits (index 0).
    wallet: String,
    /// Holds the messages (index 1).
    owner: IotaAddress,
}

impl IotaTransport {
    /// A transport that pays message deposits from the wallet of `seed`
    /// (its first address; the messages are held by its second), on the
    /// node `config` names.
    pub fn connect(config: NodeConfig, seed: &[u8; 32]) -> anyhow::Result<Self> {
        let node = Node::connect(config)?;
        let secret = SecretManager::try_from_hex_seed(&format!("0x{}", hex::encode(seed)))
            .map_err(|e| anyhow::anyhow!("seed: {e}"))?;
        let addresses = Bech32Wallet::new(seed, &node.bech32_hrp()?, node.config.coin_type)?;
        let (_, owner) = IotaAddress::try_from_bech32(&addresses.address(1)?)?;
        Ok(IotaTransport {
            wallet: addresses.address(0)?,
            node,
            secret,
            owner,
        })
    }

    /// The Bech32 address that pays the deposits.
    pub fn wallet(&self) -> &str {
        &self.wallet
    }

    fn output(&self, message: &Sealed, params: &Params) -> anyhow::Result<Output> {
        Ok(
            BasicOutputBuilder::new_with_minimum_storage_deposit(params.rent.clone())?
                .add_unlock_condition(AddressUnlockCondition::new(self.owner).into())
                .add_feature(TagFeature::new(message.address.0.to_vec())?.into())
                .add_feature(MetadataFeature::new(message.bytes.clone())?.into())
                .finish_output(params.supply)?,
        )
    }

    fn post(&self, outputs: Vec<Output>) -> anyhow::Result<()> {
        self.node.run(async {
            let block = self
                .node
                .client
                .block()
                .with_secret_manager(&self.secret)
                .with_coin_type(self.node.config.coin_type)
                .with_input_range(0..1)
                .with_outputs(outputs)?
                .finish()
                .await?;
            self.node.confirmed(block.id()).await
        })
    }
}

struct Params {
    rent: iota_client::block::output::RentStructure,
    supply: u64,
}

fn tag(address: &Address) -> QueryParameter {
    QueryParameter::Tag(format!("0x{}", hex::encode(address.0)))
}

impl Transport for IotaTransport {
    fn put_many(&self, messages: &[Sealed]) -> anyhow::Result<Vec<Refused>> {
        let params = self.node.run(async {
            Ok(Params {
                rent: self.node.client.get_rent_structure().await?,
                supply: self.node.client.get_token_supply().await?,
            })
        })?;
        let mut refused = Vec::new();
        let mut batch: Vec<Output> = Vec::new();
        let mut bytes = 0;
        for (position, message) in messages.iter().enumerate() {
            if self.get(&message.address)?.contains(&message.bytes) {
                continue;
            }
            match self.output(message, &params) {
                Ok(output) => {
                    if bytes + message.bytes.len() > TRANSACTION_BYTES
                        || batch.len() == TRANSACTION_OUTPUTS
                    {
                        self.post(std::mem::take(&mut batch))?;
                        bytes = 0;
                    }
                    bytes += message.bytes.len();
                    batch.push(output);
                }
                // Too long for an output's metadata: never worth sending again.
                Err(e) => refused.push(Refused {
                    position,
                    reason: format!("message: {e}"),
                    retry: false,
                }),
            }
        }
        if !batch.is_empty() {
            self.post(batch)?;
        }
        Ok(refused)
    }

    fn get(&self, address: &Address) -> anyhow::Result<Vec<Vec<u8>>> {
        self.node.run(async {
            let mut ids = self
                .node
                .client
                .basic_output_ids(vec![tag(address)])
                .await?;
            ids.truncate(MAX_AT_ADDRESS);
            let mut found = self.node.client.get_outputs(ids).await?;
            // In the order the ledger booked them.
            found.sort_by_key(|o| (o.metadata.milestone_index_booked, o.metadata.output_index));
            let mut messages = Vec::new();
            for o in found {
                let output = Output::try_from_dto_unverified(&o.output)?;
                let tagged = output
                    .features()
                    .and_then(|f| f.tag())
                    .is_some_and(|t| t.tag() == address.0);
                if let Some(metadata) = output.features().and_then(|f| f.metadata())
                    && tagged
                {
                    messages.push(metadata.data().to_vec());
                }
            }
            Ok(messages)
        })
    }
}
