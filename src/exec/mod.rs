//! Running shell commands for agents, and deciding whether they may run.
//!
//! `canonical` reduces a command to the simple commands it would run (what
//! approvals, grants and allowlists are bound to); `policy` is OpenClaw's
//! exec-approvals policy as recorded in the log, and the decision it gives
//! for one command. Both are pure; the exec tool (`agent::tools::exec`)
//! and the approval RPCs call them.

pub mod canonical;

pub mod policy;
