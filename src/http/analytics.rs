//! Analytics over HTTP: `POST /api/analytics/log-page-view` (seed 004), a page view a browser reports, signed
//! in or not. Rate-limited per client address; a cookie-authenticated report carries CSRF like any other POST.

use axum::{extract::State, http::header};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{
    error::{AppError, AppResult},
    extract::{ClientIp, Json, MaybePrincipal},
    routes::Routes,
};
use crate::{
    analytics::{PageViewError, PageViewReport},
    state::AppState,
};

pub fn router() -> Routes {
    Routes::new().post("/api/analytics/log-page-view", log_page_view)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PageViewBody {
    path: String,
    title: Option<String>,
    #[serde(rename = "loadTime")]
    load_time: Option<f64>,
}

async fn log_page_view(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    MaybePrincipal(caller): MaybePrincipal,
    headers: axum::http::HeaderMap,
    Json(body): Json<PageViewBody>,
) -> AppResult<axum::Json<Value>> {
    let report = PageViewReport {
        path: body.path,
        title: body.title,
        load_time: body.load_time,
        user_agent: headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
    };
    let user_id = caller.map(|p| p.account.id.to_string());
    state
        .analytics
        .record_page_view(ip, user_id, report)
        .map_err(|e| match e {
            PageViewError::Invalid(m) => AppError::Unprocessable(m.into()),
            PageViewError::TooMany { retry_after_secs } => {
                AppError::TooManyRequests { retry_after_secs }
            }
        })?;
    Ok(axum::Json(json!({ "success": true })))
}
