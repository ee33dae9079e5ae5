//! Benchmark-only servers, started by `warden bench-*` for `bench/*.sh` and never by `warden serve`: a bare
//! baseline, an instant language model and a small MCP upstream; and `bench-analytics`, which fills a database
//! and times the dashboards; `bench-push`, a client timing logout-to-refusal between two instances. They live here so that no product module carries
//! code only the benchmark needs.
//!
//! Each server binds the given address and serves until the process ends.

pub mod analytics;
pub mod baseline;
pub mod llm;
pub mod mcp_upstream;
pub mod push;

/// Serves `router` on `bind` until the process ends.
async fn serve(bind: &str, router: axum::Router) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(bind).await?;
    axum::serve(listener, router).await?;
    Ok(())
}
