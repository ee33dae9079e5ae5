//! MCP: the gateway at `/mcp`, serving the tool catalog to MCP clients with the caller's permissions, and the
//! upstream servers feeding the catalog (`upstream`, managed at run time through `servers`).
//!
//! The HTTP layer authenticates the caller and puts its `Principal` in the request extensions; rmcp hands the
//! request parts to this handler, which lists and calls only the tools that principal may use, through the
//! catalog's one outside-a-chat path (so calls are checked and logged like the REST execute route's). The
//! caller's token never leaves this process. This adapter is the only place in mcp that reads `auth`.

pub mod config;
mod connection;
pub mod gateway;
mod http_call;
pub mod sealing;
pub mod servers;
pub mod store;
mod tool;
pub mod upstream;

pub use gateway::Gateway;
