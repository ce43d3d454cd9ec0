//! Reload on file change: the config file and every configured plugin file
//! are watched (through their directories, so editors that replace a file by
//! renaming are seen too), debounced, and a change runs the same reload as
//! `POST /admin/reload`. The set of watched files follows the config.
//!
//! A file is read only once it has stopped changing: its size and mtime are
//! the same across [`SETTLE`] (a writer that is still copying or an editor
//! mid-save would otherwise be caught with half a file). A file that does not
//! parse, or that would open a server with tenants to everyone, is refused by
//! the reload itself and never replaces the working configuration.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use notify_debouncer_mini::notify::{RecommendedWatcher, RecursiveMode};
use notify_debouncer_mini::{DebounceEventResult, Debouncer, new_debouncer};

use super::Reloader;

/// Quiet time after the last event before reloading (a copy may write in several steps).
const DEBOUNCE: Duration = Duration::from_millis(25);
/// How long every watched file's size and mtime must hold still before it is read.
const SETTLE: Duration = Duration::from_millis(100);
/// Longest wait for files to settle; past it the reload runs on what is there.
const SETTLE_MAX: Duration = Duration::from_secs(5);

type Slot = Arc<Mutex<Option<Debouncer<RecommendedWatcher>>>>;

/// Keeps the watcher alive for as long as it is held.
pub struct Watch {
    _debouncer: Slot,
}

fn targets(r: &Reloader) -> (HashSet<PathBuf>, HashSet<PathBuf>) {
    let files: HashSet<PathBuf> = r.watched_files().into_iter().map(|f| std::path::absolute(&f).unwrap_or(f)).collect();
    let dirs = files.iter().filter_map(|f| f.parent().map(|p| p.to_path_buf())).collect();
    (files, dirs)
}

pub fn spawn(reloader: Arc<Reloader>) -> anyhow::Result<Watch> {
    let (mut files, mut dirs) = targets(&reloader);
    let initial_dirs = dirs.clone();
    // The callback adds watches when the config names new directories.
    let slot: Slot = Arc::default();
    let (r, s) = (reloader.clone(), slot.clone());
    // Reading a file raises events too: reload only when a size or time changed.
    let mut seen = reloader.stamps();
    let debouncer = new_debouncer(DEBOUNCE, move |res: DebounceEventResult| {
        let Ok(events) = res else { return };
        if !events.iter().any(|e| files.contains(&e.path)) {
            return;
        }
        let mut now = r.stamps();
        if now == seen {
            return;
        }
        let give_up = std::time::Instant::now() + SETTLE_MAX;
        loop {
            std::thread::sleep(SETTLE);
            let later = r.stamps();
            if later == now || std::time::Instant::now() >= give_up {
                break;
            }
            now = later;
        }
        seen = now;
        match r.reload("file") {
            Ok(rep) => {
                eprintln!("weft: reloaded after a file change (version {}, changed {:?})", rep.version, rep.changed)
            }
            Err(e) => eprintln!("weft: file change refused, the serving version stays: {e}"),
        }
        let (new_files, new_dirs) = targets(&r);
        if let Some(d) = s.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
            for dir in new_dirs.difference(&dirs) {
                let _ = d.watcher().watch(dir, RecursiveMode::NonRecursive);
            }
        }
        (files, dirs) = (new_files, new_dirs);
    })?;
    {
        let mut d = slot.lock().unwrap_or_else(|e| e.into_inner());
        let d = d.insert(debouncer);
        for dir in &initial_dirs {
            d.watcher().watch(dir, RecursiveMode::NonRecursive)?;
        }
    }
    Ok(Watch { _debouncer: slot })
}
