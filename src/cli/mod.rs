//! One module per command: each holds its flags and turns them into calls of the library crates.

pub mod append;
pub mod args;
pub mod config;
pub mod demo;
pub mod erase;
pub mod export;
pub mod hold;
pub mod keygen;
pub mod keyring;
pub mod lifecycle;
pub mod progress;
pub mod proof;
pub mod query;
pub mod relay;
pub mod restore;
pub mod serve;
pub mod subscribe;
pub mod summarize;
pub mod verify;
