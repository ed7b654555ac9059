//! A Stardust node on loopback, for tests: the subset of the node's REST API
//! that `iota-client` uses to post and find blocks and outputs (info, tips,
//! blocks and their metadata, outputs and their metadata, the indexer's basic
//! output query). No IOTA node can be installed on our machines, and a mock of
//! our own answers would prove nothing; this one takes what it is sent through
//! the client's own types: a block is unpacked with the network's protocol
//! parameters (syntax, lengths), its proof of work scored, a transaction's
//! inputs looked up and its unlocks checked by `iota-types`' semantic
//! validation (signatures, amounts, storage deposits). A block is confirmed as
//! soon as it is taken: one milestone a block.
//!
//! What it leaves out: gossip, tip selection (its tips are the last blocks),
//! milestones as payloads, pruning, and the indexer's paging (it answers every
//! match at once).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use iota_client::api_types::core::dto::LedgerInclusionStateDto;
use iota_client::api_types::core::response::{
    BaseTokenResponse, BlockMetadataResponse, ConfirmedMilestoneResponse, InfoResponse,
    LatestMilestoneResponse, MetricsResponse, OutputWithMetadataResponse, StatusResponse,
    SubmitBlockResponse, TipsResponse,
};
use iota_client::api_types::plugins::indexer::OutputIdsResponse;
use iota_client::block::address::Address;
use iota_client::block::output::dto::{OutputDto, OutputMetadataDto, RentStructureDto};
use iota_client::block::output::{Output, OutputId, RentStructure};
use iota_client::block::payload::Payload;
use iota_client::block::payload::transaction::TransactionId;
use iota_client::block::protocol::{ProtocolParameters, dto::ProtocolParametersDto};
use iota_client::block::semantic::{ConflictReason, ValidationContext, semantic_validation};
use iota_client::block::{Block, BlockDto, BlockId};
use iota_client::packable::PackableExt;
use iota_client::pow::score::PowScorer;
use serde::Deserialize;

/// The network the emulator runs; addresses on it start with `rms1`.
pub const HRP: &str = "rms";
/// Storage deposit per virtual byte, and the weights of key and data bytes:
/// Shimmer's.
const RENT: (u32, u8, u8) = (100, 10, 1);

struct Booked {
    output: Output,
    block: BlockId,
    booked: u32,
    spent: Option<(u32, TransactionId)>,
}

struct Tangle {
    params: ProtocolParameters,
    blocks: HashMap<BlockId, (Block, u32, bool)>,
    tips: Vec<BlockId>,
    outputs: HashMap<OutputId, Booked>,
    /// Output ids in the order they were booked: the indexer answers in it.
    order: Vec<OutputId>,
    milestone: u32,
    refused: u64,
}

/// A running emulator; it stops when dropped.
pub struct Emulator {
    url: String,
    tangle: Arc<Mutex<Tangle>>,
    _runtime: tokio::runtime::Runtime,
}

impl Emulator {
    /// Starts a node on a free loopback port that asks for `min_pow_score`
    /// (0 or 1 for tests: a debug build needs minutes at Shimmer's 1500) and
    /// holds `genesis` tokens on each of `funded` (Bech32) at the start.
    pub fn start(min_pow_score: u32, funded: &[(&str, u64)]) -> anyhow::Result<Self> {
        Self::start_on(0, min_pow_score, funded)
    }

    /// [`start`](Self::start) on loopback port `port` (0: a free one).
    pub fn start_on(port: u16, min_pow_score: u32, funded: &[(&str, u64)]) -> anyhow::Result<Self> {
        let params = ProtocolParameters::new(
            2,
            "powerplug-emulator".into(),
            HRP.into(),
            min_pow_score,
            15,
            RentStructure::new(RENT.0, RENT.1, RENT.2),
            1_813_620_509_061_365,
        )?;
        let mut tangle = Tangle {
            params,
            blocks: HashMap::new(),
            tips: Vec::new(),
            outputs: HashMap::new(),
            order: Vec::new(),
            milestone: 1,
            refused: 0,
        };
        for (i, (bech32, amount)) in funded.iter().enumerate() {
            let (_, address) = Address::try_from_bech32(bech32)?;
            let output = iota_client::block::output::BasicOutputBuilder::new_with_amount(*amount)?
                .add_unlock_condition(
                    iota_client::block::output::unlock_condition::AddressUnlockCondition::new(
                        address,
                    )
                    .into(),
                )
                .finish_output(tangle.params.token_supply())?;
            let id = OutputId::new(TransactionId::new([0; 32]), i as u16)?;
            tangle.book(id, output, BlockId::new([0; 32]));
        }
        let tangle = Arc::new(Mutex::new(tangle));
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()?;
        let at = SocketAddr::from(([127, 0, 0, 1], port));
        let listener = runtime.block_on(tokio::net::TcpListener::bind(at))?;
        let url = format!("http://{}", listener.local_addr()?);
        let app = Router::new()
            .route("/health", get(|| async { StatusCode::OK }))
            .route("/api/core/v2/info", get(info))
            .route("/api/core/v2/tips", get(tips))
            .route("/api/core/v2/blocks", post(submit))
            .route("/api/core/v2/blocks/{id}", get(block))
            .route("/api/core/v2/blocks/{id}/metadata", get(block_metadata))
            .route("/api/core/v2/outputs/{id}", get(output))
            .route("/api/core/v2/outputs/{id}/metadata", get(output_metadata))
            .route("/api/indexer/v1/outputs/basic", get(basic_outputs))
            .route("/api/indexer/v1/outputs/{kind}", get(no_outputs))
            .with_state(tangle.clone());
        runtime.spawn(async move { axum::serve(listener, app).await });
        Ok(Emulator {
            url,
            tangle,
            _runtime: runtime,
        })
    }

    /// The node's address, `http://127.0.0.1:<port>`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Blocks taken so far.
    pub fn blocks(&self) -> usize {
        locked(&self.tangle).blocks.len()
    }

    /// Blocks refused so far (bad syntax, too little work, a conflict).
    pub fn refused(&self) -> u64 {
        locked(&self.tangle).refused
    }

    /// The unspent outputs held by `bech32`, and their sum.
    pub fn balance(&self, bech32: &str) -> anyhow::Result<u64> {
        let (_, address) = Address::try_from_bech32(bech32)?;
        let tangle = locked(&self.tangle);
        Ok(tangle
            .outputs
            .values()
            .filter(|b| b.spent.is_none() && owner(&b.output) == Some(address))
            .map(|b| b.output.amount())
            .sum())
    }
}

impl Tangle {
    fn book(&mut self, id: OutputId, output: Output, block: BlockId) {
        self.order.push(id);
        self.outputs.insert(
            id,
            Booked {
                output,
                block,
                booked: self.milestone,
                spent: None,
            },
        );
    }

    fn timestamp(&self) -> u32 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as u32)
            .unwrap_or(0)
    }

    /// Takes a block, or says why not.
    fn take(&mut self, block: Block) -> Result<BlockId, String> {
        let bytes = block.pack_to_vec();
        let score = PowScorer::new().score(&bytes);
        if score < self.params.min_pow_score() as f64 {
            return Err(format!(
                "proof of work score {score:.1} is below {}",
                self.params.min_pow_score()
            ));
        }
        let id = block.id();
        if self.blocks.contains_key(&id) {
            return Ok(id);
        }
        let mut has_transaction = false;
        if let Some(Payload::Transaction(tx)) = block.payload() {
            has_transaction = true;
            let tx_id = tx.id();
            let iota_client::block::payload::transaction::TransactionEssence::Regular(essence) =
                tx.essence();
            if essence.network_id() != self.params.network_id() {
                return Err("transaction: another network's".into());
            }
            let mut inputs = Vec::new();
            for input in essence.inputs() {
                let iota_client::block::input::Input::Utxo(utxo) = input else {
                    return Err("transaction: only UTXO inputs are taken".into());
                };
                let id = *utxo.output_id();
                match self.outputs.get(&id) {
                    Some(b) if b.spent.is_none() => inputs.push((id, b.output.clone())),
                    Some(_) => return Err(format!("input {id}: already spent")),
                    None => return Err(format!("input {id}: no such output")),
                }
            }
            let refs: Vec<(OutputId, &Output)> = inputs.iter().map(|(i, o)| (*i, o)).collect();
            let context = ValidationContext::new(
                &tx_id,
                essence,
                refs.iter().map(|(id, output)| (id, *output)),
                tx.unlocks(),
                self.timestamp(),
            );
            match semantic_validation(context, &refs, tx.unlocks()) {
                Ok(ConflictReason::None) => {}
                Ok(conflict) => return Err(format!("transaction: conflict {conflict:?}")),
                Err(e) => return Err(format!("transaction: {e}")),
            }
            self.milestone += 1;
            let milestone = self.milestone;
            for (input, _) in &inputs {
                if let Some(b) = self.outputs.get_mut(input) {
                    b.spent = Some((milestone, tx_id));
                }
            }
            for (i, output) in essence.outputs().iter().enumerate() {
                let out_id = OutputId::new(tx_id, i as u16).map_err(|e| e.to_string())?;
                self.book(out_id, output.clone(), id);
            }
        } else {
            self.milestone += 1;
        }
        self.blocks
            .insert(id, (block, self.milestone, has_transaction));
        self.tips.push(id);
        if self.tips.len() > 4 {
            self.tips.remove(0);
        }
        Ok(id)
    }
}

type Shared = State<Arc<Mutex<Tangle>>>;

fn refuse(status: StatusCode, message: impl Into<String>) -> Response {
    (
        status,
        Json(serde_json::json!({"error": {"code": status.as_u16().to_string(), "message": message.into()}})),
    )
        .into_response()
}

/// The emulator's state; a handler that panicked leaves it as it was at the
/// panic, which a test tool may go on with.
fn locked(state: &Mutex<Tangle>) -> std::sync::MutexGuard<'_, Tangle> {
    state.lock().unwrap_or_else(|e| e.into_inner())
}

async fn info(State(state): Shared) -> Response {
    let tangle = locked(&state);
    let now = tangle.timestamp();
    let milestone = tangle.milestone;
    Json(InfoResponse {
        name: "powerplug-emulator".into(),
        version: "2.0.0".into(),
        status: StatusResponse {
            is_healthy: true,
            latest_milestone: LatestMilestoneResponse {
                index: milestone,
                timestamp: Some(now),
                milestone_id: None,
            },
            confirmed_milestone: ConfirmedMilestoneResponse {
                index: milestone,
                timestamp: Some(now),
                milestone_id: None,
            },
            pruning_index: 0,
        },
        supported_protocol_versions: vec![2],
        protocol: ProtocolParametersDto {
            protocol_version: tangle.params.protocol_version(),
            network_name: tangle.params.network_name().into(),
            bech32_hrp: tangle.params.bech32_hrp().into(),
            min_pow_score: tangle.params.min_pow_score(),
            below_max_depth: tangle.params.below_max_depth(),
            rent_structure: RentStructureDto {
                v_byte_cost: RENT.0,
                v_byte_factor_key: RENT.1,
                v_byte_factor_data: RENT.2,
            },
            token_supply: tangle.params.token_supply().to_string(),
        },
        pending_protocol_parameters: Vec::new(),
        base_token: BaseTokenResponse {
            name: "Shimmer".into(),
            ticker_symbol: "SMR".into(),
            unit: "SMR".into(),
            subunit: Some("glow".into()),
            decimals: 6,
            use_metric_prefix: false,
        },
        metrics: MetricsResponse {
            blocks_per_second: 0.0,
            referenced_blocks_per_second: 0.0,
            referenced_rate: 0.0,
        },
        features: Vec::new(),
    })
    .into_response()
}

async fn tips(State(state): Shared) -> Response {
    let tangle = locked(&state);
    let mut tips: Vec<String> = tangle.tips.iter().map(|t| t.to_string()).collect();
    if tips.is_empty() {
        tips.push(BlockId::new([0; 32]).to_string());
    }
    Json(TipsResponse { tips }).into_response()
}

async fn submit(State(state): Shared, headers: HeaderMap, body: Bytes) -> Response {
    let json = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let mut tangle = locked(&state);
    let parsed = if json {
        serde_json::from_slice::<BlockDto>(&body)
            .map_err(|e| e.to_string())
            .and_then(|dto| Block::try_from_dto(&dto, &tangle.params).map_err(|e| e.to_string()))
    } else {
        Block::unpack_strict(&body[..], &tangle.params).map_err(|e| format!("{e:?}"))
    };
    let taken = parsed.and_then(|block| tangle.take(block));
    match taken {
        Ok(id) => (
            StatusCode::CREATED,
            Json(SubmitBlockResponse {
                block_id: id.to_string(),
            }),
        )
            .into_response(),
        Err(why) => {
            tangle.refused += 1;
            refuse(StatusCode::BAD_REQUEST, why)
        }
    }
}

async fn block(State(state): Shared, Path(id): Path<String>) -> Response {
    let tangle = locked(&state);
    match BlockId::from_str(&id)
        .ok()
        .and_then(|id| tangle.blocks.get(&id))
    {
        Some((block, _, _)) => Json(BlockDto::from(block)).into_response(),
        None => refuse(StatusCode::NOT_FOUND, format!("no block {id}")),
    }
}

async fn block_metadata(State(state): Shared, Path(id): Path<String>) -> Response {
    let tangle = locked(&state);
    let Some((block, milestone, has_transaction)) = BlockId::from_str(&id)
        .ok()
        .and_then(|id| tangle.blocks.get(&id))
    else {
        return refuse(StatusCode::NOT_FOUND, format!("no block {id}"));
    };
    Json(BlockMetadataResponse {
        block_id: id,
        parents: block.parents().iter().map(|p| p.to_string()).collect(),
        is_solid: true,
        referenced_by_milestone_index: Some(*milestone),
        milestone_index: None,
        ledger_inclusion_state: Some(if *has_transaction {
            LedgerInclusionStateDto::Included
        } else {
            LedgerInclusionStateDto::NoTransaction
        }),
        conflict_reason: None,
        white_flag_index: None,
        should_promote: None,
        should_reattach: None,
    })
    .into_response()
}

fn metadata(tangle: &Tangle, id: &OutputId, booked: &Booked) -> OutputMetadataDto {
    let now = tangle.timestamp();
    OutputMetadataDto {
        block_id: booked.block.to_string(),
        transaction_id: id.transaction_id().to_string(),
        output_index: id.index(),
        is_spent: booked.spent.is_some(),
        milestone_index_spent: booked.spent.map(|(m, _)| m),
        milestone_timestamp_spent: booked.spent.map(|_| now),
        transaction_id_spent: booked.spent.map(|(_, t)| t.to_string()),
        milestone_index_booked: booked.booked,
        milestone_timestamp_booked: now,
        ledger_index: tangle.milestone,
    }
}

async fn output(State(state): Shared, Path(id): Path<String>) -> Response {
    let tangle = locked(&state);
    let Some((id, booked)) = OutputId::from_str(&id)
        .ok()
        .and_then(|id| tangle.outputs.get(&id).map(|b| (id, b)))
    else {
        return refuse(StatusCode::NOT_FOUND, format!("no output {id}"));
    };
    Json(OutputWithMetadataResponse {
        metadata: metadata(&tangle, &id, booked),
        output: OutputDto::from(&booked.output),
    })
    .into_response()
}

async fn output_metadata(State(state): Shared, Path(id): Path<String>) -> Response {
    let tangle = locked(&state);
    match OutputId::from_str(&id)
        .ok()
        .and_then(|id| tangle.outputs.get(&id).map(|b| (id, b)))
    {
        Some((id, booked)) => Json(metadata(&tangle, &id, booked)).into_response(),
        None => refuse(StatusCode::NOT_FOUND, format!("no output {id}")),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BasicQuery {
    address: Option<String>,
    tag: Option<String>,
    has_storage_deposit_return: Option<bool>,
    has_timelock: Option<bool>,
    has_expiration: Option<bool>,
}

fn owner(output: &Output) -> Option<Address> {
    output
        .unlock_conditions()
        .and_then(|u| u.address())
        .map(|a| *a.address())
}

async fn basic_outputs(State(state): Shared, Query(q): Query<BasicQuery>) -> Response {
    let tangle = locked(&state);
    let address = match q.address.as_deref().map(Address::try_from_bech32) {
        None => None,
        Some(Ok((_, a))) => Some(a),
        Some(Err(e)) => return refuse(StatusCode::BAD_REQUEST, format!("address: {e}")),
    };
    let tag = match q.tag.as_deref().map(prefix_hex_bytes) {
        None => None,
        Some(Ok(t)) => Some(t),
        Some(Err(e)) => return refuse(StatusCode::BAD_REQUEST, format!("tag: {e}")),
    };
    // Only plain outputs are made here: a query for one with a return,
    // timelock or expiration finds none.
    if [
        q.has_storage_deposit_return,
        q.has_timelock,
        q.has_expiration,
    ]
    .contains(&Some(true))
    {
        return Json(OutputIdsResponse {
            ledger_index: tangle.milestone,
            cursor: None,
            items: Vec::new(),
        })
        .into_response();
    }
    let items = tangle
        .order
        .iter()
        .filter_map(|id| tangle.outputs.get(id).map(|b| (id, b)))
        .filter(|(_, b)| b.spent.is_none() && matches!(b.output, Output::Basic(_)))
        .filter(|(_, b)| address.is_none_or(|a| owner(&b.output) == Some(a)))
        .filter(|(_, b)| {
            tag.as_ref().is_none_or(|t| {
                b.output
                    .features()
                    .and_then(|f| f.tag())
                    .is_some_and(|f| f.tag() == &t[..])
            })
        })
        .map(|(id, _)| id.to_string())
        .collect();
    Json(OutputIdsResponse {
        ledger_index: tangle.milestone,
        cursor: None,
        items,
    })
    .into_response()
}

async fn no_outputs(State(state): Shared) -> Response {
    let ledger_index = locked(&state).milestone;
    Json(OutputIdsResponse {
        ledger_index,
        cursor: None,
        items: Vec::new(),
    })
    .into_response()
}

fn prefix_hex_bytes(s: &str) -> anyhow::Result<Vec<u8>> {
    let hex = s
        .strip_prefix("0x")
        .ok_or_else(|| anyhow::anyhow!("expected 0x and hex"))?;
    Ok(hex::decode(hex)?)
}
