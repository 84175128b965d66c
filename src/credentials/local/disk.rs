//! The store's file: opening it (refusing a corrupt one with an error that
//! names it), committing to it, and reopening it after a failed commit.
//!
//! redb refuses every transaction after a commit failed to reach the disk
//! ("Previous I/O error occurred"), until the database is closed and
//! reopened. So a failed commit closes the database at once; the next
//! write or health probe reopens it and reloads the in-memory index from
//! the file, which holds exactly what was acknowledged.

use std::path::{Path, PathBuf};
use std::sync::{Once, RwLock};

use redb::{Database, ReadableTable, ReadableTableMetadata, TableDefinition, WriteTransaction};

use super::row;
use crate::credentials::index::Index;
use crate::credentials::{Credential, CredentialError, FailureKind};

/// id -> JSON-encoded credential (see `row.rs`). Only active credentials
/// are stored: revoking deletes the row.
pub(super) const CREDENTIALS: TableDefinition<&str, &[u8]> = TableDefinition::new("credentials");

/// Facts about the store itself: which form its rows are in, and when a
/// health probe last committed.
pub(super) const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
pub(super) const FORM: &str = "form";
/// The key a health probe writes: a commit that succeeds proves the next
/// one can.
const PROBE: &str = "probe";
/// 1: the first versions (no `meta` table); 2: a named app's developer is
/// escaped in its identity where it must be (see `AppId`).
pub(super) const CURRENT_FORM: u64 = 2;

/// Why the store file cannot be used. Each names the file, for the
/// operator reading why keyhook did not start.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot create the data directory {}: {source}", dir.display())]
    Directory {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot open the local store {}: {detail}", path.display())]
    Unavailable { path: PathBuf, detail: String },
    #[error(
        "the local store {} is corrupt ({detail}); keyhook will not serve from it: \
         move it aside and restore it from a backup",
        path.display()
    )]
    Corrupt { path: PathBuf, detail: String },
    #[error(
        "the local store {} is in form {form}, written by a newer keyhook; \
         this one reads form {CURRENT_FORM} and earlier",
        path.display()
    )]
    Newer { path: PathBuf, form: u64 },
}

impl From<StoreError> for CredentialError {
    fn from(err: StoreError) -> Self {
        CredentialError::Failed {
            operation: "open store",
            kind: FailureKind::StorageFailed,
            detail: err.to_string(),
        }
    }
}

/// Sorts redb's error: damaged bytes are corruption, anything else (a
/// permission, a full disk, another process holding the file) is not.
fn classify(path: &Path, err: impl Into<redb::Error>) -> StoreError {
    let err = err.into();
    let corrupt = match &err {
        redb::Error::Corrupted(_) => true,
        redb::Error::Io(io) => matches!(
            io.kind(),
            std::io::ErrorKind::InvalidData | std::io::ErrorKind::UnexpectedEof
        ),
        _ => false,
    };
    let (path, detail) = (path.to_path_buf(), err.to_string());
    if corrupt {
        StoreError::Corrupt { path, detail }
    } else {
        StoreError::Unavailable { path, detail }
    }
}

/// The name of the thread a store is opened on; see [`guarded`].
const OPEN_THREAD: &str = "keyhook-store-open";

/// Runs `open` on a thread of its own and turns a panic into
/// [`StoreError::Corrupt`]. redb panics on some damaged files (an
/// assertion or an unreachable branch in its page allocator or B-tree,
/// found by overwriting bytes of a real store) instead of returning an
/// error; an operator must read which file is damaged, not a backtrace.
/// The panic's own message goes into the error, not to stderr.
fn guarded<T: Send + 'static>(
    path: &Path,
    open: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    static QUIET: Once = Once::new();
    QUIET.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if std::thread::current().name() != Some(OPEN_THREAD) {
                previous(info);
            }
        }));
    });
    let thread = std::thread::Builder::new()
        .name(OPEN_THREAD.into())
        .spawn(open)
        .map_err(|e| StoreError::Unavailable {
            path: path.to_path_buf(),
            detail: format!("cannot start a thread to open it: {e}"),
        })?;
    thread.join().map_err(|payload| {
        let message = (payload.downcast_ref::<String>().map(String::as_str))
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or("no message");
        StoreError::Corrupt {
            path: path.to_path_buf(),
            detail: format!("the database library failed reading it: {message}"),
        }
    })?
}

/// Brings the rows to [`CURRENT_FORM`] within `txn`, at every open: an
/// upgraded row is left as it is, and rows a previous version wrote after
/// a rollback are upgraded too. A store in a later form was written by a
/// newer keyhook, whose rows this one would misread: it is refused.
fn upgrade(path: &Path, txn: &WriteTransaction) -> Result<(), StoreError> {
    let failed = |e: redb::Error| classify(path, e);
    let mut meta = txn.open_table(META).map_err(|e| failed(e.into()))?;
    let mut table = txn.open_table(CREDENTIALS).map_err(|e| failed(e.into()))?;
    let form = meta
        .get(FORM)
        .map_err(|e| failed(e.into()))?
        .map_or(1, |v| v.value());
    if form > CURRENT_FORM {
        let path = path.to_path_buf();
        return Err(StoreError::Newer { path, form });
    }
    let mut upgraded = Vec::new();
    for entry in table.iter().map_err(|e| failed(e.into()))? {
        let (id, value) = entry.map_err(|e| failed(e.into()))?;
        let row = row::upgrade(value.value()).map_err(|e| bad_row(path, id.value(), e))?;
        if let Some(row) = row {
            upgraded.push((id.value().to_string(), row));
        }
    }
    for (id, row) in &upgraded {
        table
            .insert(id.as_str(), row.as_slice())
            .map_err(|e| failed(e.into()))?;
    }
    if form < CURRENT_FORM || !upgraded.is_empty() {
        meta.insert(FORM, CURRENT_FORM)
            .map_err(|e| failed(e.into()))?;
    }
    // A new store is written in today's form: nothing was upgraded.
    let was_new = form == 1 && table.is_empty().map_err(|e| failed(e.into()))?;
    if !upgraded.is_empty() || (form < CURRENT_FORM && !was_new) {
        tracing::info!(
            from = form,
            to = CURRENT_FORM,
            rows_changed = upgraded.len(),
            "upgraded the local store"
        );
    }
    Ok(())
}

fn bad_row(path: &Path, id: &str, err: serde_json::Error) -> StoreError {
    StoreError::Corrupt {
        path: path.to_path_buf(),
        detail: format!("row {id:?} cannot be read: {err}"),
    }
}

/// Reads every row of `db` into an index (refusing, as [`upgrade`] does,
/// a store a newer keyhook wrote: `check` must find what `serve` would).
fn load(path: &Path, db: &Database) -> Result<Index, StoreError> {
    let failed = |e: redb::Error| classify(path, e);
    let txn = db.begin_read().map_err(|e| failed(e.into()))?;
    match txn.open_table(META) {
        Ok(meta) => {
            let form = meta.get(FORM).map_err(|e| failed(e.into()))?;
            if let Some(form) = form.map(|v| v.value()).filter(|&f| f > CURRENT_FORM) {
                let path = path.to_path_buf();
                return Err(StoreError::Newer { path, form });
            }
        }
        Err(redb::TableError::TableDoesNotExist(_)) => {}
        Err(e) => return Err(failed(e.into())),
    }
    let table = match txn.open_table(CREDENTIALS) {
        Ok(table) => table,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Index::default()),
        Err(e) => return Err(failed(e.into())),
    };
    let mut index = Index::default();
    for entry in table.iter().map_err(|e| failed(e.into()))? {
        let (id, value) = entry.map_err(|e| failed(e.into()))?;
        index.insert(row::decode(value.value()).map_err(|e| bad_row(path, id.value(), e))?);
    }
    Ok(index)
}

/// The store file and, while it is usable, the database open on it.
pub(super) struct Disk {
    path: PathBuf,
    /// `None` after a failed commit, until a reopen succeeds.
    db: Option<Database>,
}

impl Disk {
    /// Opens (or creates) `<data_dir>/<file>`, upgrades its rows and loads
    /// them.
    pub(super) fn open(data_dir: &Path, file: &str) -> Result<(Disk, Index), StoreError> {
        std::fs::create_dir_all(data_dir).map_err(|source| StoreError::Directory {
            dir: data_dir.to_path_buf(),
            source,
        })?;
        let path = data_dir.join(file);
        let (db, index) = Self::open_file(&path)?;
        Ok((Disk { path, db: Some(db) }, index))
    }

    fn open_file(path: &Path) -> Result<(Database, Index), StoreError> {
        Self::open_file_as(path, path)
    }

    /// Opens the store at `file`, naming `path` in every error.
    fn open_file_as(file: &Path, path: &Path) -> Result<(Database, Index), StoreError> {
        let (file, owned) = (file.to_path_buf(), path.to_path_buf());
        guarded(path, move || {
            let path = owned.as_path();
            let failed = |e: redb::Error| classify(path, e);
            let db = Database::create(&file).map_err(|e| failed(e.into()))?;
            let txn = db.begin_write().map_err(|e| failed(e.into()))?;
            // Opening the tables in a write transaction creates them on
            // first use; rows an earlier version wrote are upgraded in the
            // same transaction, so a store is in one form or the other.
            upgrade(path, &txn)?;
            txn.commit().map_err(|e| failed(e.into()))?;
            let index = load(path, &db)?;
            Ok((db, index))
        })
    }

    /// Opens the store at `path` as `serve` would, without changing it
    /// (`keyhook check`): how many credentials it holds, or `None` when
    /// another process (a running keyhook) holds it. `serve`'s open commits
    /// (the upgrade), and a damaged page that only a write meets fails it
    /// where reading every row passes: so a copy is opened, commit and all.
    pub(super) fn verify(path: &Path) -> Result<Option<usize>, StoreError> {
        let owned = path.to_path_buf();
        let held = guarded(path, move || match Database::open(&owned) {
            Ok(_) => Ok(false),
            Err(redb::DatabaseError::DatabaseAlreadyOpen) => Ok(true),
            Err(e) => Err(classify(&owned, e)),
        })?;
        if held {
            return Ok(None);
        }
        let copy = std::env::temp_dir().join(format!(
            "keyhook-check-{}-{}.redb",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or_default()
        ));
        std::fs::copy(path, &copy).map_err(|e| StoreError::Unavailable {
            path: path.to_path_buf(),
            detail: format!("cannot copy it to check it: {e}"),
        })?;
        let opened = Self::open_file_as(&copy, path);
        let _ = std::fs::remove_file(&copy);
        Ok(Some(opened?.1.len()))
    }

    pub(super) fn is_open(&self) -> bool {
        self.db.is_some()
    }

    /// Opens the file again after a failed commit closed it, and replaces
    /// `index` with what the file holds: what was acknowledged.
    pub(super) fn reopen(&mut self, index: &RwLock<Index>) -> Result<(), CredentialError> {
        if self.db.is_some() {
            return Ok(());
        }
        let (db, loaded) = Self::open_file(&self.path)?;
        tracing::info!(
            path = %self.path.display(),
            credentials = loaded.len(),
            "reopened the local store and reloaded it from disk"
        );
        *index.write().expect("index lock") = loaded;
        self.db = Some(db);
        Ok(())
    }

    /// Commits `change` in one transaction, then applies it to `index`. A
    /// failure closes the database (see the module's comment); the next
    /// commit reopens it first and replaces `index` with what the file
    /// holds.
    pub(super) fn commit(
        &mut self,
        operation: &'static str,
        index: &RwLock<Index>,
        change: Change,
    ) -> Result<(), CredentialError> {
        self.reopen(index)?;
        // Taken out: dropped, so closed, if anything below fails.
        let db = self.db.take().expect("reopened");
        write(&db, &change).map_err(|e| CredentialError::Failed {
            operation,
            kind: FailureKind::StorageFailed,
            detail: format!("{}: {e}", self.path.display()),
        })?;
        self.db = Some(db);
        change.apply(&mut index.write().expect("index lock"));
        Ok(())
    }
}

impl Change {
    fn apply(self, index: &mut Index) {
        match self {
            Change::Put(credential, _) => index.insert(*credential),
            Change::Delete(id) => drop(index.remove(&id)),
            Change::Probe(_) => {}
            Change::All(changes) => changes.into_iter().for_each(|c| c.apply(index)),
        }
    }
}

/// One change committed to the file, then applied to the index.
pub(super) enum Change {
    /// A credential and its row.
    Put(Box<Credential>, Vec<u8>),
    Delete(String),
    /// A health probe: one tiny row of `meta`, whose commit proves the
    /// next one can succeed.
    Probe(u64),
    /// Several changes in one transaction: a rotation's successor and
    /// predecessor, an app's credentials revoked together, a sweep.
    All(Vec<Change>),
}

// redb's own error, read once by the caller: boxing it would buy nothing.
#[allow(clippy::result_large_err)]
fn write(db: &Database, change: &Change) -> Result<(), redb::Error> {
    let txn = db.begin_write()?;
    stage(&txn, change)?;
    txn.commit()?;
    Ok(())
}

#[allow(clippy::result_large_err)]
fn stage(txn: &redb::WriteTransaction, change: &Change) -> Result<(), redb::Error> {
    match change {
        Change::Put(credential, row) => {
            let mut table = txn.open_table(CREDENTIALS)?;
            table.insert(credential.id.as_str(), row.as_slice())?;
        }
        Change::Delete(id) => {
            txn.open_table(CREDENTIALS)?.remove(id.as_str())?;
        }
        Change::Probe(now_ms) => {
            txn.open_table(META)?.insert(PROBE, now_ms)?;
        }
        Change::All(changes) => {
            for change in changes {
                stage(txn, change)?;
            }
        }
    }
    Ok(())
}
