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

/// Fields whose value names a variable holding a secret (read by the server, not a field).
const VARIABLE_NAMING_FIELDS: [&str; 2] = ["meta_audit_writer_key_env", "kek_env"];

/// A top-level string field as `toml` and the `AUDITUM_*` variables give it (a variable wins),
/// read without the loader: what the manifests name before the config can load (a file's path,
/// a variable's name).
fn raw_field(toml: &str, env: &[(String, String)], field: &str) -> Option<String> {
    let variable = format!("AUDITUM_{}", field.to_ascii_uppercase());
    if let Some((_, value)) = env.iter().find(|(name, _)| *name == variable) {
        return Some(value.clone());
    }
    let table: toml::Table = toml.parse().unwrap_or_else(|error| panic!("{error}"));
    table.get(field).and_then(|value| value.as_str()).map(str::to_string)
}

/// The config auditum would run with: `toml` plus the manifest's `AUDITUM_*` variables, each of
/// which must be a config field, one of the few read elsewhere, or a variable a field names (the
/// secret of `meta_audit_writer_key_env`).
fn effective_config(toml: &str, env: Vec<(String, String)>, source: &str) -> Config {
    let named: Vec<String> = VARIABLE_NAMING_FIELDS.iter().filter_map(|field| raw_field(toml, &env, field)).collect();
    for (name, _) in &env {
        let Some(field) = name.strip_prefix("AUDITUM_") else { continue };
        assert!(
            auditum_server::config::FIELD_NAMES.contains(&field.to_ascii_lowercase().as_str())
                || OTHER_VARIABLES.contains(&name.as_str())
                || named.contains(name),
            "{source}: {name} is not a config field"
        );
    }
    Config::from_toml_with_env(toml, source, env.into_iter()).unwrap_or_else(|error| panic!("{source}: {error}"))
}

/// `toml` with `trusted_key` set to `key` (the writer's verifier key, or a file holding it).
fn with_trusted_key(toml: &str, key: &str) -> String {
    let mut table: toml::Table = toml.parse().unwrap();
    table.insert("trusted_key".into(), toml::Value::String(key.into()));
    table.to_string()
}

/// A verifier key of the default log, as a writer's keys/default.vkey holds it.
fn writer_verifier_key() -> String {
    auditum_format::checkpoint::Signer::generate("auditum/default").unwrap().verifier_key()
}

/// Whether a label selector (a `key: value` mapping) selects pods labelled `labels`.
fn selects(selector: &Value, labels: &Value) -> bool {
    let selector = selector.as_mapping().unwrap();
    !selector.is_empty() && selector.iter().all(|(key, value)| labels.get(key) == Some(value))
}

fn strings(value: &Value) -> Vec<&str> {
    value.as_sequence().unwrap().iter().filter_map(Value::as_str).collect()
}

/// `(name, value)` of a string-keyed mapping (a Secret's stringData, a compose environment).
fn pairs(value: &Value) -> Vec<(String, String)> {
    value
        .as_mapping()
        .unwrap_or_else(|| panic!("not a mapping: {value:?}"))
        .iter()
        .map(|(name, value)| (name.as_str().unwrap().to_string(), value.as_str().unwrap().to_string()))
        .collect()
}

fn find<'a>(documents: &'a [Value], kind: &str, name: &str) -> &'a Value {
    documents
        .iter()
        .find(|document| document["kind"].as_str() == Some(kind) && document["metadata"]["name"].as_str() == Some(name))
        .unwrap_or_else(|| panic!("no {kind} {name}"))
}

/// The kubernetes manifests: every file kustomization.yaml lists, in its order.
const KUBERNETES_FILES: [&str; 7] = [
    "configmap.yaml",
    "secret.yaml",
    "service.yaml",
    "statefulset.yaml",
    "reader-service.yaml",
    "reader-deployment.yaml",
    "reader-hpa.yaml",
];

fn kubernetes_documents() -> Vec<Value> {
    let dir = deploy_dir().join("kubernetes");
    let kustomization = documents(&dir.join("kustomization.yaml"));
    assert_eq!(strings(&kustomization[0]["resources"]), KUBERNETES_FILES, "kustomization.yaml lists every manifest");
    KUBERNETES_FILES.iter().flat_map(|name| documents(&dir.join(name))).collect()
}

/// What a pod's container is given: its config file (the text of the ConfigMap key its `--config`
/// names, and where that ConfigMap is mounted) and its variables (Secrets by `envFrom`, `env`
/// values and `secretKeyRef`s resolved).
struct PodConfig<'a> {
    toml: String,
    config_map: &'a Value,
    config_mount: String,
    env: Vec<(String, String)>,
}

fn pod_config<'a>(all: &'a [Value], pod: &'a Value) -> PodConfig<'a> {
    let container = &pod["containers"][0];
    let args = strings(&container["args"]);
    let config_path = args[args.iter().position(|arg| *arg == "--config").unwrap() + 1];
    let config_mount = container["volumeMounts"].as_sequence().unwrap().iter().find(|mount| mount["name"] == "config").unwrap();
    let config_mount = text(config_mount, &["mountPath"]).to_string();
    let file_name = config_path.strip_prefix(&format!("{config_mount}/")).expect("config under the mount");
    let config_volume = pod["volumes"].as_sequence().unwrap().iter().find(|volume| volume["name"] == "config").unwrap();
    let config_map = find(all, "ConfigMap", text(config_volume, &["configMap", "name"]));
    let toml = text(config_map, &["data", file_name]).to_string();
    let secret_data = |name: &str| pairs(&find(all, "Secret", name)["stringData"]);
    let mut env = Vec::new();
    for source in container["envFrom"].as_sequence().into_iter().flatten() {
        env.extend(secret_data(text(source, &["secretRef", "name"])));
    }
    for variable in container["env"].as_sequence().into_iter().flatten() {
        let name = text(variable, &["name"]).to_string();
        let value = match variable["value"].as_str() {
            Some(value) => value.to_string(),
            None => {
                let reference = &variable["valueFrom"]["secretKeyRef"];
                let key = text(reference, &["key"]);
                let data = secret_data(text(reference, &["name"]));
                data.into_iter().find(|(name, _)| name == key).unwrap_or_else(|| panic!("{name}: no key {key} in its Secret")).1
            }
        };
        env.push((name, value));
    }
    PodConfig { toml, config_map, config_mount, env }
}

fn container_port(container: &Value, name: &str) -> u64 {
    container["ports"].as_sequence().unwrap().iter().find(|port| port["name"] == name).unwrap()["containerPort"].as_u64().unwrap()
}

#[test]
fn kubernetes_manifests_give_the_server_a_valid_config_and_matching_probes() {
    let all = kubernetes_documents();
    let stateful_set = find(&all, "StatefulSet", "auditum");
    let pod = &stateful_set["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    let given = pod_config(&all, pod);
    assert_eq!(text(&container["envFrom"][0], &["secretRef", "name"]), "auditum-api-keys");
    let config = effective_config(&given.toml, given.env, "kubernetes manifests");
    assert!(!config.read_only);
    assert!(!config.api_keys.is_empty(), "a non-loopback listener needs api keys");
    assert!(config.retention_mode.is_some() && config.store.as_deref().is_some_and(|store| store.starts_with("s3://")));
    // The readers forward their meta-audit records under a key of their own, which can do nothing else.
    let forward: Vec<_> =
        config.api_keys.iter().filter(|key| key.scopes.iter().any(|scope| scope.as_str() == "meta_audit_forward")).collect();
    assert!(forward.len() == 1 && forward[0].tenant == "*" && forward[0].scopes.len() == 1, "{forward:?}");

    // Ports, probes and the WAL volume agree with the config.
    assert_eq!(container_port(container, "grpc"), u64::from(config.listen.port()));
    assert_eq!(container_port(container, "metrics"), u64::from(config.metrics_listen.unwrap().port()));
    assert_eq!(container_port(container, "http"), u64::from(config.http_listen.unwrap().port()), "the console's port");
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
    let service = find(&all, "Service", "auditum");
    for service_port in service["spec"]["ports"].as_sequence().unwrap() {
        let target = text(service_port, &["targetPort"]);
        assert!(["grpc", "metrics", "http"].contains(&target), "{target}");
    }
    assert_eq!(service["spec"]["selector"], stateful_set["spec"]["template"]["metadata"]["labels"]);
}

#[test]
fn kubernetes_readers_follow_the_writers_store_under_its_pinned_key_and_scale() {
    let all = kubernetes_documents();
    let writer_pod = &find(&all, "StatefulSet", "auditum")["spec"]["template"]["spec"];
    let writer_given = pod_config(&all, writer_pod);
    let writer = effective_config(&writer_given.toml, writer_given.env.clone(), "kubernetes writer");
    let deployment = find(&all, "Deployment", "auditum-reader");
    let pod = &deployment["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    assert_eq!(container["image"], writer_pod["containers"][0]["image"], "the writer's image");
    let given = pod_config(&all, pod);

    // trusted_key is a file of the mounted ConfigMap, whose value the operator replaces with the
    // writer's keys/default.vkey; the placeholder is refused, the writer's key accepted.
    let trusted = raw_field(&given.toml, &given.env, "trusted_key").expect("a reader pins the writer's key");
    let key_file = trusted.strip_prefix(&format!("{}/", given.config_mount)).expect("trusted_key is a file of the config mount");
    assert_eq!(text(given.config_map, &["data", key_file]), "REPLACE_WITH_WRITER_VKEY", "an obvious placeholder");
    let mounted = tempfile::tempdir().unwrap();
    let key_path = mounted.path().join(key_file);
    std::fs::write(&key_path, "REPLACE_WITH_WRITER_VKEY\n").unwrap();
    let placeholder =
        Config::from_toml_with_env(&with_trusted_key(&given.toml, key_path.to_str().unwrap()), "reader", given.env.clone().into_iter());
    assert!(placeholder.unwrap_err().to_string().contains("trusted_key"), "a reader does not start on the placeholder");
    std::fs::write(&key_path, format!("{}\n", writer_verifier_key())).unwrap();
    let config = effective_config(&with_trusted_key(&given.toml, key_path.to_str().unwrap()), given.env.clone(), "kubernetes reader");
    assert!(config.read_only);
    assert_eq!(config.store, writer.store, "the writer's store");
    assert_eq!(config.s3_region, writer.s3_region);
    assert!(!config.api_keys.is_empty(), "a non-loopback listener needs api keys");

    // Every read is recorded by the writer: the reader forwards to the writer's Service, with the
    // secret of a key the writer gives meta_audit_forward.
    let writer_service = find(&all, "Service", "auditum");
    let writer_grpc = writer_service["spec"]["ports"].as_sequence().unwrap().iter().find(|port| port["name"] == "grpc").unwrap();
    assert!(config.meta_audit);
    assert_eq!(config.meta_audit_writer, Some(format!("http://auditum:{}", writer_grpc["port"].as_u64().unwrap())));
    let key_variable = config.meta_audit_writer_key_env.clone().expect("meta_audit_writer_key_env");
    assert!(given.env.iter().any(|(name, _)| *name == key_variable), "{key_variable} is set");
    assert!(!writer_given.env.iter().any(|(name, _)| *name == key_variable), "the secret is the readers' only");
    assert!(
        writer.api_keys.iter().any(|key| key.scopes.iter().map(|scope| scope.as_str()).eq(["meta_audit_forward"])),
        "the writer has the readers' forwarding key"
    );

    // Ports and probes: the config's listener; ready while it serves queries.
    assert_eq!(container_port(container, "grpc"), u64::from(config.listen.port()));
    assert_eq!(container_port(container, "metrics"), u64::from(config.metrics_listen.unwrap().port()));
    assert_eq!(container_port(container, "http"), u64::from(config.http_listen.unwrap().port()), "the console's port");
    for probe in ["startupProbe", "livenessProbe", "readinessProbe"] {
        assert_eq!(container[probe]["grpc"]["port"].as_u64(), Some(u64::from(config.listen.port())), "{probe}");
    }
    assert_eq!(text(container, &["readinessProbe", "grpc", "service"]), "auditum.v1.QueryService");

    // No persistent state: the data dir is an emptyDir; the root filesystem is read-only.
    let data_mount = container["volumeMounts"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|mount| Path::new(text(mount, &["mountPath"])) == config.data_dir)
        .expect("the data dir is mounted");
    let data_volume = pod["volumes"].as_sequence().unwrap().iter().find(|volume| volume["name"] == data_mount["name"]).expect("its volume");
    assert!(data_volume.get("emptyDir").is_some(), "{data_volume:?}");
    assert!(deployment["spec"].get("volumeClaimTemplates").is_none());
    assert_eq!(container["securityContext"]["readOnlyRootFilesystem"], Value::Bool(true));
    assert_eq!(pod["securityContext"]["runAsNonRoot"], Value::Bool(true));

    // The HPA scales this Deployment on CPU, which the container requests.
    let hpa = find(&all, "HorizontalPodAutoscaler", "auditum-reader");
    assert_eq!(text(hpa, &["apiVersion"]), "autoscaling/v2");
    let target = &hpa["spec"]["scaleTargetRef"];
    assert_eq!((text(target, &["kind"]), text(target, &["name"])), ("Deployment", text(deployment, &["metadata", "name"])));
    assert_eq!(text(target, &["apiVersion"]), text(deployment, &["apiVersion"]));
    assert_eq!(text(&hpa["spec"]["metrics"][0], &["resource", "name"]), "cpu");
    assert!(container["resources"]["requests"].get("cpu").is_some(), "CPU utilisation is relative to the request");
    let (min, max) = (hpa["spec"]["minReplicas"].as_u64().unwrap(), hpa["spec"]["maxReplicas"].as_u64().unwrap());
    assert!(min >= 2 && max > min && deployment["spec"]["replicas"].as_u64() == Some(min), "{min}..{max}");
}

#[test]
fn kubernetes_services_select_either_the_writer_or_the_readers() {
    let all = kubernetes_documents();
    let writer = find(&all, "StatefulSet", "auditum");
    let reader = find(&all, "Deployment", "auditum-reader");
    let writer_labels = &writer["spec"]["template"]["metadata"]["labels"];
    let reader_labels = &reader["spec"]["template"]["metadata"]["labels"];
    // Each controller owns only its pods.
    assert!(selects(&writer["spec"]["selector"]["matchLabels"], writer_labels));
    assert!(!selects(&writer["spec"]["selector"]["matchLabels"], reader_labels), "the StatefulSet's selector matches readers");
    assert!(selects(&reader["spec"]["selector"]["matchLabels"], reader_labels));
    assert!(!selects(&reader["spec"]["selector"]["matchLabels"], writer_labels), "the Deployment's selector matches the writer");
    let services: Vec<&Value> = all.iter().filter(|document| document["kind"] == "Service").collect();
    for name in ["auditum", "auditum-headless"] {
        let selector = &services.iter().find(|service| service["metadata"]["name"] == name).unwrap()["spec"]["selector"];
        assert!(selects(selector, writer_labels) && !selects(selector, reader_labels), "{name} routes to the writer only");
    }
    for name in ["auditum-reader", "auditum-reader-headless"] {
        let service = services.iter().find(|service| service["metadata"]["name"] == name).unwrap();
        let selector = &service["spec"]["selector"];
        assert!(selects(selector, reader_labels) && !selects(selector, writer_labels), "{name} routes to the readers only");
        for port in service["spec"]["ports"].as_sequence().unwrap() {
            let target = text(port, &["targetPort"]);
            assert!(
                reader["spec"]["template"]["spec"]["containers"][0]["ports"].as_sequence().unwrap().iter().any(|own| own["name"] == target),
                "{name}: {target}"
            );
        }
    }
    assert_eq!(services.len(), 4, "writer and readers, each with a headless Service");
}

/// A compose service's config file (the `configs` entry its `--config` names) and environment.
fn compose_config<'a>(compose: &'a Value, service: &str) -> (&'a str, Vec<(String, String)>) {
    let service = &compose["services"][service];
    let config_target = text(&service["configs"][0], &["target"]);
    let command = strings(&service["command"]);
    assert_eq!(command[command.iter().position(|arg| *arg == "--config").unwrap() + 1], config_target);
    let config_name = text(&service["configs"][0], &["source"]);
    (text(&compose["configs"][config_name], &["content"]), pairs(&service["environment"]))
}

/// `(volume, mount path)` of a compose service's named volumes.
fn compose_volumes(service: &Value) -> Vec<(String, String)> {
    strings(&service["volumes"])
        .into_iter()
        .map(|volume| {
            let mut parts = volume.split(':');
            (parts.next().unwrap().to_string(), parts.next().unwrap().to_string())
        })
        .collect()
}

#[test]
fn compose_gives_the_server_a_valid_config_and_creates_a_locked_bucket() {
    let compose = &documents(&deploy_dir().join("compose/docker-compose.yml"))[0];
    let auditum = &compose["services"]["auditum"];
    let (toml, env) = compose_config(compose, "auditum");
    let config = effective_config(toml, env, "docker-compose auditum service");
    assert!(!config.read_only);
    let store = config.store.clone().unwrap();
    let bucket = store.trim_start_matches("s3://").split('/').next().unwrap();
    let create = compose["services"]["create-bucket"]["command"][0].as_str().unwrap();
    assert!(create.contains(&format!("--with-lock local/{bucket}")), "the bucket is created with Object Lock: {create}");
    assert!(config.retention_mode.is_some(), "objects are written locked");
    let endpoint = config.s3_endpoint.clone().unwrap();
    assert!(endpoint.contains("//s3:"), "the endpoint is the s3 service: {endpoint}");
    let ports = strings(&auditum["ports"]);
    assert!(ports.contains(&format!("127.0.0.1:{0}:{0}", config.listen.port()).as_str()));
}

#[test]
fn compose_readers_follow_the_writers_bucket_under_the_key_keygen_made() {
    let compose = &documents(&deploy_dir().join("compose/docker-compose.yml"))[0];
    let (writer_toml, writer_env) = compose_config(compose, "auditum");
    let writer = effective_config(writer_toml, writer_env, "docker-compose auditum service");
    let writer_service = &compose["services"]["auditum"];

    // The key: keygen writes the writer's signing key where the writer reads it
    // (<data_dir>/keys/default.key, in the writer's data volume), and copies the verifier key
    // keygen writes beside it into a volume of the readers.
    let keygen = &compose["services"]["auditum-keygen"];
    let script = keygen["command"][0].as_str().unwrap();
    let (data_volume, _) = compose_volumes(writer_service)
        .into_iter()
        .find(|(_, path)| Path::new(path) == writer.data_dir)
        .expect("the writer's data dir is a volume");
    let keygen_volumes = compose_volumes(keygen);
    let keygen_data = &keygen_volumes.iter().find(|(volume, _)| *volume == data_volume).expect("keygen mounts the writer's data").1;
    let key_path = auditum_format::checkpoint::signing_key_path(Path::new(keygen_data), "default");
    assert!(script.contains(&format!("--out {}", key_path.display())), "keygen writes the writer's key: {script}");
    assert!(script.contains("--origin auditum/default"), "{script}");
    let written_vkey = key_path.with_extension("vkey");

    let mut ports = strings(&writer_service["ports"]);
    for reader in ["auditum-reader-1", "auditum-reader-2"] {
        let service = &compose["services"][reader];
        let (toml, env) = compose_config(compose, reader);
        assert_eq!(service["build"], writer_service["build"], "{reader}: the writer's image");
        let trusted = raw_field(toml, &env, "trusted_key").expect("a reader pins the writer's key");
        let trusted = Path::new(&trusted);
        let (trust_volume, trust_dir) = compose_volumes(service)
            .into_iter()
            .find(|(_, path)| trusted.parent() == Some(Path::new(path.as_str())))
            .unwrap_or_else(|| panic!("{reader}: trusted_key {} is on no volume", trusted.display()));
        assert!(!compose_volumes(service).iter().any(|(volume, _)| *volume == data_volume), "{reader} never sees the signing key");
        let keygen_trust = &keygen_volumes.iter().find(|(volume, _)| *volume == trust_volume).expect("keygen mounts it").1;
        let copied = Path::new(keygen_trust).join(trusted.strip_prefix(&trust_dir).unwrap());
        assert!(
            script.contains(&format!("cp {} {}", written_vkey.display(), copied.display())),
            "{reader}: keygen copies the verifier key to {}: {script}",
            copied.display()
        );
        for dependency in ["auditum-keygen", "create-bucket"] {
            assert_eq!(text(&service["depends_on"][dependency], &["condition"]), "service_completed_successfully", "{reader}");
        }

        // The key is a file at run time: here, a generated key in its place.
        let config = effective_config(&with_trusted_key(toml, &writer_verifier_key()), env.clone(), reader);
        assert!(config.read_only, "{reader}");
        assert_eq!(config.store, writer.store, "{reader}: the writer's bucket");
        assert_eq!(config.s3_endpoint, writer.s3_endpoint, "{reader}");
        assert!(!config.api_keys.is_empty(), "{reader}: a non-loopback listener needs api keys");

        // Reads are recorded by the writer, under the key it gives meta_audit_forward.
        assert!(config.meta_audit, "{reader}");
        assert_eq!(config.meta_audit_writer, Some(format!("http://auditum:{}", writer.listen.port())), "{reader}");
        let key_variable = config.meta_audit_writer_key_env.clone().expect("meta_audit_writer_key_env");
        let secret = &env.iter().find(|(name, _)| *name == key_variable).unwrap_or_else(|| panic!("{reader}: {key_variable} unset")).1;
        let hash = auditum_engine::auth::sha256_hex(secret);
        let key = writer.api_keys.iter().find(|key| key.secret_sha256 == hash).expect("the secret is one of the writer's keys");
        assert!(key.tenant == "*" && key.scopes.iter().map(|scope| scope.as_str()).eq(["meta_audit_forward"]), "{key:?}");

        // Its own host port.
        let published = strings(&service["ports"]);
        assert!(published.iter().any(|port| port.ends_with(&format!(":{}", config.listen.port()))), "{reader}: {published:?}");
        ports.extend(published);
    }
    let host_ports: std::collections::HashSet<&str> = ports.iter().map(|port| port.rsplit_once(':').unwrap().0).collect();
    assert_eq!(host_ports.len(), ports.len(), "every host port is published once: {ports:?}");
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
