//! Warden: one binary that lets a team use an AI agent and its tools safely.
//! See DESIGN.md beside the repository for the parts; arrows point down only:
//! `cli → app → http → state → services (chat → agent → tools ◄ mcp; auth; audit) → store, config, clock, ids`.
#![forbid(unsafe_code)]

pub mod agent;
pub mod analytics;
pub mod app;
pub mod audit;
pub mod auth;
pub mod bench;
pub mod chat;
pub mod cli;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod connections;
pub mod http;
pub mod http1;
pub mod ids;
pub mod limits;
pub mod mcp;
pub mod mfa;
pub mod private_files;
pub mod saved_tests;
pub mod seal;
pub mod sms;
pub mod state;
pub mod store;
pub mod telemetry;
pub mod tools;
pub mod web;
