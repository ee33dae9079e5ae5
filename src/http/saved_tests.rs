//! Saved tests (seed 004) over HTTP: `POST /api/tests`, `GET /api/tests?test_category=`, `DELETE /api/tests/{id}`
//! and `POST /api/tests/{id}/run`. Every route needs `tests:use` and touches only the caller's own tests; a run
//! acts as the caller through the same tool path as the execute route (see `saved_tests`).

use axum::{
    extract::{Path, State},
    http::StatusCode,
};
use serde::{Deserialize, Serialize};

use super::{
    error::{AppError, AppResult},
    extract::{Json, Query, Require, TestsUse},
    routes::Routes,
};
use crate::{
    saved_tests::{Draft, NewTest, SavedTest, SavedTestError},
    state::AppState,
    tools::Caller,
};

pub fn router() -> Routes {
    Routes::new()
        .post("/api/tests", create_test)
        .get("/api/tests", list_tests)
        .delete("/api/tests/{id}", delete_test)
        .post("/api/tests/{id}/run", run_test)
}

impl From<SavedTestError> for AppError {
    fn from(e: SavedTestError) -> Self {
        match e {
            SavedTestError::NotFound => AppError::NotFound(e.to_string()),
            SavedTestError::Invalid(m) => AppError::Unprocessable(m),
            SavedTestError::ToolUnavailable(_) => AppError::Coded {
                status: StatusCode::FORBIDDEN,
                code: "tool_unavailable",
                message: e.to_string(),
            },
            SavedTestError::NeedsApproval(_) => AppError::Coded {
                status: StatusCode::FORBIDDEN,
                code: "approval_required",
                message: e.to_string(),
            },
            SavedTestError::ConnectionNotFound => AppError::Unprocessable(e.to_string()),
            SavedTestError::ConnectionsNotPermitted => AppError::Forbidden(e.to_string()),
            SavedTestError::Internal(e) => AppError::Internal(e),
        }
    }
}

#[derive(Serialize)]
struct OneTest {
    success: bool,
    test: SavedTest,
}

fn one(test: SavedTest) -> axum::Json<OneTest> {
    axum::Json(OneTest {
        success: true,
        test,
    })
}

async fn create_test(
    State(state): State<AppState>,
    Require(p, ..): Require<TestsUse>,
    Json(draft): Json<Draft>,
) -> AppResult<(StatusCode, axum::Json<OneTest>)> {
    let test = NewTest::parse(draft)?;
    let saved = state.saved_tests.create(&p.account.id, test).await?;
    Ok((StatusCode::CREATED, one(saved)))
}

#[derive(Deserialize)]
struct ListQuery {
    test_category: Option<String>,
}

#[derive(Serialize)]
struct TestList {
    success: bool,
    tests: Vec<SavedTest>,
    count: usize,
}

async fn list_tests(
    State(state): State<AppState>,
    Require(p, ..): Require<TestsUse>,
    Query(q): Query<ListQuery>,
) -> AppResult<axum::Json<TestList>> {
    let category = q.test_category.filter(|c| !c.is_empty());
    let tests = state
        .saved_tests
        .find_all(&p.account.id, category.as_deref())
        .await?;
    Ok(axum::Json(TestList {
        success: true,
        count: tests.len(),
        tests,
    }))
}

async fn delete_test(
    State(state): State<AppState>,
    Require(p, ..): Require<TestsUse>,
    Path(id): Path<String>,
) -> AppResult<StatusCode> {
    state.saved_tests.delete(&p.account.id, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Runs the test as the caller; `test.last_status` says whether the call succeeded.
async fn run_test(
    State(state): State<AppState>,
    Require(p, ..): Require<TestsUse>,
    Path(id): Path<String>,
) -> AppResult<axum::Json<OneTest>> {
    let ran = state.saved_tests.run(&Caller::from(&p), &id).await?;
    Ok(one(ran))
}
