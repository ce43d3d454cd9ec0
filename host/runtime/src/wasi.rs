//! What a plugin instance gets of WASI: the sync p2 interfaces, with timers
//! that have already fired (see [`link_instant_timers`]). The WASI context
//! itself (no files, sockets or environment; frozen clocks; log-only
//! stdout/stderr) is built in [`crate::state::HostState::new`].

use wasmtime::component::Linker;
use wasmtime_wasi::p2::Pollable;

use crate::state::HostState;

/// Links WASI p2 for a plugin world.
pub(crate) fn add_to_linker(l: &mut Linker<HostState>) -> wasmtime::Result<()> {
    wasmtime_wasi::p2::add_to_linker_sync(l)?;
    link_instant_timers(l)
}

/// The WASI clock interface whose timers [`link_instant_timers`] replaces
/// (the version wasmtime-wasi links; components built against older 0.2.x
/// patches resolve to it by semver).
const MONOTONIC_CLOCK: &str = "wasi:clocks/monotonic-clock@0.2.12";

/// Replaces WASI's timers with ones that have already fired.
///
/// Why: wasmtime-wasi's sync bindings wait for a timer by blocking the calling
/// thread in `poll`, where epoch interruption cannot reach; a plugin that
/// sleeps would hold its thread (the engine's, or a server worker) for as
/// long as it likes. Plugins see frozen clocks anyway (time is not a grant
/// they have), so a sleep that returns at once is consistent with what they
/// can observe, and every remaining way to spend time is guest code, which the
/// epoch deadline interrupts. The other pollables a plugin can reach (its
/// empty stdin, its log-only stdout/stderr) are always ready.
fn link_instant_timers(l: &mut Linker<HostState>) -> wasmtime::Result<()> {
    use wasmtime::StoreContextMut;
    use wasmtime::component::Resource;
    use wasmtime_wasi::p2::DynPollable;

    fn fired(mut cx: StoreContextMut<'_, HostState>) -> wasmtime::Result<Resource<DynPollable>> {
        let table = &mut cx.data_mut().table;
        let timer = table.push(FiredTimer)?;
        wasmtime_wasi::p2::subscribe(table, timer)
    }
    l.allow_shadowing(true);
    let mut clock = l.instance(MONOTONIC_CLOCK)?;
    clock.func_wrap("subscribe-duration", |cx: StoreContextMut<'_, HostState>, (_ns,): (u64,)| Ok((fired(cx)?,)))?;
    clock.func_wrap("subscribe-instant", |cx: StoreContextMut<'_, HostState>, (_at,): (u64,)| Ok((fired(cx)?,)))?;
    l.allow_shadowing(false);
    Ok(())
}

/// A timer that has already fired.
struct FiredTimer;

#[async_trait::async_trait]
impl Pollable for FiredTimer {
    async fn ready(&mut self) {}
}
