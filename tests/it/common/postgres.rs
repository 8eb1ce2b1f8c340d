//! A throwaway Postgres cluster from the Debian packages, on 127.0.0.1 and a free port, removed
//! (stopped, then its directory deleted) when dropped.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The newest `/usr/lib/postgresql/<version>/bin` (Debian's layout).
fn bin_dir() -> PathBuf {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("Postgres is installed (apt-get install postgresql); scripts/test installs it")
        .filter_map(|entry| entry.ok())
        .filter_map(|entry| Some((entry.file_name().to_str()?.parse().ok()?, entry.path().join("bin"))))
        .filter(|(_, bin)| bin.join("initdb").exists())
        .collect();
    versions.sort();
    versions.pop().expect("a Postgres server in /usr/lib/postgresql/*/bin").1
}

pub struct Postgres {
    /// Holds the cluster's directory; deleted on drop.
    _dir: tempfile::TempDir,
    data: PathBuf,
    bin: PathBuf,
    pub port: u16,
    as_postgres_user: bool,
}

impl Postgres {
    fn command(&self, program: &str) -> Command {
        let binary = self.bin.join(program);
        if self.as_postgres_user {
            // initdb and postgres refuse to run as root.
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(binary);
            command
        } else {
            Command::new(binary)
        }
    }

    fn run(command: &mut Command) {
        let output = command.stdin(Stdio::null()).output().unwrap_or_else(|error| panic!("{command:?}: {error}"));
        assert!(
            output.status.success(),
            "{command:?}: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// initdb and start a cluster with trust authentication on 127.0.0.1 (user `postgres`).
    pub fn start() -> Postgres {
        Postgres::start_with("")
    }

    /// As [`start`](Self::start), with more server options (`-c name=value …`).
    pub fn start_with(settings: &str) -> Postgres {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let as_postgres_user = Command::new("id").arg("-u").output().map(|out| out.stdout == b"0\n").unwrap_or(false);
        if as_postgres_user {
            Postgres::run(Command::new("chown").args(["-R", "postgres:postgres"]).arg(dir.path()));
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let postgres = Postgres { _dir: dir, data, bin: bin_dir(), port, as_postgres_user };
        Postgres::run(
            postgres
                .command("initdb")
                .args(["--auth=trust", "--username=postgres", "--encoding=UTF8", "--no-sync", "-D"])
                .arg(&postgres.data),
        );
        let options = format!("-p {port} -c listen_addresses=127.0.0.1 -k {} -c max_connections=64 {settings}", postgres.data.display());
        Postgres::run(
            postgres
                .command("pg_ctl")
                .args(["-w", "-t", "60", "-l"])
                .arg(postgres.data.join("server.log"))
                .arg("-D")
                .arg(&postgres.data)
                .args(["-o", &options, "start"]),
        );
        postgres
    }

    /// The DSN of the cluster's `postgres` database.
    pub fn dsn(&self) -> String {
        format!("host=127.0.0.1 port={} user=postgres dbname=postgres", self.port)
    }

    pub async fn connect(&self) -> tokio_postgres::Client {
        let (client, connection) = tokio_postgres::connect(&self.dsn(), tokio_postgres::NoTls).await.expect("connect to postgres");
        tokio::spawn(connection);
        client
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.data.join("server.log")).unwrap_or_default()
    }

    pub fn data(&self) -> &Path {
        &self.data
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = self
            .command("pg_ctl")
            .args(["-w", "-m", "immediate", "-D"])
            .arg(&self.data)
            .arg("stop")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}
