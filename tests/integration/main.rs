//! End-to-end tests: the real `clawback` binary, run as a user would, on
//! real state dirs. One test binary for all of them keeps link time down.

mod agent;
mod agent_bedrock;
mod agent_providers;
mod agent_tools;
mod approvals;
mod auth_profiles;
mod cli;
mod config;
mod copilot;
mod crash;
mod cron;
mod exec_approvals;
mod gateway;
mod http_hooks;
mod llm_server;
mod merkle;
mod nodes;
mod openai_http;
mod openclaw_cli;
mod pairing;
mod protocol;
mod queue_modes;
mod scopes;
mod sessions;
mod support;
