//! The router role: picks which backend (engine or replica) serves a request,
//! or rejects it. Called once per request with every candidate's load and how
//! much of the request's prefix it already caches.

#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        world: "router-plugin",
        path: "../wit",
        pub_export_macro: true,
        export_macro_name: "__export_router_world",
        default_bindings_module: "weft_sdk::router::bindings",
        with: {
            "weft:plugin/host@0.3.0": crate::common::weft::plugin::host,
            "weft:plugin/types@0.3.0": crate::common::weft::plugin::types,
        },
    });
}

use bindings::exports::weft::plugin::router as wit;

/// What the router knows of a request, backend and decision.
///
/// ```
/// use weft_sdk::router::{Rejection, RouteResult};
/// let r = RouteResult::Reject(Rejection { status: 503, reason: "all backends down".into() });
/// assert!(matches!(r, RouteResult::Reject(_)));
/// ```
pub use wit::{Backend, Rejection, RouteRequest, RouteResult};

/// A routing policy. State (counters, weights) lives in `self`.
///
/// ```
/// use weft_sdk::router::{Backend, RouteRequest, RouteResult, Router};
/// use weft_sdk::{Config, Metadata, Plugin};
/// /// Takes turns.
/// struct RoundRobin {
///     next: usize,
/// }
/// impl Plugin for RoundRobin {
///     fn metadata() -> Metadata { Metadata { name: "rr".into(), version: "0.1.0".into(), description: "".into() } }
///     fn init(_: &Config) -> Result<Self, String> { Ok(RoundRobin { next: 0 }) }
/// }
/// impl Router for RoundRobin {
///     fn route(&mut self, _: &RouteRequest, c: &[Backend]) -> RouteResult {
///         self.next += 1;
///         RouteResult::Backend(c[(self.next - 1) % c.len()].id.clone())
///     }
/// }
/// ```
pub trait Router: crate::Plugin {
    /// Chooses among `candidates` (never empty) by id, or rejects.
    fn route(&mut self, request: &RouteRequest, candidates: &[Backend]) -> RouteResult;
}

/// Exports a [`Router`] as this component's `weft:plugin/router` implementation.
///
/// ```ignore
/// weft_sdk::export_router!(MyRouter);
/// ```
#[macro_export]
macro_rules! export_router {
    ($t:ty) => {
        #[doc(hidden)]
        struct __WeftRouterExport;

        impl $crate::router::bindings::Guest for __WeftRouterExport {
            fn metadata() -> $crate::Metadata {
                <$t as $crate::Plugin>::metadata()
            }
            fn init(config: $crate::Config) -> ::core::result::Result<(), ::std::string::String> {
                $crate::instance::init::<$t>(&config)
            }
        }

        impl $crate::router::bindings::exports::weft::plugin::router::Guest for __WeftRouterExport {
            fn route(
                request: $crate::router::RouteRequest,
                candidates: ::std::vec::Vec<$crate::router::Backend>,
            ) -> $crate::router::RouteResult {
                $crate::instance::with(|p: &mut $t| <$t as $crate::router::Router>::route(p, &request, &candidates))
            }
        }

        $crate::router::bindings::__export_router_world!(__WeftRouterExport with_types_in $crate::router::bindings);
    };
}
