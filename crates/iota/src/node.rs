//! One Stardust node, reached through `iota-client`. The client is async; the
//! channel layer and the anchoring thread are not, so a node owns a small
//! runtime and runs each call to the end on it.

use std::future::Future;
use std::time::Duration;

use iota_client::block::BlockId;

/// Where the Tangle is and how to wait for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeConfig {
    /// The node's REST API, e.g. `https://api.testnet.shimmer.network`.
    pub url: String,
    /// BIP-44 coin type of the wallet: 4219 Shimmer (`new`'s), 4218 IOTA.
    pub coin_type: u32,
    /// Seconds between looks at whether a block was confirmed.
    pub confirm_every_secs: u64,
    /// Looks before a block counts as lost (it is then sent again).
    pub confirm_attempts: u64,
}

impl NodeConfig {
    pub fn new(url: &str) -> Self {
        NodeConfig {
            url: url.to_owned(),
            coin_type: iota_client::constants::SHIMMER_COIN_TYPE,
            confirm_every_secs: 5,
            confirm_attempts: 40,
        }
    }
}

pub struct Node {
    pub(crate) config: NodeConfig,
    pub(crate) client: iota_client::Client,
    runtime: tokio::runtime::Runtime,
}

impl Node {
    /// A client of the node at `config.url`, local proof of work. Checks that
    /// the node answers its info.
    pub fn connect(config: NodeConfig) -> anyhow::Result<Self> {
        let url = config.url.clone();
        // The client's builder panics when its first sync fails; that is an
        // unreachable node, an error here, not a crash.
        let client = std::panic::catch_unwind(move || -> anyhow::Result<_> {
            Ok(iota_client::Client::builder()
                .with_node(&url)?
                .with_ignore_node_health()
                .with_local_pow(true)
                .with_fallback_to_local_pow(true)
                .with_api_timeout(Duration::from_secs(30))
                .finish()?)
        })
        .map_err(|_| anyhow::anyhow!("node {}: could not be reached", config.url))??;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let node = Node {
            config,
            client,
            runtime,
        };
        let info = node.run(async { node.client.get_info().await })?;
        tracing::info!(
            node = %node.config.url,
            network = %info.node_info.protocol.network_name,
            "connected to a Stardust node"
        );
        Ok(node)
    }

    /// Runs `future` to its end. From inside another runtime (an async
    /// caller) it runs on a thread of its own, since a runtime cannot be
    /// entered from another. A panic in the client (on a node's answer it did
    /// not expect) is an error of this call, not the end of the caller's
    /// thread.
    pub(crate) fn run<T: Send>(
        &self,
        future: impl Future<Output = Result<T, iota_client::Error>> + Send,
    ) -> anyhow::Result<T> {
        let url = &self.config.url;
        let future = async move { future.await.map_err(|e| anyhow::anyhow!("node {url}: {e}")) };
        if tokio::runtime::Handle::try_current().is_ok() {
            std::thread::scope(|s| {
                s.spawn(|| self.runtime.block_on(future))
                    .join()
                    .map_err(|_| anyhow::anyhow!("node {url}: the call panicked"))
            })?
        } else {
            let run = std::panic::AssertUnwindSafe(|| self.runtime.block_on(future));
            std::panic::catch_unwind(run)
                .map_err(|_| anyhow::anyhow!("node {url}: the call panicked"))?
        }
    }

    /// Waits until the block is confirmed, sending it again (promoting or
    /// reattaching) as the client does.
    pub(crate) async fn confirmed(&self, block: BlockId) -> Result<(), iota_client::Error> {
        self.client
            .retry_until_included(
                &block,
                Some(self.config.confirm_every_secs),
                Some(self.config.confirm_attempts),
            )
            .await
            .map(|_| ())
    }

    /// The network's Bech32 prefix (`smr`, `rms`, `iota`, `atoi`).
    pub fn bech32_hrp(&self) -> anyhow::Result<String> {
        self.run(self.client.get_bech32_hrp())
    }
}
