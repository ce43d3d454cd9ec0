//! Budgets of live plugin instances, checked at admission.
//!
//! Why: every sequence holds plugin instances while it runs (its sampler
//! session, one response filter per transform), and the runtime's pooling
//! allocator has a fixed number of slots. Without a budget, one tenant's burst
//! of `n = 16` requests takes every slot and later requests (its own and
//! everyone else's) fail inside the pipeline with a 500. With it, the request
//! that would go over is refused up front with a 429 and `Retry-After`, and
//! only the tenant over its own cap is refused while others have room.
//!
//! Invariant: `used` (global and per tenant) is the sum of the live grants;
//! a grant gives its instances back when the request ends (dropped).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::quota::Exceeded;

/// Global and per-tenant caps on instances held by requests in flight.
#[derive(Debug)]
pub struct InstanceBudget {
    global_cap: usize,
    default_tenant_cap: usize,
    used: Mutex<Used>,
}

#[derive(Debug, Default)]
struct Used {
    total: usize,
    by_tenant: HashMap<String, usize>,
}

/// Instances reserved for one request; returned on drop.
#[derive(Debug)]
pub struct Grant {
    budget: Arc<InstanceBudget>,
    tenant: String,
    n: usize,
}

impl Drop for Grant {
    fn drop(&mut self) {
        let mut u = self.budget.used.lock().unwrap_or_else(|e| e.into_inner());
        u.total -= self.n;
        if let Some(t) = u.by_tenant.get_mut(&self.tenant) {
            *t -= self.n;
            if *t == 0 {
                u.by_tenant.remove(&self.tenant);
            }
        }
    }
}

impl InstanceBudget {
    /// `global_cap` instances in all; a tenant without its own cap gets `default_tenant_cap`.
    pub fn new(global_cap: usize, default_tenant_cap: usize) -> Self {
        Self { global_cap, default_tenant_cap, used: Mutex::default() }
    }

    /// Half of the runtime's instance slots serve requests in flight; the rest
    /// are left to warm pools and to pipelines being loaded by a reload.
    /// A tenant may take half of that, so two tenants can always both run.
    pub fn for_runtime(max_instances: usize) -> Self {
        let global = max_instances / 2;
        Self::new(global, global / 2)
    }

    pub fn in_use(&self) -> usize {
        self.used.lock().map(|u| u.total).unwrap_or(0)
    }

    /// Reserves `n` instances for `tenant` (cap: `tenant_cap`, else the default).
    pub fn reserve(self: &Arc<Self>, tenant: &str, n: usize, tenant_cap: Option<usize>) -> Result<Grant, Exceeded> {
        let cap = tenant_cap.unwrap_or(self.default_tenant_cap);
        let mut u = self.used.lock().unwrap_or_else(|e| e.into_inner());
        let mine = u.by_tenant.get(tenant).copied().unwrap_or(0);
        if n > cap.min(self.global_cap) {
            return Err(Exceeded {
                quota: "max_instances",
                message: format!(
                    "quota exceeded: this request needs {n} plugin instances (n times the pipeline's per-sequence plugins), more than the {} one request may hold",
                    cap.min(self.global_cap)
                ),
                retry_after: None,
            });
        }
        if mine + n > cap {
            return Err(Exceeded {
                quota: "max_instances",
                message: format!(
                    "quota exceeded: max_instances ({cap} live plugin instances); {mine} in use, this request needs {n}"
                ),
                retry_after: Some(1),
            });
        }
        if u.total + n > self.global_cap {
            return Err(Exceeded {
                quota: "server_instances",
                message: format!(
                    "the server's plugin instances are all in use ({} of {}); retry later",
                    u.total, self.global_cap
                ),
                retry_after: Some(1),
            });
        }
        u.total += n;
        *u.by_tenant.entry(tenant.to_string()).or_default() += n;
        Ok(Grant { budget: self.clone(), tenant: tenant.to_string(), n })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_hold_per_tenant_and_globally() {
        let b = Arc::new(InstanceBudget::new(10, 6));
        let a1 = b.reserve("a", 4, None).unwrap();
        assert_eq!(b.reserve("a", 4, None).unwrap_err().quota, "max_instances", "a's own cap");
        let _b1 = b.reserve("b", 6, None).unwrap();
        assert_eq!(b.reserve("c", 1, None).unwrap_err().quota, "server_instances", "the global cap");
        drop(a1);
        assert_eq!(b.in_use(), 6);
        let _a2 = b.reserve("a", 2, Some(2)).unwrap();
        let e = b.reserve("a", 20, None).unwrap_err();
        assert!(e.retry_after.is_none(), "a request that can never fit is not told to retry");
    }
}
