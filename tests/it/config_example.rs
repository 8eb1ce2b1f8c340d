//! The example config shipped in deploy/ parses and validates.

#[test]
fn deploy_example_config_is_valid() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/auditum.example.toml");
    let config = auditum_server::config::Config::from_file(&path).expect("example config is valid");
    assert_eq!(config.resolved_logs().len(), 2);
    assert_eq!(config.tenant_routes().get("bigco").map(String::as_str), Some("bigco"));
}
