//! deploy/ stays consistent with the server: every manifest parses, and the configuration each one
//! gives auditum (a TOML file plus `AUDITUM_*` variables) is accepted by the server's own config
//! loader, with ports, paths and probes matching it. `cfn-lint` checks the CloudFormation template
//! (scripts/test).

use auditum_server::config::Config;
use serde::Deserialize;
use serde_yaml::Value;
use std::path::{Path, PathBuf};

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy")
}

/// Every YAML document of a file.
fn documents(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap();
    serde_yaml::Deserializer::from_str(&text)
        .map(|document| Value::deserialize(document).unwrap_or_else(|error| panic!("{}: {error}", path.display())))
        .filter(|document| !document.is_null())
        .collect()
}

fn text<'a>(value: &'a Value, path: &[&str]) -> &'a str {
    let mut current = value;
    for key in path {
        current = &current[*key];
    }
    current.as_str().unwrap_or_else(|| panic!("{path:?} is not a string in {value:?}"))
}

/// Variables a manifest may set that are not config fields: they are read elsewhere.
const OTHER_VARIABLES: [&str; 3] = ["AUDITUM_LOG", "AUDITUM_CONFIG", "AUDITUM_API_KEY"];

/// The config auditum would run with: `toml` plus the manifest's `AUDITUM_*` variables, each of
/// which must be a config field (or one of the few read elsewhere).
fn effective_config(toml: &str, env: Vec<(String, String)>, source: &str) -> Config {
    for (name, _) in &env {
        let Some(field) = name.strip_prefix("AUDITUM_") else { continue };
        assert!(
            auditum_server::config::FIELD_NAMES.contains(&field.to_ascii_lowercase().as_str()) || OTHER_VARIABLES.contains(&name.as_str()),
            "{source}: {name} is not a config field"
        );
    }
    Config::from_toml_with_env(toml, source, env.into_iter()).unwrap_or_else(|error| panic!("{source}: {error}"))
}

fn find<'a>(documents: &'a [Value], kind: &str) -> &'a Value {
    documents.iter().find(|document| document["kind"].as_str() == Some(kind)).unwrap_or_else(|| panic!("no {kind}"))
}

#[test]
fn every_yaml_file_in_deploy_parses() {
    let mut seen = 0;
    for path in crate::common::files_under(&deploy_dir()) {
        if matches!(path.extension().and_then(|ext| ext.to_str()), Some("yaml" | "yml")) {
            assert!(!documents(&path).is_empty(), "{} is empty", path.display());
            seen += 1;
        }
    }
    assert!(seen >= 7, "kubernetes (5), compose, cloudformation: {seen}");
}

#[test]
fn kubernetes_manifests_give_the_server_a_valid_config_and_matching_probes() {
    let dir = deploy_dir().join("kubernetes");
    let mut all = Vec::new();
    for name in ["configmap.yaml", "secret.yaml", "service.yaml", "statefulset.yaml"] {
        all.extend(documents(&dir.join(name)));
    }
    let kustomization = documents(&dir.join("kustomization.yaml"));
    let listed: Vec<&str> = kustomization[0]["resources"].as_sequence().unwrap().iter().filter_map(Value::as_str).collect();
    assert_eq!(listed, ["configmap.yaml", "secret.yaml", "service.yaml", "statefulset.yaml"]);

    let config_map = find(&all, "ConfigMap");
    let secret = find(&all, "Secret");
    let stateful_set = find(&all, "StatefulSet");
    let pod = &stateful_set["spec"]["template"]["spec"];
    let container = &pod["containers"][0];

    // The config file is the ConfigMap key the container reads.
    let args: Vec<&str> = container["args"].as_sequence().unwrap().iter().filter_map(Value::as_str).collect();
    let config_path = args[args.iter().position(|arg| *arg == "--config").unwrap() + 1];
    let config_mount = container["volumeMounts"].as_sequence().unwrap().iter().find(|mount| mount["name"] == "config").unwrap();
    let file_name = config_path.strip_prefix(&format!("{}/", text(config_mount, &["mountPath"]))).expect("config under the mount");
    let config_volume = pod["volumes"].as_sequence().unwrap().iter().find(|volume| volume["name"] == "config").unwrap();
    assert_eq!(text(config_volume, &["configMap", "name"]), text(config_map, &["metadata", "name"]));
    let toml = text(config_map, &["data", file_name]);

    // Variables: the Secret (envFrom) and the container's env.
    let env_from = container["envFrom"].as_sequence().unwrap();
    assert_eq!(text(&env_from[0], &["secretRef", "name"]), text(secret, &["metadata", "name"]));
    let mut env: Vec<(String, String)> = secret["stringData"]
        .as_mapping()
        .unwrap()
        .iter()
        .map(|(name, value)| (name.as_str().unwrap().to_string(), value.as_str().unwrap().to_string()))
        .collect();
    for variable in container["env"].as_sequence().into_iter().flatten() {
        env.push((text(variable, &["name"]).to_string(), text(variable, &["value"]).to_string()));
    }
    let config = effective_config(toml, env, "kubernetes manifests");
    assert!(!config.api_keys.is_empty(), "a non-loopback listener needs api keys");
    assert!(config.retention_mode.is_some() && config.store.as_deref().is_some_and(|store| store.starts_with("s3://")));

    // Ports, probes and the WAL volume agree with the config.
    let port = |name: &str| {
        container["ports"].as_sequence().unwrap().iter().find(|port| port["name"] == name).unwrap()["containerPort"].as_u64().unwrap()
    };
    assert_eq!(port("grpc"), u64::from(config.listen.port()));
    assert_eq!(port("metrics"), u64::from(config.metrics_listen.unwrap().port()));
    for probe in ["startupProbe", "livenessProbe", "readinessProbe"] {
        assert_eq!(container[probe]["grpc"]["port"].as_u64(), Some(u64::from(config.listen.port())), "{probe}");
    }
    assert_eq!(text(container, &["readinessProbe", "grpc", "service"]), auditum_server::log_health_service("default"));
    let wal_mount = container["volumeMounts"].as_sequence().unwrap().iter().find(|mount| mount["name"] == "wal").unwrap();
    assert_eq!(Path::new(text(wal_mount, &["mountPath"])), config.data_dir);
    let claim = &stateful_set["spec"]["volumeClaimTemplates"][0];
    assert_eq!(text(claim, &["metadata", "name"]), "wal");
    assert_eq!(stateful_set["spec"]["replicas"].as_u64(), Some(1), "one writer per log");
    let grace = pod["terminationGracePeriodSeconds"].as_u64().unwrap();
    assert!(grace > config.shutdown_seal_timeout.as_secs(), "SIGTERM leaves time to seal");

    // The Service routes to the pod's named ports.
    let service = all.iter().find(|document| document["kind"] == "Service" && document["metadata"]["name"] == "auditum").unwrap();
    for service_port in service["spec"]["ports"].as_sequence().unwrap() {
        let target = text(service_port, &["targetPort"]);
        assert!(["grpc", "metrics"].contains(&target));
    }
    assert_eq!(service["spec"]["selector"], stateful_set["spec"]["template"]["metadata"]["labels"]);
}

#[test]
fn compose_gives_the_server_a_valid_config_and_creates_a_locked_bucket() {
    let compose = &documents(&deploy_dir().join("compose/docker-compose.yml"))[0];
    let auditum = &compose["services"]["auditum"];
    let config_target = text(&auditum["configs"][0], &["target"]);
    let command: Vec<&str> = auditum["command"].as_sequence().unwrap().iter().filter_map(Value::as_str).collect();
    assert_eq!(command[command.iter().position(|arg| *arg == "--config").unwrap() + 1], config_target);
    let config_name = text(&auditum["configs"][0], &["source"]);
    let toml = text(&compose["configs"][config_name], &["content"]);
    let env: Vec<(String, String)> = auditum["environment"]
        .as_mapping()
        .unwrap()
        .iter()
        .map(|(name, value)| (name.as_str().unwrap().to_string(), value.as_str().unwrap().to_string()))
        .collect();
    let config = effective_config(toml, env.clone(), "docker-compose auditum service");
    let store = config.store.clone().unwrap();
    let bucket = store.trim_start_matches("s3://").split('/').next().unwrap();
    let create = compose["services"]["create-bucket"]["command"][0].as_str().unwrap();
    assert!(create.contains(&format!("--with-lock local/{bucket}")), "the bucket is created with Object Lock: {create}");
    assert!(config.retention_mode.is_some(), "objects are written locked");
    let endpoint = config.s3_endpoint.clone().unwrap();
    assert!(endpoint.contains("//s3:"), "the endpoint is the s3 service: {endpoint}");
    let ports: Vec<&str> = auditum["ports"].as_sequence().unwrap().iter().filter_map(Value::as_str).collect();
    assert!(ports.contains(&format!("127.0.0.1:{0}:{0}", config.listen.port()).as_str()));
}

#[test]
fn the_dockerfile_sets_only_config_fields() {
    let dockerfile = std::fs::read_to_string(deploy_dir().join("Dockerfile")).unwrap();
    let env_line = dockerfile.lines().find(|line| line.starts_with("ENV ")).unwrap();
    let env: Vec<(String, String)> = env_line
        .trim_start_matches("ENV ")
        .split_whitespace()
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap();
            (name.to_string(), value.to_string())
        })
        .collect();
    // With the image's variables and one API key (the listener is not loopback), the config is valid.
    let key = "[[api_keys]]\nid = \"k\"\nsecret_sha256 = \"".to_string() + &"ab".repeat(32) + "\"\ntenant = \"*\"\nscopes = [\"admin\"]\n";
    let config = effective_config(&key, env.clone(), "Dockerfile ENV");
    assert_eq!(config.data_dir, Path::new("/var/lib/auditum"));
    // Without a key, the image's non-loopback listener is refused, naming api_keys.
    let error = Config::from_toml_with_env("", "Dockerfile ENV", env.into_iter()).unwrap_err().to_string();
    assert!(error.contains("api_keys"), "{error}");
}

#[test]
fn the_cloudformation_template_locks_versions_tiers_and_denies_deletes() {
    let template = &documents(&deploy_dir().join("aws/archive-bucket.yaml"))[0];
    let bucket = &template["Resources"]["ArchiveBucket"];
    assert_eq!(bucket["Type"], "AWS::S3::Bucket");
    assert_eq!(bucket["DeletionPolicy"], "Retain");
    let properties = &bucket["Properties"];
    assert_eq!(properties["ObjectLockEnabled"], Value::Bool(true));
    assert_eq!(properties["ObjectLockConfiguration"]["Rule"]["DefaultRetention"]["Mode"], "COMPLIANCE");
    assert_eq!(properties["VersioningConfiguration"]["Status"], "Enabled");
    // The lifecycle rules are `auditum lifecycle plan`'s, as parameters: scoped to one log's
    // batches (the ledger and checkpoints stay in place). serde_yaml indexing looks through the
    // tags (!If, !Ref, !Sub), so [1] is the "then" branch of each !If.
    let parameters = &template["Parameters"];
    assert_eq!(parameters["ArchiveAfterDays"]["Default"].as_u64(), Some(90));
    assert_eq!(parameters["ArchiveStorageClass"]["Default"], "GLACIER_IR");
    assert_eq!(parameters["ExpireAfterDays"]["Default"].as_u64(), Some(0), "never expire unless asked");
    let rules = properties["LifecycleConfiguration"][1]["Rules"].as_sequence().unwrap();
    let archive = &rules[0][1];
    assert_eq!(archive["Id"].as_str(), Some("auditum:${StorePrefix}/${LogName}/batches/:archive"));
    assert_eq!(archive["Transitions"][0]["StorageClass"].as_str(), Some("ArchiveStorageClass"));
    assert_eq!(archive["Transitions"][0]["TransitionInDays"].as_str(), Some("ArchiveAfterDays"));
    let expire = &rules[1][1];
    assert_eq!(expire["Id"].as_str(), Some("auditum:${StorePrefix}/${LogName}/batches/:expire"));
    assert_eq!(expire["ExpirationInDays"].as_str(), Some("ExpireAfterDays"));
    assert!(rules.iter().all(|rule| rule[1]["Prefix"].as_str() == Some("${StorePrefix}/${LogName}/batches/")), "{rules:?}");
    let statements = template["Resources"]["ArchiveBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"].as_sequence().unwrap();
    let denies: Vec<&Value> = statements.iter().filter(|statement| statement["Effect"] == "Deny").collect();
    let denied_actions: Vec<&str> =
        denies.iter().flat_map(|statement| statement["Action"].as_sequence().into_iter().flatten()).filter_map(Value::as_str).collect();
    for action in ["s3:DeleteObject", "s3:DeleteObjectVersion"] {
        assert!(denied_actions.contains(&action), "{action} denied");
    }
    assert!(denies.iter().any(|statement| statement["Condition"]["Bool"]["aws:SecureTransport"] == "false"), "non-TLS access denied");
    // What auditum needs is allowed to its role, and nothing that deletes.
    let allowed: Vec<&str> = statements
        .iter()
        .filter(|statement| statement["Effect"] == "Allow")
        .flat_map(|statement| statement["Action"].as_sequence().into_iter().flatten())
        .filter_map(Value::as_str)
        .collect();
    for action in [
        "s3:PutObject",
        "s3:GetObject",
        "s3:GetObjectVersion",
        "s3:ListBucket",
        "s3:PutObjectLegalHold",
        "s3:RestoreObject",
        "s3:GetLifecycleConfiguration",
    ] {
        assert!(allowed.contains(&action), "{action} allowed");
    }
    assert!(!allowed.iter().any(|action| action.contains("Delete")));
}
