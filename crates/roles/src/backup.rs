//! What a backup of a role holds: one snapshot of its store and, inside it,
//! the objects that snapshot names (strategy components, document bodies),
//! wherever they are kept. One file restores the role; the restored host
//! moves the objects back out at its start ([`Objects::adopt`]).

use std::path::Path;

use powerplug_storage::{Objects, RedbStore, Store};

/// Writes a backup of `db` with the `objects` it names to `path` (a new
/// redb file, 0600); its size. Blocking: a copy of the whole store.
pub fn write(db: &dyn Store, objects: &Objects, path: &Path) -> anyhow::Result<u64> {
    db.backup_to(path)?;
    if !objects.is_store() {
        let copy = RedbStore::open(path)?;
        let names = {
            let tx = copy.read()?;
            let mut names = crate::versions::object_names(&*tx)?;
            names.extend(crate::documents::object_names(&*tx)?);
            names
        };
        objects.copy_into(&copy, &names)?;
        drop(copy);
        // Closed as a check closes it: the size sent is the size received
        // and checked (redb settles a file it reopens).
        powerplug_storage::check_store_file(path)?;
    }
    Ok(std::fs::metadata(path)?.len())
}
