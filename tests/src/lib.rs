//! Support shared by the end-to-end tests of this crate (`tests/e2e`) and of the `genie` binary
//! (`genie/tests`): a real Directus process, a PostgreSQL cluster of a test's own that it can stop
//! and start, and an HTTP client. The tests themselves live in `tests/` and `benches/`.
//!
//! Test support: a setup step that cannot do its job fails the test at once, with a message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use common::testing::{fresh_database, random_listener};
use serde_json::{Value, json};

/// The Directus `SECRET` of the e2e tests, shared with the gateway and svc-auth.
pub const DIRECTUS_SECRET: &str = "directus secret shared by the e2e tests 0123456789";

/// An HTTP client for tests. reqwest is built without a TLS crypto provider of its own, so this
/// installs ring's first (a second install is a harmless no-op).
pub fn http_client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .expect("build the test HTTP client")
}

/// The internal token and rbac-sync secret `GenieProcess` starts `genie up` with.
pub const GENIE_INTERNAL_TOKEN: &str = "internal token of genie's own tests 0123456789";
pub const GENIE_RBAC_SECRET: &str = "rbac sync secret of genie's tests";

/// The prefix of the exchanges and queues the e2e tests' svc-queue declares on the shared broker
/// when the test runs no worker: one set for every such test (none consumes them), apart from
/// any other user of the broker. A deployment with a worker has names of its own
/// (`common::testing::broker_prefix`), so that it consumes only its own jobs.
pub const BROKER_PREFIX: &str = "genie_test.";

async fn free_port() -> u16 {
    let (listener, addr) = random_listener().await;
    drop(listener);
    addr.port()
}

/// `genie up`, the operator's binary (`binary`: the caller's `CARGO_BIN_EXE_genie`), on a fresh
/// database and free ports, with nothing but PATH, the variables it needs and `env` (which win),
/// its log lines on `stdout`; killed when dropped.
pub struct GenieProcess {
    pub url: String,
    pub port: u16,
    /// The fresh database's name.
    pub database: String,
    process: tokio::process::Child,
}

impl GenieProcess {
    pub async fn up(
        binary: &str,
        env: Vec<(&str, String)>,
        stdout: Stdio,
        ready_within: Duration,
    ) -> Self {
        let database = fresh_database().await;
        let port = free_port().await;
        let mut variables = vec![
            ("PATH".to_owned(), std::env::var("PATH").unwrap_or_default()),
            ("GATEWAY_ADDR".to_owned(), format!("127.0.0.1:{port}")),
            ("INTERNAL_TOKEN".to_owned(), GENIE_INTERNAL_TOKEN.to_owned()),
            ("DIRECTUS_SECRET".to_owned(), DIRECTUS_SECRET.to_owned()),
            (
                "RBAC_SYNC_WEBHOOK_SECRET".to_owned(),
                GENIE_RBAC_SECRET.to_owned(),
            ),
            (
                "CREDENTIALS_ENC_KEY_B64".to_owned(),
                "dmF1bHQga2V5IHYxIG9mIHRoZSBlMmUgdGVzdHMuLi4=".to_owned(),
            ),
            ("RUST_LOG".to_owned(), "warn".to_owned()),
            // `genie up` runs a worker: queues of its own, so that it takes only its own jobs.
            (
                "QUEUE_NAME_PREFIX".to_owned(),
                common::testing::broker_prefix(),
            ),
            (
                "QUEUE_STORAGE_DIR".to_owned(),
                std::env::temp_dir()
                    .join(format!("genie-files-{}", uuid::Uuid::new_v4()))
                    .display()
                    .to_string(),
            ),
        ];
        let worker_health = free_port().await;
        variables.push((
            "QUEUE_WORKER_HEALTH_ADDR".to_owned(),
            format!("127.0.0.1:{worker_health}"),
        ));
        for service in ["AUTH", "USAGE", "CREDENTIALS", "SKILLS", "QUEUE"] {
            let grpc = free_port().await;
            variables.push((format!("{service}_DATABASE_URL"), database.url.clone()));
            variables.push((format!("{service}_GRPC_ADDR"), format!("127.0.0.1:{grpc}")));
            variables.push((
                format!("{service}_GRPC_URL"),
                format!("http://127.0.0.1:{grpc}"),
            ));
        }
        variables.extend(
            env.into_iter()
                .map(|(name, value)| (name.to_owned(), value)),
        );
        let process = tokio::process::Command::new(binary)
            .arg("up")
            .env_clear()
            .envs(variables)
            .stdout(stdout)
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("start genie up");
        let genie = Self {
            url: format!("http://127.0.0.1:{port}"),
            port,
            database: database.name,
            process,
        };
        let http = http_client();
        let started = std::time::Instant::now();
        while started.elapsed() < ready_within {
            if http
                .get(genie.url("/health/ready"))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                return genie;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("genie up was not ready within {ready_within:?}");
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    pub fn pid(&self) -> u32 {
        self.process.id().expect("genie is running")
    }

    /// `field` of /proc/<pid>/status (`VmHWM`, `VmRSS`), in bytes.
    pub fn memory(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        let kib: u64 = status
            .lines()
            .find_map(|line| line.strip_prefix(field))
            .and_then(|value| {
                value
                    .trim_start_matches(':')
                    .trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse()
                    .ok()
            })
            .unwrap_or_else(|| panic!("no {field} in /proc/<pid>/status"));
        kib * 1024
    }

    /// Ends the process and waits until it is gone.
    pub async fn kill(&mut self) {
        let _ = self.process.kill().await;
    }
}

/// A real Directus (the version pinned in deploy/directus, installed by deploy/directus.sh) on a
/// random port with a database of its own, killed when dropped. (Directus refuses emails at
/// reserved domains such as `.test`, hence `example.com` for its users.)
pub struct Directus {
    pub url: String,
    http: reqwest::Client,
    _process: tokio::process::Child,
}

impl Directus {
    pub const ADMIN: &str = "admin@example.com";
    pub const ADMIN_PASSWORD: &str = "directus admin password";
    pub const ADMIN_TOKEN: &str = "static-admin-token-of-the-e2e-directus";

    pub async fn start() -> Self {
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/directus");
        let cli = format!("{root}/node_modules/.bin/directus");
        assert!(
            std::path::Path::new(&cli).exists(),
            "Directus is not installed: run deploy/directus.sh (deploy/test.sh does)"
        );
        let database = fresh_database().await;
        let port = free_port().await;
        let env = [
            ("DB_CLIENT", "pg".to_owned()),
            ("DB_CONNECTION_STRING", database.url.clone()),
            ("KEY", uuid::Uuid::new_v4().to_string()),
            ("SECRET", DIRECTUS_SECRET.to_owned()),
            ("ADMIN_EMAIL", Self::ADMIN.to_owned()),
            ("ADMIN_PASSWORD", Self::ADMIN_PASSWORD.to_owned()),
            ("ADMIN_TOKEN", Self::ADMIN_TOKEN.to_owned()),
            ("HOST", "127.0.0.1".to_owned()),
            ("PORT", port.to_string()),
            ("PUBLIC_URL", format!("http://127.0.0.1:{port}")),
            ("TELEMETRY", "false".to_owned()),
            ("LOG_LEVEL", "error".to_owned()),
        ];
        let bootstrap = tokio::process::Command::new(&cli)
            .arg("bootstrap")
            .current_dir(root)
            .envs(env.clone())
            .output()
            .await
            .expect("run directus bootstrap");
        assert!(
            bootstrap.status.success(),
            "directus bootstrap failed: {}",
            String::from_utf8_lossy(&bootstrap.stderr)
        );
        let process = tokio::process::Command::new(&cli)
            .arg("start")
            .current_dir(root)
            .envs(env)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start directus");
        let directus = Self {
            url: format!("http://127.0.0.1:{port}"),
            http: http_client(),
            _process: process,
        };
        for _ in 0..120 {
            if directus
                .http
                .get(directus.url("/server/ping"))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                return directus;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        panic!("Directus did not answer /server/ping within 30 s");
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    /// A call with the administrator's static token; a failure fails the test.
    pub async fn admin(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut request = self
            .http
            .request(method, self.url(path))
            .bearer_auth(Self::ADMIN_TOKEN);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        assert!(
            response.status().is_success(),
            "Directus {path}: {}",
            response.status()
        );
        response.json().await.unwrap_or(Value::Null)
    }

    /// Logs in at Directus itself: its `data` (`access_token`, `refresh_token`, `expires`).
    pub async fn login(&self, email: &str, password: &str) -> Value {
        let response = self
            .http
            .post(self.url("/auth/login"))
            .json(&json!({"email": email, "password": password}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), reqwest::StatusCode::OK);
        response.json::<Value>().await.unwrap()["data"].clone()
    }
}

/// A PostgreSQL cluster of one test's own (`initdb` on a temporary directory, a free loopback
/// port, trust authentication), which the test may stop and start again: what the shared
/// cluster, used by every other test at once, must never undergo. Stopped and removed when
/// dropped.
///
/// The binaries are Debian's (`/usr/lib/postgresql/<version>/bin`, the newest version), or those
/// in `TEST_POSTGRES_BIN`. `initdb` and `postgres` refuse to run as root, so a test run as root
/// runs them as the `postgres` user (else `nobody`) through `runuser`.
pub struct OwnPostgres {
    pub port: u16,
    dir: PathBuf,
    bin: PathBuf,
    /// The unprivileged user the server runs as, when the test runs as root.
    user: Option<String>,
}

impl OwnPostgres {
    /// Creates the cluster and starts it.
    pub async fn start() -> Self {
        let bin = postgres_bin();
        let dir = std::env::temp_dir().join(format!("genie-pg-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir(&dir).expect("create the cluster's directory");
        let user = if std::fs::metadata(&dir)
            .expect("the cluster's directory")
            .uid()
            == 0
        {
            let user = ["postgres", "nobody"]
                .into_iter()
                .find(|user| uid_of(user).is_some())
                .expect("running as root, the tests need a postgres or nobody user");
            let uid = uid_of(user).expect("the user's id");
            std::os::unix::fs::chown(&dir, Some(uid), None).expect("give the directory away");
            Some(user.to_owned())
        } else {
            None
        };
        let port = free_port().await;
        let postgres = Self {
            port,
            dir,
            bin,
            user,
        };
        let data = postgres.data();
        postgres
            .run(
                "initdb",
                &[
                    "-D",
                    &data,
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "-E",
                    "UTF8",
                    "--no-sync",
                ],
            )
            .await;
        postgres.resume().await;
        postgres
    }

    /// The URL of `database` (`postgres` exists from the start).
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// Stops the server as an operator's restart does (`pg_ctl stop -m fast`: sessions are ended,
    /// then the port closes); returns once it is down.
    pub async fn stop(&self) {
        let data = self.data();
        self.run("pg_ctl", &["-D", &data, "-m", "fast", "-w", "stop"])
            .await;
    }

    /// Starts the server (again); returns once it accepts connections.
    pub async fn resume(&self) {
        let data = self.data();
        let log = format!("{}/server.log", self.dir.display());
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.display()
        );
        self.run(
            "pg_ctl",
            &[
                "-D", &data, "-l", &log, "-o", &options, "-w", "-t", "60", "start",
            ],
        )
        .await;
    }

    fn data(&self) -> String {
        format!("{}/data", self.dir.display())
    }

    fn command(&self, program: &str, args: &[&str]) -> std::process::Command {
        let program = self.bin.join(program);
        let mut command = match &self.user {
            Some(user) => {
                let mut command = std::process::Command::new("runuser");
                command.args(["-u", user, "--"]).arg(program);
                command
            }
            None => std::process::Command::new(program),
        };
        command.args(args).current_dir(&self.dir);
        command
    }

    async fn run(&self, program: &str, args: &[&str]) {
        let output = tokio::process::Command::from(self.command(program, args))
            .output()
            .await
            .unwrap_or_else(|err| panic!("cannot run {program}: {err}"));
        assert!(
            output.status.success(),
            "{program} {args:?} failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

impl Drop for OwnPostgres {
    fn drop(&mut self) {
        let data = self.data();
        let _ = self
            .command("pg_ctl", &["-D", &data, "-m", "immediate", "-w", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `TEST_POSTGRES_BIN`, else the newest `/usr/lib/postgresql/<version>/bin` with an `initdb`.
fn postgres_bin() -> PathBuf {
    if let Ok(bin) = std::env::var("TEST_POSTGRES_BIN") {
        return PathBuf::from(bin);
    }
    let root = Path::new("/usr/lib/postgresql");
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir(root)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions
        .pop()
        .map(|(_, bin)| bin)
        .expect("initdb not found under /usr/lib/postgresql/*/bin (set TEST_POSTGRES_BIN)")
}

/// The numeric id of a local user, if there is one.
fn uid_of(user: &str) -> Option<u32> {
    let output = std::process::Command::new("id")
        .args(["-u", user])
        .output()
        .ok()?;
    if !output.status.success() {
        return None;
    }
    String::from_utf8_lossy(&output.stdout).trim().parse().ok()
}
