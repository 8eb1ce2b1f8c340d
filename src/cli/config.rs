//! `auditum config check`: the effective configuration of a file, with AUDITUM_* overrides.

use auditum_server::config::Config;
use clap::Subcommand;
use std::path::PathBuf;

#[derive(Subcommand)]
pub enum ConfigCommand {
    /// Validate a config file (with AUDITUM_* overrides) and print the effective configuration.
    Check {
        /// The TOML file.
        file: PathBuf,
    },
}

pub fn run(command: ConfigCommand) -> Result<bool, String> {
    match command {
        ConfigCommand::Check { file } => {
            let config = Config::from_file(&file).map_err(|error| error.to_string())?;
            print!("{}", config.to_toml());
            eprintln!("{}: valid", file.display());
            Ok(true)
        }
    }
}
