//! Database connection profiles (seed 004's paths), all behind `connections:use` and all on the caller's own
//! profiles: another user's id is a 404 like a missing one. No reply carries a password (`has_password` and a
//! fixed mask instead), not even to admins.

use axum::{
    extract::{Path, State},
    http::StatusCode,
    response::{IntoResponse, Response},
};
use secrecy::SecretString;
use serde::Deserialize;
use serde_json::json;

use super::{
    error::{AppError, AppResult},
    extract::{ConnectionsUse, Json, Require},
    routes::Routes,
};
use crate::{
    connections::{NewProfile, Target},
    state::AppState,
};

pub fn router() -> Routes {
    Routes::new()
        .post("/api/save-connection", save_connection)
        .get("/api/get-connections", list_connections)
        .delete("/api/delete-connection/{id}", delete_connection)
        .post("/api/test-connection", test_connection)
        .post("/api/list-tables", list_tables)
        .post("/api/describe-columns", describe_columns)
        .post("/api/get-table-rows", get_table_rows)
        .post("/api/analytics-query", analytics_query)
}

/// Seed 004's profile fields; `port` may be a number or a string of digits, as seed clients send either.
#[derive(Deserialize)]
struct ProfileBody {
    #[serde(default)]
    name: String,
    #[serde(default)]
    host: String,
    #[serde(default)]
    port: Option<PortField>,
    #[serde(default, alias = "username")]
    user: String,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    database: String,
    database_type: String,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum PortField {
    Number(u64),
    Text(String),
}

impl ProfileBody {
    fn into_new(self) -> Result<NewProfile, AppError> {
        let port = match self.port {
            None => None,
            Some(PortField::Number(n)) => Some(n),
            Some(PortField::Text(t)) if t.trim().is_empty() => None,
            Some(PortField::Text(t)) => Some(t.trim().parse::<u64>().map_err(|_| {
                AppError::Unprocessable("port must be a number from 1 to 65535".into())
            })?),
        };
        let port = port
            .map(|p| {
                u16::try_from(p)
                    .map_err(|_| AppError::Unprocessable("port must be 1 to 65535".into()))
            })
            .transpose()?;
        Ok(NewProfile {
            name: self.name,
            database_type: self.database_type,
            host: self.host,
            port,
            username: self.user,
            password: SecretString::from(self.password.unwrap_or_default()),
            database: self.database,
        })
    }
}

async fn save_connection(
    State(state): State<AppState>,
    Require(principal, _): Require<ConnectionsUse>,
    Json(body): Json<ProfileBody>,
) -> AppResult<Response> {
    let profile = state
        .connections
        .save(&principal.account.id, body.into_new()?)
        .await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(json!({ "success": true, "connection": profile })),
    )
        .into_response())
}

async fn list_connections(
    State(state): State<AppState>,
    Require(principal, _): Require<ConnectionsUse>,
) -> AppResult<Response> {
    let connections = state.connections.list(&principal.account.id).await?;
    Ok(axum::Json(json!({
        "success": true,
        "count": connections.len(),
        "connections": connections,
    }))
    .into_response())
}

async fn delete_connection(
    State(state): State<AppState>,
    Require(principal, _): Require<ConnectionsUse>,
    Path(id): Path<String>,
) -> AppResult<Response> {
    state.connections.delete(&principal.account.id, &id).await?;
    Ok(axum::Json(json!({ "success": true, "message": "Connection deleted" })).into_response())
}

/// Either a saved profile (`connection_id`) or the unsaved fields of save-connection.
#[derive(Deserialize)]
struct TestBody {
    connection_id: Option<String>,
    #[serde(flatten)]
    profile: Option<ProfileBody>,
}

async fn test_connection(
    State(state): State<AppState>,
    Require(principal, _): Require<ConnectionsUse>,
    Json(body): Json<TestBody>,
) -> AppResult<Response> {
    let target = match (body.connection_id, body.profile) {
        (Some(id), _) => Target::Saved(id),
        (None, Some(mut profile)) => {
            if profile.name.trim().is_empty() {
                profile.name = "unsaved".into();
            }
            Target::Unsaved(profile.into_new()?)
        }
        (None, None) => {
            return Err(AppError::Unprocessable(
                "send connection_id, or the fields of save-connection with database_type".into(),
            ));
        }
    };
    let tested = state
        .connections
        .test(&principal.account.id, target)
        .await?;
    Ok(axum::Json(json!({
        "success": true,
        "message": "Connection successful",
        "database_type": tested.database_type,
        "server_version": tested.server_version,
    }))
    .into_response())
}

#[derive(Deserialize)]
struct ConnectionBody {
    connection_id: String,
}

async fn list_tables(
    State(state): State<AppState>,
    Require(principal, _): Require<ConnectionsUse>,
    Json(body): Json<ConnectionBody>,
) -> AppResult<Response> {
    let tables = state
        .connections
        .list_tables(&principal.account.id, &body.connection_id)
        .await?;
    Ok(
        axum::Json(json!({ "success": true, "count": tables.len(), "tables": tables }))
            .into_response(),
    )
}

#[derive(Deserialize)]
struct TableBody {
    connection_id: String,
    table: String,
    limit: Option<usize>,
}

async fn describe_columns(
    State(state): State<AppState>,
    Require(principal, _): Require<ConnectionsUse>,
    Json(body): Json<TableBody>,
) -> AppResult<Response> {
    let columns = state
        .connections
        .describe(&principal.account.id, &body.connection_id, &body.table)
        .await?;
    Ok(
        axum::Json(json!({ "success": true, "table": body.table, "columns": columns }))
            .into_response(),
    )
}

async fn get_table_rows(
    State(state): State<AppState>,
    Require(principal, _): Require<ConnectionsUse>,
    Json(body): Json<TableBody>,
) -> AppResult<Response> {
    let result = state
        .connections
        .table_rows(
            &principal.account.id,
            &body.connection_id,
            &body.table,
            body.limit,
        )
        .await?;
    let mut reply = serde_json::to_value(result).map_err(anyhow::Error::from)?;
    reply["success"] = json!(true);
    reply["table"] = json!(body.table);
    Ok(axum::Json(reply).into_response())
}

#[derive(Deserialize)]
struct QueryBody {
    connection_id: String,
    query: String,
}

async fn analytics_query(
    State(state): State<AppState>,
    Require(principal, _): Require<ConnectionsUse>,
    Json(body): Json<QueryBody>,
) -> AppResult<Response> {
    let result = state
        .connections
        .query(&principal.account.id, &body.connection_id, &body.query)
        .await?;
    let mut reply = serde_json::to_value(result).map_err(anyhow::Error::from)?;
    reply["success"] = json!(true);
    Ok(axum::Json(reply).into_response())
}
