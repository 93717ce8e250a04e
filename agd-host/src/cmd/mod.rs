//! One module per subcommand; `main.rs` only parses and dispatches.

pub mod bench;
pub mod common;
pub mod compare;
pub mod eval;
pub mod train;
pub mod verify_golden;
