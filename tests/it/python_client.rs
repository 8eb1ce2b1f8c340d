//! The Python example (examples/python, a grpcio-tools client generated from proto/) runs green
//! against the real binary: health and reflection through grpcio's own clients, Append, Query
//! and an event proof, with an API key.

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_example_runs_green_against_the_real_server() {
    let dir = tempfile::tempdir().unwrap();
    let secret = "python-example.0123456789abcdefghijklmnopqrstuvwxyzABCDEFG";
    let mut args = key_config_args(dir.path(), "python-example", secret, "acme", &["append", "query", "proof"]);
    args.extend(["--seal-interval".to_string(), "1s".to_string()]);
    let (mut child, url) = spawn_binary(dir.path(), &args).await;
    let address = url.trim_start_matches("http://").to_string();
    let example = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/python/example.py");
    let output = tokio::process::Command::new("python3")
        .arg(&example)
        .args(["--server", &address, "--api-key", secret, "--tenant", "acme"])
        .output()
        .await
        .expect("python3 runs (scripts/test installs examples/python/requirements.txt)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    child.kill().await.unwrap();
    assert!(output.status.success(), "example failed\nstdout:\n{stdout}\nstderr:\n{stderr}");
    for expected in ["health: SERVING", "reflection:", "grpc.health.v1.Health", "append: seqs", "query: ['user.login'", "proof: seq", "OK"]
    {
        assert!(stdout.contains(expected), "{expected:?} in\n{stdout}");
    }
}
