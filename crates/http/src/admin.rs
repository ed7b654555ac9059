//! The operator's routes for the store itself: `GET /backup`.
//!
//! A backup is one read transaction's copy of the whole store, written to a
//! 0600 file in the temporary directory, then streamed back. The file is
//! unlinked as soon as it is open, so nothing is left behind whether the
//! download finishes, the client goes away or the process dies.

use std::collections::BTreeSet;
use std::io::Read;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http_body::Frame;
use tokio::sync::mpsc;

use super::{ApiError, ApiResult, Authorized, BACKUP, HasHub, blocking};

#[derive(utoipa::OpenApi)]
#[openapi(paths(backup))]
pub struct Api;

pub fn routes<R: HasHub>() -> Router<Arc<R>> {
    Router::new().route("/backup", get(backup::<R>))
}

/// The stores (by address) with a backup under way: one at a time each, so
/// a second request cannot double the disk and the time it takes.
static UNDER_WAY: Mutex<BTreeSet<usize>> = Mutex::new(BTreeSet::new());

/// A backup under way, from its start until its last byte is sent.
struct UnderWay(usize);

impl UnderWay {
    fn start(db: &powerplug_storage::Db) -> Option<Self> {
        let id = Arc::as_ptr(db).cast::<()>() as usize;
        // A set of numbers cannot be left half-changed by a panic.
        let mut set = UNDER_WAY.lock().unwrap_or_else(PoisonError::into_inner);
        // Not `then_some(Self(id))`: a guard made and dropped here would
        // unmark the backup under way (and deadlock on this lock).
        if set.insert(id) { Some(Self(id)) } else { None }
    }
}

impl Drop for UnderWay {
    fn drop(&mut self) {
        let mut set = UNDER_WAY.lock().unwrap_or_else(PoisonError::into_inner);
        set.remove(&self.0);
    }
}

/// How much of the file one frame carries.
const CHUNK: usize = 256 << 10;

#[utoipa::path(
    get,
    path = "/backup",
    tag = "operations",
    description = "A copy of the whole store, streamed (secrets and every balance with it). Operator scope: `backup`.",
    responses((status = 200, description = "The backup", body = Vec<u8>, content_type = "application/octet-stream"), crate::openapi::Refused),
    security(("operator" = []), ("session" = [])),
)]
async fn backup<R: HasHub>(
    State(role): State<Arc<R>>,
    _: Authorized<BACKUP>,
) -> ApiResult<Response> {
    let (db, objects) = (role.hub().db.clone(), role.hub().objects.clone());
    let under_way = UnderWay::start(&db).ok_or_else(|| {
        ApiError::new(
            StatusCode::CONFLICT,
            "backup",
            "a backup of this host is under way; try again when it is done",
        )
    })?;
    let (file, size) = blocking(move || {
        let random = powerplug_storage::private::random32()?;
        let path = std::env::temp_dir().join(format!(
            "powerplug-backup-{}.redb",
            hex::encode(&random[..8])
        ));
        let size = powerplug_roles::backup::write(&*db, &objects, &path)?;
        let file = std::fs::File::open(&path);
        // The open file streams on without its name.
        let _ = std::fs::remove_file(&path);
        let file = file.map_err(|e| anyhow::anyhow!("reading the backup: {e}"))?;
        Ok((file, size))
    })
    .await?;

    // A thread reads the file into a small queue the response drains: the
    // async workers never wait for the disk, and a slow client slows the
    // reading instead of filling memory.
    let (tx, rx) = mpsc::channel(4);
    tokio::task::spawn_blocking(move || send(file, &tx, under_way));
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_owned()),
            (header::CONTENT_LENGTH, size.to_string()),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"powerplug.redb\"".to_owned(),
            ),
        ],
        axum::body::Body::new(Chunks(rx)),
    )
        .into_response())
}

/// Sends the file in chunks until its end, a read error (the response is
/// then cut short, which the client sees against `Content-Length`) or a
/// client that went away.
fn send(mut file: std::fs::File, tx: &mpsc::Sender<std::io::Result<Bytes>>, _: UnderWay) {
    loop {
        let mut chunk = vec![0; CHUNK];
        let item = match file.read(&mut chunk) {
            Ok(0) => return,
            Ok(n) => {
                chunk.truncate(n);
                Ok(Bytes::from(chunk))
            }
            Err(e) => Err(e),
        };
        let failed = item.is_err();
        if tx.blocking_send(item).is_err() || failed {
            return;
        }
    }
}

/// The response body: the chunks [`send`] reads.
struct Chunks(mpsc::Receiver<std::io::Result<Bytes>>);

impl http_body::Body for Chunks {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        self.0
            .poll_recv(cx)
            .map(|chunk| chunk.map(|c| c.map(Frame::data)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use powerplug_domain::EntityKind;
    use powerplug_roles::role::Hub;
    use powerplug_roles::role::config::{OperatorToken, Operators, Scope};
    use powerplug_storage::{RedbStore, Store};
    use tower::ServiceExt;

    struct Host(Hub);

    impl HasHub for Host {
        fn hub(&self) -> &Hub {
            &self.0
        }

        fn status(&self) -> anyhow::Result<serde_json::Value> {
            Ok(serde_json::json!({}))
        }
    }

    fn get(token: &str) -> Request<Body> {
        Request::get("/backup")
            .header("authorization", format!("Bearer {token}"))
            .body(Body::empty())
            .unwrap()
    }

    async fn json(response: Response) -> serde_json::Value {
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn one_backup_at_a_time_streams_the_whole_store() {
        let db: powerplug_storage::Db = Arc::new(RedbStore::in_memory().unwrap());
        // More than the queue and a chunk hold, so the first stream is
        // still under way while nobody reads it.
        let tx = db.write().unwrap();
        for i in 0..4_000u32 {
            tx.put("bulk", &i.to_be_bytes(), &[i as u8; 1_000]).unwrap();
        }
        tx.commit().unwrap();
        let mut hub = Hub::new(
            "grid",
            db.clone(),
            powerplug_storage::Objects::in_store(&db),
            &[EntityKind::Consumer],
            Default::default(),
            None,
        )
        .unwrap();
        let reader = OperatorToken {
            token: "reader".into(),
            scopes: vec![Scope::Read],
        };
        hub.operators = Operators::new(Some("all"), &[reader]);
        let app = routes::<Host>().with_state(Arc::new(Host(hub)));

        let first = app.clone().oneshot(get("all")).await.unwrap();
        assert_eq!(first.status(), StatusCode::OK);
        assert_eq!(
            first.headers()[header::CONTENT_TYPE],
            "application/octet-stream"
        );
        let length: usize = first.headers()[header::CONTENT_LENGTH]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();

        let second = app.clone().oneshot(get("all")).await.unwrap();
        assert_eq!(second.status(), StatusCode::CONFLICT);
        assert_eq!(json(second).await["field"], "backup");

        let bytes = axum::body::to_bytes(first.into_body(), usize::MAX)
            .await
            .unwrap();
        assert_eq!(bytes.len(), length);
        let dir = tempfile::tempdir().unwrap();
        let copy = dir.path().join("copy.redb");
        std::fs::write(&copy, &bytes).unwrap();
        powerplug_storage::check_store_file(&copy).unwrap();
        let copy = RedbStore::open_existing(&copy).unwrap();
        assert_eq!(
            copy.read()
                .unwrap()
                .get("bulk", &7u32.to_be_bytes())
                .unwrap(),
            Some(vec![7; 1_000])
        );

        // Done: the next one may start; a token without the scope may not.
        let again = app.clone().oneshot(get("all")).await.unwrap();
        assert_eq!(again.status(), StatusCode::OK);
        drop(again);
        let refused = app.clone().oneshot(get("reader")).await.unwrap();
        assert_eq!(refused.status(), StatusCode::FORBIDDEN);
        assert!(
            json(refused).await["error"]
                .as_str()
                .is_some_and(|e| e.contains("back up the store"))
        );
        let wrong = app.oneshot(get("wrong")).await.unwrap();
        assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    }
}
