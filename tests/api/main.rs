//! One integration binary: every test starts the real server on 127.0.0.1:0 and talks HTTP to it, on SQLite
//! and on PostgreSQL (`db_tests!`).

mod helpers;

mod admin_users;
mod analytics;
mod audit;
mod browser;
mod chat_agent;
mod chat_providers;
mod chat_sessions;
mod chat_stream;
mod cli;
mod connections;
mod dashboards;
mod db_faults;
mod edge;
mod edge_input;
mod errors;
mod external;
mod llm_mock;
mod login;
mod logout;
mod mcp;
mod metrics;
mod mfa;
mod ops;
mod policy;
mod production;
mod refresh;
mod restart;
mod routes;
mod saved_tests;
mod sealing;
mod secrets;
mod service_clients;
mod sessions;
mod sms;
mod step_up;
mod store;
mod structure;
mod telesign;
mod throttle;
mod tokens;
mod tool_log;
mod upstreams;
mod users;
