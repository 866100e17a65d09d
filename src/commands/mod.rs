//! What each subcommand does, kept apart from argument parsing.

pub mod license;
pub mod ops;
pub mod run;
pub mod sweep;
pub mod token;
