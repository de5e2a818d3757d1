//! End-to-end tests: the real `clawback` binary, run as a user would, on
//! real state dirs. One test binary for all of them keeps link time down.

mod agent;
mod agent_bedrock;
mod agent_providers;
mod agent_tools;
mod anthropic_oauth;
mod approvals;
mod auth_profiles;
mod channels_matrix;
mod channels_telegram;
mod channels_webhook;
mod cli;
mod config;
mod context_guard;
mod copilot;
mod crash;
mod cron;
mod exec_approvals;
mod gateway;
mod gemini_signatures;
mod http_hooks;
mod llm_server;
mod nodes;
mod openai_http;
mod openclaw_cli;
mod pairing;
mod protocol;
mod queue_modes;
mod scopes;
mod sessions;
mod support;
mod synapse;
mod telegram_server;
