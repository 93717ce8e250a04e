//! One module per subcommand; `main.rs` only parses and dispatches.

pub mod bench;
pub mod verify_golden;
