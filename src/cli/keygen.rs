//! `auditum keygen`: checkpoint signing keys and API keys.

use auditum_engine::auth::{Scope, check_api_key_identity, generate_secret, sha256_hex};
use auditum_format::checkpoint::Signer;
use clap::{Args, Subcommand};
use std::path::PathBuf;

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct KeygenArgs {
    /// `api-key` makes an API key; without it, a checkpoint signing key.
    #[command(subcommand)]
    kind: Option<KeygenKind>,
    /// Key name: the log's checkpoint origin.
    #[arg(long, default_value = "auditum/default")]
    origin: String,
    /// Write the private key here (mode 0600) and the verifier key beside it (.vkey).
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Subcommand)]
enum KeygenKind {
    /// A new API key: prints its secret once, and the config lines (with only its SHA-256).
    ApiKey {
        /// Key id ([a-z0-9_-], 1-64): the actor of its meta-audit events.
        #[arg(long)]
        id: String,
        /// The tenant it may write and read, or `*` for a platform key.
        #[arg(long)]
        tenant: String,
        /// append, query, export, proof, admin, meta_audit_forward; repeat or separate with commas.
        #[arg(long = "scope", value_delimiter = ',', required = true)]
        scopes: Vec<String>,
    },
}

pub fn run(args: KeygenArgs) -> Result<bool, String> {
    if let Some(KeygenKind::ApiKey { id, tenant, scopes }) = args.kind {
        return api_key(&id, &tenant, &scopes).map(|()| true);
    }
    let signer = Signer::generate(&args.origin).map_err(|error| error.to_string())?;
    match &args.out {
        Some(path) => {
            signer.write_files(path).map_err(|error| format!("{}: {error}", path.display()))?;
            eprintln!("wrote {} (private, mode 0600) and {}", path.display(), path.with_extension("vkey").display());
        }
        None => println!("{}", signer.to_private_key_text()),
    }
    println!("{}", signer.verifier_key());
    Ok(true)
}

fn api_key(id: &str, tenant: &str, scopes: &[String]) -> Result<(), String> {
    check_api_key_identity(id, tenant).map_err(|(flag, reason)| format!("--{flag}: {reason}"))?;
    let scopes = scopes
        .iter()
        .map(|scope| Scope::parse(scope.trim()).ok_or_else(|| format!("--scope: {scope:?} is not append, query, export, proof or admin")))
        .collect::<Result<Vec<_>, _>>()?;
    let secret = generate_secret(id);
    let quoted = |text: &str| toml::Value::String(text.to_string()).to_string();
    let scope_list = scopes.iter().map(|scope| quoted(scope.as_str())).collect::<Vec<_>>().join(", ");
    eprintln!("the secret is shown once; give it to the client (authorization: Bearer <secret>) and keep only its hash:");
    println!("{secret}");
    eprintln!("\nadd to the server's config:");
    println!(
        "\n[[api_keys]]\nid = {}\nsecret_sha256 = {}\ntenant = {}\nscopes = [{scope_list}]",
        quoted(id),
        quoted(&sha256_hex(&secret)),
        quoted(tenant)
    );
    Ok(())
}
