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
            print!("{}", retention_by_tenant(&config));
            eprintln!("{}: valid", file.display());
            Ok(true)
        }
    }
}

/// Each routed tenant's effective retention (its log's, or the defaults), as TOML comments so the
/// output stays a valid config file.
fn retention_by_tenant(config: &Config) -> String {
    let logs = config.resolved_logs();
    let describe = |log: &str| {
        let retention = logs.iter().find(|candidate| candidate.name == log).and_then(|found| found.retention());
        match retention {
            Some(policy) => format!("{}, {} days", format!("{:?}", policy.mode).to_lowercase(), policy.days),
            None => "none (objects are not locked)".to_string(),
        }
    };
    let mut routes: Vec<(String, String)> = config.tenant_routes().into_iter().collect();
    routes.sort();
    let width = routes.iter().map(|(tenant, _)| tenant.len()).max().unwrap_or(0).max("every other tenant".len());
    let mut text = String::from("\n# effective retention by tenant:\n");
    for (tenant, log) in &routes {
        text.push_str(&format!("#   {tenant:<width$}  log {log}: {}\n", describe(log)));
    }
    text.push_str(&format!("#   {:<width$}  log default: {}\n", "every other tenant", describe("default")));
    text
}
