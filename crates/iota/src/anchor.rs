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

/// A settlement found on the Tangle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub anchored: Anchored,
    /// The milestone that confirmed the block: anchors of later ticks are
    /// confirmed no earlier, so one that was posted again later shows.
    pub milestone: Option<u32>,
}

/// What the block `block_id` anchors.
pub fn read(node: &Node, block_id: &str) -> anyhow::Result<Found> {
    let id = BlockId::from_str(block_id).map_err(|e| anyhow::anyhow!("block: {e}"))?;
    let (block, metadata) = node.run(async {
        let block = node.client.get_block(&id).await?;
        Ok((block, node.client.get_block_metadata(&id).await?))
    })?;
    match block.payload() {
        Some(Payload::TaggedData(t)) if t.tag() == TAG => Ok(Found {
            anchored: serde_json::from_slice(t.data())?,
            milestone: metadata.referenced_by_milestone_index,
        }),
        _ => anyhow::bail!("block {block_id}: no Powerplug settlement"),
    }
}
