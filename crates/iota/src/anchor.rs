//! Anchoring: a grid tick's settlement (a hash of its decision and its ledger
//! transfers) posted to the Tangle as tagged data, so that anyone holding the
//! grid's records can later show they were not rewritten: `powerplug verify`
//! recomputes a recorded tick's settlement and compares it with the block.
//! A tagged-data block needs no funds, only proof of work; nodes prune old
//! blocks, so a verifier needs a node that keeps them (a permanode) for old
//! ticks.

use std::str::FromStr;

use iota_client::block::BlockId;
use iota_client::block::payload::Payload;
use serde::{Deserialize, Serialize};

use crate::node::Node;

/// The tag of every settlement block.
pub const TAG: &[u8] = b"powerplug/settlement/v1";

/// What a block carries: whose tick, which, and its settlement hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Anchored {
    pub grid: String,
    pub tick: u64,
    /// Hex SHA-256.
    pub settlement: String,
}

/// Posts `anchored` and waits until it is confirmed; answers the block id.
pub fn post(node: &Node, anchored: &Anchored) -> anyhow::Result<String> {
    let data = serde_json::to_vec(anchored)?;
    let id = node.run(async {
        let block = node
            .client
            .block()
            .with_tag(TAG.to_vec())
            .with_data(data)
            .finish()
            .await?;
        node.confirmed(block.id()).await?;
        Ok(block.id())
    })?;
    Ok(id.to_string())
}

/// What the block `block_id` anchors.
pub fn read(node: &Node, block_id: &str) -> anyhow::Result<Anchored> {
    let id = BlockId::from_str(block_id).map_err(|e| anyhow::anyhow!("block: {e}"))?;
    let block = node.run(node.client.get_block(&id))?;
    match block.payload() {
        Some(Payload::TaggedData(t)) if t.tag() == TAG => Ok(serde_json::from_slice(t.data())?),
        _ => anyhow::bail!("block {block_id}: no Powerplug settlement"),
    }
}
