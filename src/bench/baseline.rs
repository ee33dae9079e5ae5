//! `warden bench-baseline`: a constant `GET /` handler, the floor the benchmark compares Warden against.

/// Serves `ok` at `/` on `bind`.
pub async fn run(bind: &str) -> anyhow::Result<()> {
    let router = axum::Router::new().route("/", axum::routing::get(|| async { "ok" }));
    super::serve(bind, router).await
}
