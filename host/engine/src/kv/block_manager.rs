//! Block pool with reference counts and content-addressed prefix caching.
//!
//! A block is in exactly one of three states:
//! - **free**: on the free list, no content worth keeping;
//! - **in use**: `ref_count > 0`, listed in one or more sequences' block tables;
//! - **cached**: `ref_count == 0` but full and hashed, so a later sequence with
//!   the same prefix can take it back; kept in LRU order and evicted (oldest
//!   first) only when the free list is empty.
//!
//! A full block's hash covers its parent's hash and its own token ids (vLLM's
//! scheme). A hash only finds a candidate: a hit also compares the block's
//! stored parent hash and token ids with the asking sequence's, so a hash
//! collision can never serve another sequence's KV. The first block's parent
//! is the sequence's cache root: `None` for the shared cache, or the hash of a
//! salt (one per tenant, say), so that sequences with different salts never
//! share blocks and cannot learn from hit counts what others sent (vLLM's
//! `cache_salt`). Only full blocks are shared,
//! and a sequence only writes past its shared prefix, so shared blocks are
//! read-only. The invariant checked by [`BlockManager::check_idle`]: with no live
//! sequence, every block is free or cached-and-unreferenced.

use std::collections::{BTreeSet, HashMap};
use std::hash::{Hash, Hasher};

/// Index of a block in the KV store.
pub type BlockId = u32;

#[derive(Debug, Clone, Default)]
struct BlockMeta {
    ref_count: u32,
    hash: Option<u64>,
    last_used: u64,
    /// While hashed: the parent hash and token ids the hash was computed from.
    parent: Option<u64>,
    tokens: Box<[u32]>,
}

/// Cache counters, cumulative since start except the gauges.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KvStats {
    pub total_blocks: usize,
    /// Blocks referenced by at least one live sequence.
    pub used_blocks: usize,
    /// Blocks holding a cached prefix nobody references (reclaimable).
    pub cached_blocks: usize,
    pub free_blocks: usize,
    /// Full prompt blocks looked up in the prefix cache.
    pub prefix_queries: u64,
    /// Of those, found.
    pub prefix_hits: u64,
    pub evictions: u64,
}

impl KvStats {
    pub fn hit_rate(&self) -> f64 {
        if self.prefix_queries == 0 { 0.0 } else { self.prefix_hits as f64 / self.prefix_queries as f64 }
    }
    pub fn usage(&self) -> f64 {
        if self.total_blocks == 0 { 0.0 } else { self.used_blocks as f64 / self.total_blocks as f64 }
    }
}

/// Hash of a full block: its parent's hash chained with its token ids.
///
/// SipHash with fixed keys (std's `DefaultHasher::new`) is stable within and
/// across processes of the same build, which routers comparing hashes rely on.
pub fn block_hash(parent: Option<u64>, tokens: &[u32]) -> u64 {
    let mut h = std::hash::DefaultHasher::new();
    parent.hash(&mut h);
    tokens.hash(&mut h);
    h.finish()
}

/// Hashes of every full block of `tokens`, each chained to the previous one.
/// The cache root of a salt: the parent of a sequence's first block. The empty
/// salt is the shared cache.
pub fn cache_root(salt: &str) -> Option<u64> {
    if salt.is_empty() {
        return None;
    }
    let mut h = std::hash::DefaultHasher::new();
    ("weft-cache-salt", salt).hash(&mut h);
    Some(h.finish())
}

/// Hashes of the full blocks of `tokens`, chained from `root` (see [`cache_root`]).
pub fn prefix_hashes_from(root: Option<u64>, tokens: &[u32], block_size: usize) -> Vec<u64> {
    let mut parent = root;
    tokens
        .chunks_exact(block_size)
        .map(|chunk| {
            let h = block_hash(parent, chunk);
            parent = Some(h);
            h
        })
        .collect()
}

pub fn prefix_hashes(tokens: &[u32], block_size: usize) -> Vec<u64> {
    prefix_hashes_from(None, tokens, block_size)
}

/// The set of block hashes a cache holds, shared with other threads so a
/// router can ask "how much of this prompt is cached here" without a round
/// trip to the engine thread. Written only by the [`BlockManager`].
#[derive(Clone, Default, Debug)]
pub struct PrefixIndex(std::sync::Arc<std::sync::RwLock<std::collections::HashSet<u64>>>);

impl PrefixIndex {
    fn insert(&self, h: u64) {
        if let Ok(mut s) = self.0.write() {
            s.insert(h);
        }
    }

    fn remove(&self, h: u64) {
        if let Ok(mut s) = self.0.write() {
            s.remove(&h);
        }
    }

    /// Length of the leading run of `hashes` that is cached.
    pub fn cached_prefix_len(&self, hashes: &[u64]) -> usize {
        self.0.read().map(|s| hashes.iter().take_while(|h| s.contains(h)).count()).unwrap_or(0)
    }
}

/// Owns block bookkeeping; never touches KV data.
pub struct BlockManager {
    block_size: usize,
    blocks: Vec<BlockMeta>,
    free: Vec<BlockId>,
    cached: HashMap<u64, BlockId>,
    /// The keys of `cached`, readable by other threads (routers).
    index: PrefixIndex,
    /// Unreferenced cached blocks by (last use, id): the first is evicted first.
    evictable: BTreeSet<(u64, BlockId)>,
    tick: u64,
    prefix_caching: bool,
    prefix_queries: u64,
    prefix_hits: u64,
    evictions: u64,
}

impl BlockManager {
    pub fn new(num_blocks: usize, block_size: usize, prefix_caching: bool) -> Self {
        Self {
            block_size,
            blocks: vec![BlockMeta::default(); num_blocks],
            // Reverse so blocks are handed out from 0 upward.
            free: (0..num_blocks as BlockId).rev().collect(),
            cached: HashMap::new(),
            index: PrefixIndex::default(),
            evictable: BTreeSet::new(),
            tick: 0,
            prefix_caching,
            prefix_queries: 0,
            prefix_hits: 0,
            evictions: 0,
        }
    }

    pub fn block_size(&self) -> usize {
        self.block_size
    }

    /// A live, shareable view of which block hashes this cache holds.
    pub fn index(&self) -> PrefixIndex {
        self.index.clone()
    }

    pub fn num_blocks(&self) -> usize {
        self.blocks.len()
    }

    /// Blocks that an allocation can obtain right now (free plus evictable).
    pub fn num_available(&self) -> usize {
        self.free.len() + self.evictable.len()
    }

    /// Blocks needed to hold `tokens` tokens.
    pub fn blocks_for(&self, tokens: usize) -> usize {
        tokens.div_ceil(self.block_size)
    }

    fn touch(&mut self) -> u64 {
        self.tick += 1;
        self.tick
    }

    /// Takes a block for new content, evicting the least recently used cached block if needed.
    pub fn allocate(&mut self) -> Option<BlockId> {
        let id = match self.free.pop() {
            Some(id) => id,
            None => {
                let (_, id) = self.evictable.pop_first()?;
                let meta = &mut self.blocks[id as usize];
                if let Some(h) = meta.hash.take() {
                    self.cached.remove(&h);
                    self.index.remove(h);
                }
                meta.tokens = Box::default();
                self.evictions += 1;
                id
            }
        };
        let t = self.touch();
        let meta = &mut self.blocks[id as usize];
        debug_assert_eq!(meta.ref_count, 0);
        meta.ref_count = 1;
        meta.hash = None;
        meta.last_used = t;
        Some(id)
    }

    /// The cached block holding block `i` of a prefix, if its stored parent
    /// and tokens are the prefix's own (the hash alone is never trusted).
    fn lookup(&self, root: Option<u64>, hashes: &[u64], tokens: &[u32], i: usize) -> Option<BlockId> {
        let &id = self.cached.get(&hashes[i])?;
        let meta = &self.blocks[id as usize];
        let parent = if i == 0 { root } else { Some(hashes[i - 1]) };
        let bs = self.block_size;
        (meta.parent == parent && *meta.tokens == tokens[i * bs..(i + 1) * bs]).then_some(id)
    }

    /// Takes a reference on every leading block of the prefix (`hashes` of
    /// `tokens` chained from `root`) that is cached, stopping at the first miss.
    pub fn acquire_prefix(&mut self, root: Option<u64>, hashes: &[u64], tokens: &[u32]) -> Vec<BlockId> {
        if !self.prefix_caching {
            return Vec::new();
        }
        let mut out = Vec::new();
        for i in 0..hashes.len() {
            let Some(id) = self.lookup(root, hashes, tokens, i) else { break };
            let t = self.touch();
            let meta = &mut self.blocks[id as usize];
            if meta.ref_count == 0 {
                self.evictable.remove(&(meta.last_used, id));
            }
            meta.ref_count += 1;
            meta.last_used = t;
            out.push(id);
        }
        out
    }

    /// Counts a prefix lookup that led to an admission: `queries` full blocks asked, `hits` found.
    pub fn record_prefix_lookup(&mut self, queries: usize, hits: usize) {
        self.prefix_queries += queries as u64;
        self.prefix_hits += hits as u64;
    }

    /// Length (in blocks) of the leading run of the prefix that is cached, without taking it.
    pub fn cached_prefix_len(&self, root: Option<u64>, hashes: &[u64], tokens: &[u32]) -> usize {
        if !self.prefix_caching {
            return 0;
        }
        (0..hashes.len()).take_while(|&i| self.lookup(root, hashes, tokens, i).is_some()).count()
    }

    /// Records that `id` is full and holds the block with `hash`, so later prefixes can reuse it.
    /// If another block already holds that content, this one stays private.
    pub fn register_full(&mut self, id: BlockId, hash: u64, parent: Option<u64>, tokens: &[u32]) {
        if !self.prefix_caching || self.blocks[id as usize].hash.is_some() {
            return;
        }
        if let std::collections::hash_map::Entry::Vacant(e) = self.cached.entry(hash) {
            e.insert(id);
            self.index.insert(hash);
            let meta = &mut self.blocks[id as usize];
            meta.hash = Some(hash);
            meta.parent = parent;
            meta.tokens = tokens.into();
        }
    }

    /// Drops one reference; an unreferenced block becomes cached (if hashed) or free.
    pub fn release(&mut self, id: BlockId) {
        let t = self.touch();
        let meta = &mut self.blocks[id as usize];
        assert!(meta.ref_count > 0, "double release of block {id}");
        meta.ref_count -= 1;
        if meta.ref_count == 0 {
            meta.last_used = t;
            if meta.hash.is_some() {
                self.evictable.insert((t, id));
            } else {
                self.free.push(id);
            }
        }
    }

    /// Releases a whole block table. Blocks are released from the tail so the
    /// deepest prefix blocks become the first evicted and the shared heads stay longest.
    pub fn release_all(&mut self, table: &mut Vec<BlockId>) {
        while let Some(id) = table.pop() {
            self.release(id);
        }
    }

    pub fn stats(&self) -> KvStats {
        let used = self.blocks.iter().filter(|b| b.ref_count > 0).count();
        KvStats {
            total_blocks: self.blocks.len(),
            used_blocks: used,
            cached_blocks: self.evictable.len(),
            free_blocks: self.free.len(),
            prefix_queries: self.prefix_queries,
            prefix_hits: self.prefix_hits,
            evictions: self.evictions,
        }
    }

    /// Checks the idle invariant: no block referenced, and every block is either
    /// on the free list or cached-and-evictable, exactly once.
    pub fn check_idle(&self) -> Result<(), String> {
        let mut seen = vec![0u8; self.blocks.len()];
        for &id in &self.free {
            seen[id as usize] += 1;
        }
        for &(_, id) in &self.evictable {
            seen[id as usize] += 1;
        }
        for (i, b) in self.blocks.iter().enumerate() {
            if b.ref_count != 0 {
                return Err(format!("block {i} still has {} references", b.ref_count));
            }
            if seen[i] != 1 {
                return Err(format!("block {i} is listed {} times as free or cached", seen[i]));
            }
        }
        if self.cached.len() != self.evictable.len() {
            return Err(format!("{} hashed blocks but {} evictable", self.cached.len(), self.evictable.len()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_reuse_and_lru_eviction() {
        let mut m = BlockManager::new(4, 2, true);
        let toks = [1, 2, 3, 4, 5];
        let hashes = prefix_hashes(&toks, 2);
        assert_eq!(hashes.len(), 2);
        let mut table: Vec<_> = (0..3).map(|_| m.allocate().unwrap()).collect();
        m.register_full(table[0], hashes[0], None, &toks[..2]);
        m.register_full(table[1], hashes[1], Some(hashes[0]), &toks[2..4]);
        m.release_all(&mut table);
        m.check_idle().unwrap();
        assert_eq!(m.stats().cached_blocks, 2);

        // Same prefix: both blocks come back.
        let got = m.acquire_prefix(None, &hashes, &toks);
        assert_eq!(got.len(), 2);
        let mut t2 = got;
        m.release_all(&mut t2);

        // Exhaust free blocks: cached ones are evicted, deepest (released first) first.
        let a: Vec<_> = (0..3).map(|_| m.allocate().unwrap()).collect();
        assert_eq!(m.stats().evictions, 1);
        assert_eq!(m.cached_prefix_len(None, &hashes, &toks), 1, "head block survives the first eviction");
        assert!(m.allocate().is_some());
        assert!(m.allocate().is_none());
        assert_eq!(m.cached_prefix_len(None, &hashes, &toks), 0);
        let _ = a;
    }

    #[test]
    fn hash_chains_parent() {
        let a = prefix_hashes(&[1, 2, 3, 4], 2);
        let b = prefix_hashes(&[9, 9, 3, 4], 2);
        assert_ne!(a[1], b[1], "same tokens after a different prefix must not match");
        assert_eq!(a, prefix_hashes(&[1, 2, 3, 4, 7], 2));
    }

    #[test]
    fn duplicate_content_stays_private() {
        let mut m = BlockManager::new(2, 2, true);
        let h = block_hash(None, &[1, 2]);
        let x = m.allocate().unwrap();
        let y = m.allocate().unwrap();
        m.register_full(x, h, None, &[1, 2]);
        m.register_full(y, h, None, &[1, 2]);
        m.release(x);
        m.release(y);
        m.check_idle().unwrap();
        assert_eq!(m.stats().cached_blocks, 1);
        assert_eq!(m.stats().free_blocks, 1);
    }

    #[test]
    fn salts_separate_caches() {
        let mut m = BlockManager::new(4, 2, true);
        let toks = [1, 2, 3, 4];
        let (a, b) = (cache_root("tenant:a"), cache_root("tenant:b"));
        assert_eq!(cache_root(""), None);
        let ha = prefix_hashes_from(a, &toks, 2);
        let mut table: Vec<_> = (0..2).map(|_| m.allocate().unwrap()).collect();
        m.register_full(table[0], ha[0], a, &toks[..2]);
        m.register_full(table[1], ha[1], Some(ha[0]), &toks[2..]);
        m.release_all(&mut table);
        assert_eq!(m.cached_prefix_len(a, &ha, &toks), 2, "the same salt hits");
        let hb = prefix_hashes_from(b, &toks, 2);
        assert_eq!(m.cached_prefix_len(b, &hb, &toks), 0, "another salt does not");
        assert_eq!(m.cached_prefix_len(None, &prefix_hashes(&toks, 2), &toks), 0, "nor does the shared cache");
    }

    #[test]
    fn a_hash_collision_is_not_a_hit() {
        let mut m = BlockManager::new(2, 2, true);
        let h = block_hash(None, &[1, 2]);
        let x = m.allocate().unwrap();
        m.register_full(x, h, None, &[1, 2]);
        m.release(x);
        // Another prefix presenting the same hash (a collision) gets nothing.
        assert_eq!(m.cached_prefix_len(None, &[h], &[7, 8]), 0);
        assert!(m.acquire_prefix(None, &[h], &[7, 8]).is_empty());
        assert_eq!(m.acquire_prefix(None, &[h], &[1, 2]).len(), 1);
    }
}
