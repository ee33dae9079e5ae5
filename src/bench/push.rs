//! `warden bench-push`: the push latency between two running instances (issue 12): log in on one, log out there,
//! and time until the other refuses the token, polling it about every 0.2 ms. Prints p50, p99 and max over the
//! trials. `bench/push.sh` starts the instances (Redis, then PostgreSQL NOTIFY) and runs it.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// Runs `trials` logout-to-refusal measurements: logout on `origin`, refusal seen on `other`.
pub async fn run(origin: &str, other: &str, password: &str, trials: usize) -> anyhow::Result<()> {
    let client = reqwest::Client::new();
    let mut times = Vec::with_capacity(trials);
    for _ in 0..trials {
        let login: serde_json::Value = client
            .post(format!("{origin}/auth/login"))
            .json(&serde_json::json!({"username": "admin", "password": password}))
            .send()
            .await?
            .error_for_status()
            .context("login")?
            .json()
            .await?;
        let token = login["access_token"].as_str().context("no access token")?;
        let me = |base: &str| {
            client
                .get(format!("{base}/api/me"))
                .bearer_auth(token)
                .send()
        };
        if !me(other).await?.status().is_success() {
            bail!("the token does not work on the other instance before logout");
        }
        client
            .post(format!("{origin}/auth/logout"))
            .bearer_auth(token)
            .send()
            .await?
            .error_for_status()
            .context("logout")?;
        let started = Instant::now();
        while me(other).await?.status().is_success() {
            if started.elapsed() > Duration::from_secs(30) {
                bail!("the other instance still accepts the token after 30 s");
            }
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
        times.push(started.elapsed());
    }
    times.sort();
    let at = |q: f64| {
        let i = ((times.len() as f64 * q).ceil() as usize).clamp(1, times.len()) - 1;
        times[i].as_secs_f64() * 1000.0
    };
    println!(
        "trials={} p50_ms={:.2} p99_ms={:.2} max_ms={:.2}",
        times.len(),
        at(0.50),
        at(0.99),
        at(1.0)
    );
    Ok(())
}
