//! One module per subcommand; `main.rs` only parses and dispatches.

pub mod verify_golden;
