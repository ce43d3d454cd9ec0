//! Reload on file change: the config file and every configured plugin file
//! are watched (through their directories, so editors that replace a file by
//! renaming are seen too), debounced, and a change runs the same reload as
//! `POST /admin/reload`. The set of watched files follows the config.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use notify_debouncer_mini::notify::{RecommendedWatcher, RecursiveMode};
use notify_debouncer_mini::{DebounceEventResult, Debouncer, new_debouncer};

use super::Reloader;

/// Quiet time after the last event before reloading (a copy may write in several steps).
const DEBOUNCE: Duration = Duration::from_millis(25);

/// Keeps the watcher alive; dropping it stops watching.
pub struct Watch {
    _debouncer: Arc<Mutex<Debouncer<RecommendedWatcher>>>,
}

fn targets(r: &Reloader) -> (HashSet<PathBuf>, HashSet<PathBuf>) {
    let files: HashSet<PathBuf> = r.watched_files().into_iter().map(|f| std::path::absolute(&f).unwrap_or(f)).collect();
    let dirs = files.iter().filter_map(|f| f.parent().map(|p| p.to_path_buf())).collect();
    (files, dirs)
}

pub fn spawn(reloader: Arc<Reloader>) -> anyhow::Result<Watch> {
    let (files, dirs) = targets(&reloader);
    let watched = Arc::new(Mutex::new((files, dirs.clone())));
    let slot: Arc<Mutex<Option<Arc<Mutex<Debouncer<RecommendedWatcher>>>>>> = Arc::default();
    let (r, w, s) = (reloader.clone(), watched.clone(), slot.clone());
    // Reading a file raises events too: reload only when a size or time changed.
    let mut seen = reloader.stamps();
    let debouncer = new_debouncer(DEBOUNCE, move |res: DebounceEventResult| {
        let Ok(events) = res else { return };
        let hit = {
            let w = w.lock().unwrap_or_else(|e| e.into_inner());
            events.iter().any(|e| w.0.contains(&e.path))
        };
        if !hit {
            return;
        }
        let now = r.stamps();
        if now == seen {
            return;
        }
        seen = now;
        match r.reload("file") {
            Ok(rep) => eprintln!("weft: reloaded after a file change (version {}, changed {:?})", rep.version, rep.changed),
            Err(e) => eprintln!("weft: file change refused, the serving version stays: {e}"),
        }
        // The config may name new plugin files: follow them.
        let (files, dirs) = targets(&r);
        let mut w = w.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(d) = s.lock().ok().and_then(|d| d.clone()) {
            let mut d = d.lock().unwrap_or_else(|e| e.into_inner());
            for dir in dirs.difference(&w.1) {
                let _ = d.watcher().watch(dir, RecursiveMode::NonRecursive);
            }
        }
        *w = (files, dirs);
    })?;
    let debouncer = Arc::new(Mutex::new(debouncer));
    {
        let mut d = debouncer.lock().unwrap_or_else(|e| e.into_inner());
        for dir in &dirs {
            d.watcher().watch(dir, RecursiveMode::NonRecursive)?;
        }
    }
    *slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(debouncer.clone());
    Ok(Watch { _debouncer: debouncer })
}
