//! One upstream server's live state, shared by its supervisor (`upstream.rs`) and its tools (`tool.rs`): the
//! configuration, the health `GET /api/servers` shows, and the connection while it is up.

use parking_lot::Mutex;
use rmcp::{RoleClient, service::Peer};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use std::sync::Arc;

use super::{config::ServerConfig, http_call::HttpCall};
use crate::clock::{SharedClock, rfc3339};

/// What `GET /api/servers` shows of one server (seed 004's mcp_server_status fields).
#[derive(Clone, Debug, Serialize)]
pub struct Health {
    pub server_name: String,
    pub transport: &'static str,
    pub url: Option<String>,
    pub status: &'static str,
    pub response_time_ms: Option<f64>,
    pub last_check: Option<String>,
    pub last_successful_check: Option<String>,
    pub error_count: u64,
    pub error_message: Option<String>,
    pub total_requests: u64,
    pub successful_requests: u64,
    pub tools: Vec<String>,
    pub restarts: u64,
}

pub(super) struct Upstream {
    pub(super) config: ServerConfig,
    pub(super) health: Mutex<Health>,
    pub(super) live: Mutex<Option<Live>>,
    pub(super) clock: SharedClock,
}

/// The connection while it is up. A call that finds it broken cancels `lost`: a stateless HTTP server's
/// death shows nowhere else, and the supervisor then drops this connection and reconnects.
#[derive(Clone)]
pub(super) struct Live {
    pub(super) peer: Peer<RoleClient>,
    /// For an HTTP server, the direct caller that `tool.rs` sends calls through (`http_call.rs`).
    pub(super) http: Option<Arc<HttpCall>>,
    pub(super) lost: CancellationToken,
}

impl Upstream {
    pub(super) fn mark_up(&self, ms: f64, tools: Vec<String>) {
        let now = rfc3339(self.clock.now_ms());
        let mut h = self.health.lock();
        h.status = "up";
        h.response_time_ms = Some(ms);
        h.last_check = Some(now.clone());
        h.last_successful_check = Some(now);
        h.error_message = None;
        h.tools = tools;
    }

    pub(super) fn mark_down(&self, error: &str) {
        let mut h = self.health.lock();
        h.status = "down";
        h.last_check = Some(rfc3339(self.clock.now_ms()));
        h.error_count += 1;
        h.error_message = Some(error.chars().take(500).collect());
        h.tools.clear();
    }
}
