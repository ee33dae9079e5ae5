//! The shared state every handler receives. It sits below both `app` (which builds it) and `http` (which reads
//! it), so no import runs back up: `app → http → state` and `app → state` (DESIGN: arrows point down only).

use std::sync::Arc;

use crate::{
    analytics::Analytics,
    audit::Audit,
    auth::Auth,
    chat::Chat,
    clock::SharedClock,
    cluster::Bus,
    config::Config,
    connections::Connections,
    mcp::upstream::Upstreams,
    mfa::Mfa,
    saved_tests::SavedTests,
    sms::Sms,
    store::Db,
    telemetry::Metrics,
    tools::{Catalog, approval::Approvals, log::ToolLog},
};

/// Everything a handler may use. One `Arc`, so the per-request clones axum makes cost one counter bump.
#[derive(Clone)]
pub struct AppState(Arc<Services>);

pub struct Services {
    pub config: Config,
    pub db: Db,
    pub auth: Arc<Auth>,
    pub audit: Audit,
    pub analytics: Analytics,
    pub chat: Chat,
    pub catalog: Arc<Catalog>,
    pub tool_log: ToolLog,
    pub upstreams: Upstreams,
    pub approvals: Arc<Approvals>,
    pub sms: Arc<Sms>,
    pub connections: Arc<Connections>,
    pub mfa: Arc<Mfa>,
    pub saved_tests: Arc<SavedTests>,
    pub clock: SharedClock,
    pub metrics: Metrics,
    /// The change bus between instances (the follower task in `app` subscribes; services publish).
    pub bus: Bus,
}

impl std::ops::Deref for AppState {
    type Target = Services;
    fn deref(&self) -> &Services {
        &self.0
    }
}

impl AppState {
    pub fn new(services: Services) -> AppState {
        AppState(Arc::new(services))
    }
}

impl Services {
    /// Whether requests can be served: the database answers.
    pub async fn is_ready(&self) -> bool {
        self.db.is_ready().await
    }
}
