//! Object storage: bodies a host keeps by name beside its ordered tables —
//! `/storage` documents and strategy components. Local files by default
//! (beside a redb store), the role's own store (beside a shared PostgreSQL
//! store, so that a standby reads what the leader wrote), or an S3 bucket
//! for hosts that share one, through the `object_store` crate.
//!
//! Objects are written once under a fresh or content-derived name and never
//! changed, so whoever indexes them (in the store, in the same transaction as
//! the rest of its change) can write the object first and commit the index
//! after: a crash in between leaves an unreferenced object, never an index
//! entry without its object.
//!
//! Every call blocks: call from blocking threads (as the store is called),
//! never from an async task.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, PutPayload};
use serde::{Deserialize, Serialize};

use crate::{Db, StorageConfig};

/// `objects = { type = "files", path = … }` (`path` defaults to
/// `<data_dir>/objects`), `{ type = "store" }` or `{ type = "s3", bucket = …,
/// endpoint = …, … }`. Unset: files beside a redb store, the store itself
/// beside a PostgreSQL one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum ObjectsConfig {
    /// A directory on this host's disk.
    Files {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        path: Option<PathBuf>,
    },
    /// A table of the role's own store (`storage`).
    Store,
    /// A bucket of S3 or of any server that speaks its protocol. Keys left
    /// out come from the `AWS_*` environment variables.
    S3 {
        bucket: String,
        /// `http://host:port` for a server other than AWS.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        endpoint: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        region: Option<String>,
        /// Where in the bucket this host's objects go (under its id).
        #[serde(default, skip_serializing_if = "String::is_empty")]
        prefix: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        access_key_id: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        secret_access_key: Option<String>,
    },
}

impl ObjectsConfig {
    /// What `objects` means when it is not set: files need no service, but
    /// a standby on another machine could not read them.
    pub fn default_for(storage: &StorageConfig) -> Self {
        match storage {
            StorageConfig::Redb { .. } => Self::Files { path: None },
            StorageConfig::Postgres { .. } => Self::Store,
        }
    }
}

/// The table of [`ObjectsConfig::Store`].
const TABLE: &str = "objects";

/// Objects moved or copied per transaction.
const BATCH: usize = 256;

/// How many requests of a [`Objects::get_many`] are under way at once.
const CONCURRENT: usize = 32;

/// Where a host's objects live; cheap to clone.
#[derive(Clone)]
pub struct Objects(Arc<Backend>);

enum Backend {
    Remote {
        store: Arc<dyn ObjectStore>,
        /// Files are made ours alone and synced before a put returns
        /// (`object_store` renames them into place with the umask's mode
        /// and does not sync them): the store, with its root.
        files: Option<(Arc<LocalFileSystem>, PathBuf)>,
        /// The host's part: objects of hosts sharing a bucket stay apart.
        scope: Vec<String>,
        /// What `/status` says.
        place: String,
    },
    Store(Db),
}

/// The runtime `object_store`'s futures run on, one per process and never
/// dropped (dropping a runtime inside an async task panics).
fn runtime() -> anyhow::Result<&'static tokio::runtime::Runtime> {
    // Built once, however many roles open their objects at once.
    static RUNTIME: OnceLock<Result<tokio::runtime::Runtime, String>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .thread_name("powerplug-objects")
                .enable_all()
                .build()
                .map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| anyhow::anyhow!("objects: no runtime: {e}"))
}

impl Objects {
    /// Opens the objects `config` names for the host `scope` (its id), and
    /// checks that they can be reached: a bad bucket or endpoint stops the
    /// role at its start, naming the key.
    pub fn open(
        config: &ObjectsConfig,
        data_dir: &Path,
        db: &Db,
        scope: &str,
    ) -> anyhow::Result<Self> {
        let scope = vec![scope.to_owned()];
        let backend = match config {
            ObjectsConfig::Store => Backend::Store(db.clone()),
            ObjectsConfig::Files { path } => {
                let path = path.clone().unwrap_or_else(|| data_dir.join("objects"));
                let path = crate::private::create_dir(&path)
                    .and_then(|()| std::fs::canonicalize(&path))
                    .map_err(|e| anyhow::anyhow!("objects.path: {}: {e}", path.display()))?;
                let files = Arc::new(
                    LocalFileSystem::new_with_prefix(&path)
                        .map_err(|e| anyhow::anyhow!("objects.path: {}: {e}", path.display()))?,
                );
                Backend::Remote {
                    store: files.clone(),
                    files: Some((files, path.clone())),
                    scope,
                    place: format!("files {}", path.display()),
                }
            }
            ObjectsConfig::S3 {
                bucket,
                endpoint,
                region,
                prefix,
                access_key_id,
                secret_access_key,
            } => {
                let store = s3(bucket, endpoint, region, access_key_id, secret_access_key)?;
                let mut parts: Vec<String> = prefix
                    .split('/')
                    .filter(|p| !p.is_empty())
                    .map(str::to_owned)
                    .collect();
                parts.extend(scope);
                let place = match endpoint {
                    Some(endpoint) => format!("s3 {endpoint}/{bucket}/{}", parts.join("/")),
                    None => format!("s3 {bucket}/{}", parts.join("/")),
                };
                Backend::Remote {
                    store: Arc::new(store),
                    files: None,
                    scope: parts,
                    place,
                }
            }
        };
        let objects = Self(Arc::new(backend));
        // Reached, and allowed to write and read back (a read alone cannot
        // tell a missing bucket from a missing object: both are a 404).
        let probe = || -> anyhow::Result<()> {
            if let Backend::Remote { store, scope, .. } = &*objects.0 {
                // A bucket that is not there (a put may create it elsewhere).
                let scope = Self::path(scope, "");
                runtime()?.block_on(store.list_with_delimiter(Some(&scope)))?;
            }
            objects.put(".probe", b"powerplug")?;
            anyhow::ensure!(
                objects.get(".probe")?.as_deref() == Some(b"powerplug".as_slice()),
                "what was written does not read back"
            );
            Ok(())
        };
        probe().map_err(|e| {
            let field = match config {
                ObjectsConfig::S3 { .. } => "objects.bucket",
                ObjectsConfig::Files { .. } => "objects.path",
                ObjectsConfig::Store => "objects",
            };
            anyhow::anyhow!(
                "{field}: {} cannot be written and read: {e:#}",
                objects.place()
            )
        })?;
        Ok(objects)
    }

    /// Objects kept in `db` itself (tests, tools).
    pub fn in_store(db: &Db) -> Self {
        Self(Arc::new(Backend::Store(db.clone())))
    }

    /// Whether these are kept in the store itself.
    pub fn is_store(&self) -> bool {
        matches!(&*self.0, Backend::Store(_))
    }

    /// Moves objects kept in `db`'s own table into these (those of a
    /// restored backup, or of a host whose `objects` were `store`); how many.
    pub fn adopt(&self, db: &dyn crate::Store) -> anyhow::Result<u64> {
        if self.is_store() {
            return Ok(0);
        }
        let mut moved = 0;
        loop {
            let batch = db
                .read()?
                .range(TABLE, &[], None, crate::Order::Ascending, BATCH)?;
            if batch.is_empty() {
                return Ok(moved);
            }
            for (name, bytes) in &batch {
                self.put(&String::from_utf8_lossy(name), bytes)?;
            }
            let tx = db.write()?;
            for (name, _) in &batch {
                tx.delete(TABLE, name)?;
            }
            tx.commit()?;
            moved += batch.len() as u64;
        }
    }

    /// Copies the objects `names` into `copy`'s own table (a backup that
    /// holds what its store names); those not found are left out. How many.
    pub fn copy_into(&self, copy: &dyn crate::Store, names: &[String]) -> anyhow::Result<u64> {
        let mut copied = 0;
        for chunk in names.chunks(BATCH) {
            let refs: Vec<&str> = chunk.iter().map(String::as_str).collect();
            let found = self.get_many(&refs)?;
            let tx = copy.write()?;
            for (name, bytes) in chunk.iter().zip(found) {
                if let Some(bytes) = bytes {
                    tx.put(TABLE, name.as_bytes(), &bytes)?;
                    copied += 1;
                }
            }
            tx.commit()?;
        }
        Ok(copied)
    }

    /// Where they are, for `/status` (no credentials).
    pub fn place(&self) -> String {
        match &*self.0 {
            Backend::Remote { place, .. } => place.clone(),
            Backend::Store(_) => "store".into(),
        }
    }

    fn path(scope: &[String], name: &str) -> ObjectPath {
        ObjectPath::from_iter(scope.iter().map(String::as_str).chain(name.split('/')))
    }

    /// Stores `bytes` under `name`; they are durable when it returns.
    pub fn put(&self, name: &str, bytes: &[u8]) -> anyhow::Result<()> {
        match &*self.0 {
            Backend::Store(db) => {
                let tx = db.write()?;
                tx.put(TABLE, name.as_bytes(), bytes)?;
                tx.commit()
            }
            Backend::Remote {
                store,
                files,
                scope,
                ..
            } => {
                let path = Self::path(scope, name);
                let payload = PutPayload::from(bytes.to_vec());
                runtime()?.block_on(store.put(&path, payload))?;
                if let Some((files, root)) = files {
                    let file = files.path_to_filesystem(&path)?;
                    crate::private::restrict_file(&file)?;
                    std::fs::File::open(&file)?.sync_all()?;
                    let mut dir = file.parent();
                    while let Some(d) = dir.filter(|d| d.starts_with(root)) {
                        crate::private::restrict_dir(d)?;
                        dir = d.parent();
                    }
                    if let Some(dir) = file.parent() {
                        std::fs::File::open(dir)?.sync_all()?;
                    }
                }
                Ok(())
            }
        }
    }

    /// The bytes stored under `name`, if any.
    pub fn get(&self, name: &str) -> anyhow::Result<Option<Vec<u8>>> {
        Ok(self.get_many(&[name])?.pop().flatten())
    }

    /// [`get`](Self::get) for each of `names`, in their order, some at once.
    pub fn get_many(&self, names: &[&str]) -> anyhow::Result<Vec<Option<Vec<u8>>>> {
        match &*self.0 {
            Backend::Store(db) => {
                let tx = db.read()?;
                let keys: Vec<Vec<u8>> = names.iter().map(|n| n.as_bytes().to_vec()).collect();
                tx.prefetch(TABLE, &keys)?;
                keys.iter().map(|k| tx.get(TABLE, k)).collect()
            }
            Backend::Remote { store, scope, .. } => {
                let rt = runtime()?;
                let mut found = Vec::with_capacity(names.len());
                for chunk in names.chunks(CONCURRENT) {
                    let tasks: Vec<_> = chunk
                        .iter()
                        .map(|name| {
                            let (store, path) = (store.clone(), Self::path(scope, name));
                            rt.spawn(async move {
                                match store.get(&path).await {
                                    Ok(got) => got.bytes().await.map(|b| Some(b.to_vec())),
                                    Err(object_store::Error::NotFound { .. }) => Ok(None),
                                    Err(e) => Err(e),
                                }
                            })
                        })
                        .collect();
                    for task in tasks {
                        found.push(rt.block_on(task)??);
                    }
                }
                Ok(found)
            }
        }
    }

    /// Deletes `name` (nothing there is no error).
    pub fn delete(&self, name: &str) -> anyhow::Result<()> {
        match &*self.0 {
            Backend::Store(db) => {
                let tx = db.write()?;
                tx.delete(TABLE, name.as_bytes())?;
                tx.commit()
            }
            Backend::Remote { store, scope, .. } => {
                match runtime()?.block_on(store.delete(&Self::path(scope, name))) {
                    Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                    Err(e) => Err(e.into()),
                }
            }
        }
    }
}

/// An S3 client that gives up within seconds, not the crate's minutes: a
/// request waits in a blocking thread the HTTP API may need.
fn s3(
    bucket: &str,
    endpoint: &Option<String>,
    region: &Option<String>,
    access_key_id: &Option<String>,
    secret_access_key: &Option<String>,
) -> anyhow::Result<object_store::aws::AmazonS3> {
    let mut builder = object_store::aws::AmazonS3Builder::from_env()
        .with_bucket_name(bucket)
        .with_client_options(
            object_store::ClientOptions::new()
                .with_connect_timeout(Duration::from_secs(5))
                .with_timeout(Duration::from_secs(30)),
        )
        .with_retry(object_store::RetryConfig {
            max_retries: 3,
            retry_timeout: Duration::from_secs(15),
            ..Default::default()
        });
    if let Some(endpoint) = endpoint {
        anyhow::ensure!(
            endpoint.starts_with("http://") || endpoint.starts_with("https://"),
            "objects.endpoint: `{endpoint}` is not an http:// or https:// URL"
        );
        builder = builder
            .with_endpoint(endpoint)
            .with_allow_http(endpoint.starts_with("http://"))
            .with_virtual_hosted_style_request(false);
    }
    if let Some(region) = region {
        builder = builder.with_region(region);
    }
    if let Some(id) = access_key_id {
        builder = builder.with_access_key_id(id);
    }
    if let Some(secret) = secret_access_key {
        builder = builder.with_secret_access_key(secret);
    }
    builder.build().map_err(|e| anyhow::anyhow!("objects: {e}"))
}
