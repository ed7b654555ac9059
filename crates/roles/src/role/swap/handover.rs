//! Which books a version gets when it becomes active. A strategy's state and
//! cells mean what its author made them mean, so the host hands the live books
//! only to a version that declares the same books format (the component's
//! `powerplug:books` section; see [`powerplug_strategy::BOOKS_SECTION`]). Any
//! other version starts on the books it had when it was last active, carried
//! forward through the news of every tick since (a rollback), or else on
//! empty books. The books a version leaves are kept for that rollback.

use serde::Serialize;

use super::Strategy;
use crate::books::{self, Books};
use crate::tick_log;
use powerplug_storage::{self as storage, ReadTx, Store, WriteTx};
use powerplug_strategy::ComponentInfo;

/// What the new version's books are, as the answer to an activation says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Handover {
    /// `live`: the live books, same format; `restored`: the books it had when
    /// last active, carried forward; `empty`: no state and no cells.
    pub books: &'static str,
    /// The format of the live version's books, and of the new version's
    /// (`None`: it declares none, so only the same component shares them).
    pub live_format: Option<String>,
    pub format: Option<String>,
    pub why: String,
    /// For `restored`: the tick after which they were put away, and how many
    /// recorded ticks they were carried through.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restored_after_tick: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub carried_ticks: Option<u64>,
}

impl Handover {
    pub fn is_live(&self) -> bool {
        self.books == "live"
    }
}

/// Whether `b` understands `a`'s books: both declare the same format, or they
/// are the same component.
pub fn same_format(a: &ComponentInfo, b: &ComponentInfo) -> bool {
    a.sha256 == b.sha256 || (a.books.is_some() && a.books == b.books)
}

/// Where the books of a format are put away (undeclared: per component).
fn archive_slot(slot: &str, info: &ComponentInfo) -> String {
    match &info.books {
        Some(format) => format!("{slot}~{format}"),
        None => format!("{slot}~sha256:{}", info.sha256),
    }
}

fn archive_meta(slot: &str, info: &ComponentInfo) -> String {
    format!("{}/archived", archive_slot(slot, info))
}

/// The books `candidate` starts on, replacing `live` in `slot`, and why;
/// `Some(books)` to write into the slot, `None` to keep the live ones.
/// Runs the candidate through the recorded ticks to carry restored books
/// forward, so it is called with the slot's turn held.
pub fn plan<S: Strategy>(
    db: &dyn Store,
    slot: &str,
    live: &ComponentInfo,
    candidate: &S,
    fresh: bool,
) -> anyhow::Result<(Handover, Option<Books>)> {
    let info = candidate.info();
    let mut handover = Handover {
        books: "empty",
        live_format: live.books.clone(),
        format: info.books.clone(),
        why: String::new(),
        restored_after_tick: None,
        carried_ticks: None,
    };
    if fresh {
        handover.why = "asked for empty books (fresh)".into();
        return Ok((handover, Some(Books::default())));
    }
    if same_format(live, info) {
        handover.books = "live";
        handover.why = match &info.books {
            Some(format) => format!("same books format {format}"),
            None => "the same component".into(),
        };
        return Ok((handover, None));
    }
    let differ = format!(
        "books formats differ (live {}, new {})",
        shown(&live.books),
        shown(&info.books)
    );
    let read = db.read()?;
    let archived: Option<u64> = storage::meta_in(&*read, &archive_meta(slot, info))?;
    let Some(after) = archived else {
        handover.why = format!("{differ}; no books of its format kept: it starts empty");
        return Ok((handover, Some(Books::default())));
    };
    let mut restored = books::load_all(&*read, &archive_slot(slot, info))?;
    let now = tick_log::position(&*read, slot)?;
    drop(read);
    let recorded = S::recorded_since(db, slot, after, usize::MAX)?;
    let complete = recorded.len() as u64 == now.saturating_sub(after)
        && recorded
            .first()
            .is_none_or(|(tick, _, _)| *tick == after + 1);
    if !complete {
        handover.why = format!(
            "{differ}; its books from tick {after} cannot be carried forward (the tick log no longer reaches back): it starts empty"
        );
        return Ok((handover, Some(Books::default())));
    }
    let mut carried = 0;
    for (tick, input, decided) in &recorded {
        // A failed tick consumed nothing: its news is still to come.
        if decided.is_none() {
            continue;
        }
        if let Err(why) = candidate.carry(&mut restored, input).map(drop) {
            handover.why = format!(
                "{differ}; carrying its books forward failed at tick {tick} ({why}): it starts empty"
            );
            return Ok((handover, Some(Books::default())));
        }
        carried += 1;
    }
    handover.books = "restored";
    handover.why = format!(
        "{differ}; the books it had at tick {after}, carried forward through the {carried} ticks decided since"
    );
    handover.restored_after_tick = Some(after);
    handover.carried_ticks = Some(carried);
    Ok((handover, Some(restored)))
}

/// Puts the live books away under the live version's format, inside the
/// activation's transaction, for the day a version of it comes back.
pub fn archive(tx: &dyn WriteTx, slot: &str, live: &ComponentInfo) -> anyhow::Result<()> {
    let at = tick_log::position(tx as &dyn ReadTx, slot)?;
    books::copy_books(tx, slot, &archive_slot(slot, live))?;
    storage::set_meta(tx, &archive_meta(slot, live), &at)
}

fn shown(format: &Option<String>) -> &str {
    format.as_deref().unwrap_or("undeclared")
}
