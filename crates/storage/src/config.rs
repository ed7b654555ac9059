//! Which store a role keeps its data in (`storage` in its configuration),
//! and the one place that opens it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::{Db, PgStore, RedbStore};

/// `storage = { type = "redb", path = … }` (the default; `path` defaults to
/// `<data_dir>/powerplug.redb`) or `{ type = "postgres", url = …, namespace = … }`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum StorageConfig {
    /// The embedded store: one file on this host's disk.
    Redb {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        path: Option<PathBuf>,
    },
    /// A namespace of a PostgreSQL database, which several hosts can share.
    Postgres {
        /// `postgres://user@host:port/database` or `host=… user=… dbname=…`.
        url: String,
        /// The role's own part of the database (a schema `pp_<namespace>`).
        namespace: String,
    },
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self::Redb { path: None }
    }
}

fn redb_path(path: &Option<PathBuf>, data_dir: &Path) -> PathBuf {
    path.clone()
        .unwrap_or_else(|| data_dir.join("powerplug.redb"))
}

pub(crate) fn postgres_config(url: &str) -> anyhow::Result<postgres::Config> {
    url.parse()
        .map_err(|e| anyhow::anyhow!("storage.url: not a PostgreSQL URL: {e}"))
}

/// Opens (creating if needed) the store `config` names: every role, meter
/// host and tool opens its store here. A redb file is created 0600 (it holds
/// the host's secret). Blocking: call it off async threads (a PostgreSQL
/// connection runs a runtime of its own).
pub fn open(config: &StorageConfig, data_dir: &Path) -> anyhow::Result<Db> {
    Ok(match config {
        StorageConfig::Redb { path } => {
            let path = redb_path(path, data_dir);
            crate::private::touch(&path)
                .and_then(|()| crate::private::restrict_file(&path))
                .map_err(|e| anyhow::anyhow!("storage.path: {}: {e}", path.display()))?;
            Arc::new(RedbStore::open(&path).map_err(|e| anyhow::anyhow!("storage.path: {e:#}"))?)
        }
        StorageConfig::Postgres { url, namespace } => Arc::new(PgStore::connect(url, namespace)?),
    })
}
