//! A real S3-compatible server (moto_server) on a loopback port, and a TCP proxy in front of it
//! whose outages are real: refused connections and cut streams.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Once};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Static credentials and region for the AWS chain; never the instance metadata service.
pub fn s3_test_env() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        for (name, value) in [
            ("AWS_ACCESS_KEY_ID", "auditum-test"),
            ("AWS_SECRET_ACCESS_KEY", "auditum-test-secret"),
            ("AWS_REGION", "us-east-1"),
            ("AWS_EC2_METADATA_DISABLED", "true"),
        ] {
            if std::env::var_os(name).is_none() {
                // SAFETY: called at the start of a test, before its runtime starts threads.
                unsafe { std::env::set_var(name, value) };
            }
        }
    });
}

/// A multi-threaded runtime built after the environment is set.
pub fn runtime() -> tokio::runtime::Runtime {
    s3_test_env();
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

pub struct Moto {
    child: std::process::Child,
    pub endpoint: String,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Moto {
    /// Starts `moto_server` on a free loopback port and waits until it answers.
    pub async fn start() -> Moto {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut child = std::process::Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("moto_server is installed (pip install 'moto[server]')");
        let endpoint = format!("http://127.0.0.1:{port}");
        for _ in 0..300 {
            if TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
                return Moto { child, endpoint };
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("moto_server did not start on port {port}");
    }

    pub fn options(&self) -> auditum_store::S3Options {
        auditum_store::S3Options { endpoint: Some(self.endpoint.clone()), ..Default::default() }
    }

    pub async fn client(&self) -> aws_sdk_s3::Client {
        let store = auditum_store::S3Store::open("s3://any-bucket", &self.options()).await.unwrap();
        store.client().clone()
    }

    /// A bucket with Object Lock (and so versioning) enabled.
    pub async fn locked_bucket(&self, name: &str) {
        self.client().await.create_bucket().bucket(name).object_lock_enabled_for_bucket(true).send().await.unwrap();
    }

    /// A bucket with versioning but no Object Lock.
    pub async fn versioned_bucket(&self, name: &str) {
        let client = self.client().await;
        client.create_bucket().bucket(name).send().await.unwrap();
        let enabled =
            aws_sdk_s3::types::VersioningConfiguration::builder().status(aws_sdk_s3::types::BucketVersioningStatus::Enabled).build();
        client.put_bucket_versioning().bucket(name).versioning_configuration(enabled).send().await.unwrap();
    }

    pub async fn plain_bucket(&self, name: &str) {
        self.client().await.create_bucket().bucket(name).send().await.unwrap();
    }
}

/// A test server config for a log on `url` through moto, with governance retention of a day
/// (so a test can delete with a governance bypass).
pub fn governed_config(dir: &std::path::Path, moto: &Moto, url: &str) -> auditum_server::config::Config {
    let mut config = super::test_config(dir);
    config.store = Some(url.to_string());
    config.s3_endpoint = Some(moto.endpoint.clone());
    config.retention_mode = Some(auditum_store::RetentionMode::Governance);
    config.retention_days = Some(1);
    config
}

/// `auditum serve` arguments for a log on `url` through `endpoint`, with governance retention of a day.
pub fn serve_args(url: &str, endpoint: &str, seal_interval: &str) -> Vec<String> {
    ["--seal-interval", seal_interval, "--store", url, "--s3-endpoint", endpoint, "--retention-mode", "governance", "--retention-days", "1"]
        .iter()
        .map(|arg| arg.to_string())
        .collect()
}

/// A TCP proxy in front of an upstream. `set_down(true)` refuses new connections and cuts the
/// open ones; `arm_after(pattern)` lets the request whose head contains `pattern` through and
/// goes down as soon as its response starts flowing back.
#[derive(Clone)]
pub struct Proxy {
    pub addr: SocketAddr,
    down: Arc<AtomicBool>,
    generation: Arc<AtomicU64>,
    armed: Arc<std::sync::Mutex<Option<Vec<u8>>>>,
    tripped: Arc<AtomicBool>,
    blackhole: Arc<AtomicBool>,
}

impl Proxy {
    pub async fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let proxy = Proxy {
            addr: listener.local_addr().unwrap(),
            down: Arc::default(),
            generation: Arc::default(),
            armed: Arc::default(),
            tripped: Arc::default(),
            blackhole: Arc::default(),
        };
        let state = proxy.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                if state.down.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                if state.blackhole.load(Ordering::SeqCst) {
                    // Accepted, read, never answered: what a dead route or a hung server does.
                    tokio::spawn(async move {
                        let mut client = client;
                        let mut sink = [0u8; 16 * 1024];
                        while let Ok(count) = client.read(&mut sink).await {
                            if count == 0 {
                                return;
                            }
                        }
                    });
                    continue;
                }
                let state = state.clone();
                tokio::spawn(async move { state.relay(client, upstream).await });
            }
        });
        proxy
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
        if down {
            self.generation.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// New connections are accepted and never answered; open ones are cut (so the client's
    /// pooled connections meet the black hole too).
    pub fn set_blackhole(&self, on: bool) {
        self.blackhole.store(on, Ordering::SeqCst);
        if on {
            self.generation.fetch_add(1, Ordering::SeqCst);
        }
    }

    pub fn is_down(&self) -> bool {
        self.down.load(Ordering::SeqCst)
    }

    pub fn arm_after(&self, pattern: &str) {
        self.tripped.store(false, Ordering::SeqCst);
        *self.armed.lock().unwrap() = Some(pattern.as_bytes().to_vec());
    }

    /// Whether an armed outage has started.
    pub fn tripped(&self) -> bool {
        self.tripped.load(Ordering::SeqCst)
    }

    async fn relay(&self, mut client: TcpStream, upstream: SocketAddr) {
        let Ok(mut server) = TcpStream::connect(upstream).await else { return };
        let generation = self.generation.load(Ordering::SeqCst);
        let (mut client_read, mut client_write) = client.split();
        let (mut server_read, mut server_write) = server.split();
        let saw_armed_request = AtomicBool::new(false);
        let mut up = [0u8; 64 * 1024];
        let mut down = [0u8; 64 * 1024];
        loop {
            if self.generation.load(Ordering::SeqCst) != generation {
                return; // cut: dropping both sockets resets the connection
            }
            tokio::select! {
                read = client_read.read(&mut up) => {
                    let Ok(count) = read else { return };
                    if count == 0 { return; }
                    // The outage may have started while this connection waited for the request:
                    // a request that arrives after it must not reach the server.
                    if self.generation.load(Ordering::SeqCst) != generation {
                        return;
                    }
                    let armed = self.armed.lock().unwrap().clone();
                    if let Some(pattern) = armed
                        && up[..count].windows(pattern.len()).any(|window| window == pattern.as_slice())
                    {
                        saw_armed_request.store(true, Ordering::SeqCst);
                    }
                    if server_write.write_all(&up[..count]).await.is_err() { return; }
                }
                read = server_read.read(&mut down) => {
                    let Ok(count) = read else { return };
                    if count == 0 { return; }
                    // An interim `100 Continue` (a large body asks first) is not the answer: the
                    // outage starts once the request's body went through and its final answer came.
                    let interim = down[..count].starts_with(b"HTTP/1.1 100");
                    if saw_armed_request.load(Ordering::SeqCst) && !interim {
                        // The armed request got its answer: the outage starts before the client
                        // reads it, so no request the client sends next (the ledger put, on this
                        // or another pooled connection) can get through.
                        *self.armed.lock().unwrap() = None;
                        self.set_down(true);
                        self.tripped.store(true, Ordering::SeqCst);
                        let _ = client_write.write_all(&down[..count]).await;
                        return;
                    }
                    if client_write.write_all(&down[..count]).await.is_err() { return; }
                }
                _ = tokio::time::sleep(Duration::from_millis(50)) => {}
            }
        }
    }
}
