//! One integration binary: every test starts the real server on 127.0.0.1:0 and talks HTTP to it, on SQLite
//! and on PostgreSQL (`db_tests!`).

mod helpers;

mod auth_flow;
mod browser;
mod chat;
mod db_faults;
mod edge;
mod edge_input;
mod external;
mod lifecycle;
mod llm_mock;
mod mcp;
mod policy;
mod secrets;
mod sessions;
mod throttle;
mod tokens;
mod tool_log;
mod upstreams;
mod users;
