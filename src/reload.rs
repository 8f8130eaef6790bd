//! Mapping reloads: on `SIGHUP`, and when a tenant's mapping file changes (its content is
//! polled, which also sees a Kubernetes ConfigMap's symlink swap), the file is read and
//! compiled; a mapping that compiles is put in force for the requests that start from then on,
//! one that does not is logged and the mapping in force stays. Requests in flight finish on
//! the mapping they started with (`Tenant::mapping` hands each request its own `Arc`).
//!
//! Knows mappings only as compiled values: it never looks inside one.

use std::collections::HashMap;
use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::signals::Triggers;
use crate::tenant::Tenant;
use mapping::ids::TenantId;
use mapping::{CompileError, Mapping};

/// What one reload attempt did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The file is unchanged since the last attempt.
    Unchanged,
    /// The new mapping is in force.
    Reloaded,
    /// The file could not be read or compiled; the previous mapping stays in force.
    Refused(String),
}

/// Watches the mapping files of `tenants` until `shutdown` resolves: every `poll` (zero: only
/// on `SIGHUP`) and on every `SIGHUP` (see [`Triggers`](crate::signals::Triggers)).
pub fn watch(
    tenants: Vec<Arc<Tenant>>,
    poll: Duration,
    shutdown: impl Future<Output = ()>,
) -> impl Future<Output = ()> {
    watch_with(tenants, Triggers::new(poll), shutdown)
}

async fn watch_with(
    tenants: Vec<Arc<Tenant>>,
    mut triggers: Triggers,
    shutdown: impl Future<Output = ()>,
) {
    // Each tenant's file as it was when its mapping in force was compiled: an edit made since
    // (even before this task first ran) is a change.
    let mut seen: HashMap<TenantId, u64> = tenants
        .iter()
        .filter_map(|t| Some((t.id.clone(), t.mapping_digest?)))
        .collect();
    tokio::pin!(shutdown);
    loop {
        let forced = tokio::select! {
            () = &mut shutdown => return,
            forced = triggers.next() => forced,
        };
        for t in &tenants {
            let outcome = reload(t, &mut seen, forced).await;
            if forced && outcome == Outcome::Unchanged {
                tracing::info!(tenant = %t.id, "SIGHUP: mapping unchanged");
            }
        }
    }
}

/// Reloads one tenant's mapping if its file changed (or always, when `forced`).
pub async fn reload(tenant: &Tenant, seen: &mut HashMap<TenantId, u64>, forced: bool) -> Outcome {
    let Some(path) = &tenant.mapping_path else {
        return Outcome::Unchanged;
    };
    let text = match tokio::fs::read_to_string(path).await {
        Ok(t) => t,
        Err(e) => {
            let why = format!("cannot read {}: {e}", path.display());
            // Reported once per distinct problem, not at every poll.
            let d = crate::tenant::mapping_digest(&why);
            if !forced && seen.get(&tenant.id) == Some(&d) {
                return Outcome::Unchanged;
            }
            seen.insert(tenant.id.clone(), d);
            tracing::error!(tenant = %tenant.id, error = %why, "mapping reload refused; the mapping in force stays");
            tenant.metrics.reload(tenant.id.as_str(), false);
            return Outcome::Refused(why);
        }
    };
    let d = crate::tenant::mapping_digest(&text);
    if !forced && seen.get(&tenant.id) == Some(&d) {
        return Outcome::Unchanged;
    }
    seen.insert(tenant.id.clone(), d);
    let compiled = compile(path, &text)
        .map_err(|e| e.to_string())
        .and_then(|m| {
            // A placeholder the tenant has no value for would fail every call that uses it.
            let missing = m.missing_values(tenant.gateway.values());
            if missing.is_empty() {
                return Ok(m);
            }
            let names: Vec<String> = missing
                .iter()
                .map(|v| format!("{{{}}}", v.name()))
                .collect();
            Err(format!(
                "{}: the mapping uses {}, which tenants.{} does not give (restart with the \
             configuration that does)",
                path.display(),
                names.join(", "),
                tenant.id
            ))
        });
    match compiled {
        Ok(mapping) => {
            tenant.set_mapping(Arc::new(mapping));
            tracing::info!(tenant = %tenant.id, file = %path.display(), "mapping reloaded");
            tenant.metrics.reload(tenant.id.as_str(), true);
            Outcome::Reloaded
        }
        Err(why) => {
            tracing::error!(tenant = %tenant.id, error = %why, "mapping reload refused; the mapping in force stays");
            tenant.metrics.reload(tenant.id.as_str(), false);
            Outcome::Refused(why)
        }
    }
}

fn compile(path: &Path, text: &str) -> Result<Mapping, CompileError> {
    Mapping::from_toml(text, &path.display().to_string())
}
