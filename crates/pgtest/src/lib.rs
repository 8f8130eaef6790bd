//! A throwaway PostgreSQL cluster for tests.
//!
//! [`Cluster::start`] finds Debian's server binaries (`/usr/lib/postgresql/<version>/bin`,
//! or `PG_BINDIR`), runs `initdb` in a new temporary directory and starts `postgres` on a Unix
//! socket in that directory: no TCP port, so clusters of parallel tests never collide. As
//! root, both run as the unprivileged `postgres` user (or `nobody`) through `setpriv`, since
//! PostgreSQL refuses to run as root. Dropping the cluster stops the server (fast shutdown)
//! and deletes the directory.
//!
//! When the binaries are missing the test fails and says how to install them: `tests/run.sh`
//! installs Debian's `postgresql` package when it is missing.

use std::fs;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The superuser `initdb` creates; it needs no password on the socket (`trust`).
pub const USER: &str = "scim";
/// How long the server may take to accept connections after its start.
const READY_WITHIN: Duration = Duration::from_secs(60);
/// How long a fast shutdown may take before the server is killed.
const STOP_WITHIN: Duration = Duration::from_secs(30);

/// How a cluster listens beyond its Unix socket.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Also listen on a loopback TCP port, where [`USER`] logs in with this password
    /// (SCRAM-SHA-256). The socket stays `trust`, for the test's own checks.
    pub password: Option<String>,
    /// TLS on the TCP port: the server's certificate chain and key, PEM. With it, the TCP
    /// port takes TLS connections only.
    pub tls: Option<(String, String)>,
}

/// A running throwaway cluster.
#[derive(Debug)]
pub struct Cluster {
    dir: tempfile::TempDir,
    bin: PathBuf,
    /// `(uid, gid)` the server runs as, when the test runs as root.
    run_as: Option<(u32, u32)>,
    server: Option<Child>,
    databases: u32,
    /// The loopback TCP port, when [`Options::password`] is set.
    port: Option<u16>,
}

impl Cluster {
    /// Creates and starts a cluster on a Unix socket; panics with what to install when
    /// PostgreSQL is missing.
    pub fn start() -> Cluster {
        Cluster::start_with(&Options::default())
    }

    /// Creates and starts a cluster with `options`.
    pub fn start_with(options: &Options) -> Cluster {
        let bin = bindir().unwrap_or_else(|| {
            panic!(
                "PostgreSQL's server binaries (initdb, postgres) were not found in \
                 /usr/lib/postgresql/*/bin or PG_BINDIR: install Debian's `postgresql` package \
                 (apt-get install postgresql; tests/run.sh does it when it runs as root)"
            )
        });
        let dir = tempfile::Builder::new()
            .prefix("pgtest")
            .tempdir()
            .expect("a temporary directory for the cluster");
        let run_as = if rustix::process::geteuid().is_root() {
            Some(unprivileged_user())
        } else {
            None
        };
        if let Some((uid, gid)) = run_as {
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid))
                .expect("give the cluster directory to the unprivileged user");
        }
        let mut cluster = Cluster {
            dir,
            bin,
            run_as,
            server: None,
            databases: 0,
            port: None,
        };
        let data = cluster.data_dir();
        let out = cluster
            .command("initdb")
            .args([
                "--no-sync",
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
                "-U",
                USER,
                "-D",
            ])
            .arg(&data)
            .output()
            .expect("run initdb");
        assert!(
            out.status.success(),
            "initdb failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        fs::create_dir_all(cluster.socket_dir()).expect("socket directory");
        if let Some((uid, gid)) = run_as {
            std::os::unix::fs::chown(cluster.socket_dir(), Some(uid), Some(gid))
                .expect("give the socket directory to the unprivileged user");
        }
        if options.password.is_some() {
            cluster.listen_on_tcp(options);
        }
        cluster.resume();
        if let Some(password) = &options.password {
            let escaped = password.replace('\'', "''");
            // On a thread of its own: the caller may be inside an async runtime already.
            std::thread::scope(|scope| {
                scope.spawn(|| {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .expect("a runtime to set the password");
                    runtime.block_on(async {
                        cluster
                            .connect("postgres")
                            .await
                            .batch_execute(&format!("ALTER ROLE {USER} PASSWORD '{escaped}'"))
                            .await
                            .expect("set the password");
                    });
                });
            });
        }
        cluster
    }

    /// Configures a loopback TCP port (free now), SCRAM passwords on it, and TLS when asked.
    fn listen_on_tcp(&mut self, options: &Options) {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free loopback port")
            .port();
        self.port = Some(port);
        let data = self.data_dir();
        let tcp = if options.tls.is_some() {
            "hostssl"
        } else {
            "host"
        };
        fs::write(
            data.join("pg_hba.conf"),
            format!("local all all trust\n{tcp} all all 127.0.0.1/32 scram-sha-256\n"),
        )
        .expect("pg_hba.conf");
        let mut conf = format!(
            "listen_addresses = '127.0.0.1'\nport = {port}\npassword_encryption = 'scram-sha-256'\n"
        );
        if let Some((cert, key)) = &options.tls {
            fs::write(data.join("server.crt"), cert).expect("server.crt");
            let key_file = data.join("server.key");
            fs::write(&key_file, key).expect("server.key");
            fs::set_permissions(
                &key_file,
                std::os::unix::fs::PermissionsExt::from_mode(0o600),
            )
            .expect("key mode");
            conf.push_str("ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n");
        }
        let mut existing = fs::read_to_string(data.join("postgresql.conf")).unwrap_or_default();
        existing.push_str(&conf);
        fs::write(data.join("postgresql.conf"), existing).expect("postgresql.conf");
        if let Some((uid, gid)) = self.run_as {
            for file in ["pg_hba.conf", "postgresql.conf", "server.crt", "server.key"] {
                let path = data.join(file);
                if path.exists() {
                    std::os::unix::fs::chown(&path, Some(uid), Some(gid)).expect("chown");
                }
            }
        }
    }

    /// The loopback TCP port, when the cluster listens on one ([`Options::password`]).
    pub fn port(&self) -> Option<u16> {
        self.port
    }

    /// The directory of the server's Unix socket.
    pub fn socket_dir(&self) -> PathBuf {
        self.dir.path().join("sock")
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The URL of database `name` on the socket, as `[store] url` takes it.
    pub fn url(&self, name: &str) -> String {
        let host: String = self
            .socket_dir()
            .to_string_lossy()
            .chars()
            .map(|c| {
                if c == '/' {
                    "%2F".to_owned()
                } else {
                    c.to_string()
                }
            })
            .collect();
        // The socket's name carries the port.
        let port = self.port.unwrap_or(5432);
        format!("postgres://{USER}@{host}:{port}/{name}?sslmode=disable")
    }

    /// Creates a new empty database and returns its URL.
    pub async fn create_database(&mut self) -> String {
        self.databases += 1;
        let name = format!("db{}", self.databases);
        let client = self.connect("postgres").await;
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create a database");
        self.url(&name)
    }

    /// A connection to database `name` as the superuser (for a test's own checks).
    pub async fn connect(&self, name: &str) -> tokio_postgres::Client {
        let mut config = tokio_postgres::Config::new();
        // The socket's name carries the port.
        config
            .host_path(self.socket_dir())
            .port(self.port.unwrap_or(5432))
            .user(USER)
            .dbname(name);
        let (client, connection) = match config.connect(tokio_postgres::NoTls).await {
            Ok(connected) => connected,
            Err(e) => panic!(
                "connect to the test cluster ({:?} {:?}): {e}\n{}",
                config.get_hosts(),
                config.get_ports(),
                fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
            ),
        };
        tokio::spawn(connection);
        client
    }

    /// Whether the server runs now.
    pub fn is_running(&self) -> bool {
        self.server.is_some()
    }

    /// Stops the server with a fast shutdown (open sessions are ended, everything committed
    /// is kept) and waits until it is gone. Nothing when it is stopped.
    pub fn stop(&mut self) {
        let Some(mut server) = self.server.take() else {
            return;
        };
        if let Some(pid) = rustix::process::Pid::from_raw(server.id() as i32) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::INT);
        }
        let deadline = Instant::now() + STOP_WITHIN;
        loop {
            match server.try_wait() {
                Ok(Some(_)) => return,
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                _ => {
                    let _ = server.kill();
                    let _ = server.wait();
                    return;
                }
            }
        }
    }

    /// Starts the server again on the same data and socket, and waits until it accepts
    /// connections. Nothing when it runs.
    pub fn resume(&mut self) {
        if self.server.is_some() {
            return;
        }
        let pid_file = self.data_dir().join("postmaster.pid");
        let log = fs::File::create(self.dir.path().join("server.log")).expect("server log");
        let server = self
            .command("postgres")
            .arg("-D")
            .arg(self.data_dir())
            .arg("-k")
            .arg(self.socket_dir())
            .args(if self.port.is_some() {
                &[][..]
            } else {
                &["-c", "listen_addresses="][..]
            })
            .args([
                "-c",
                "fsync=off",
                "-c",
                "full_page_writes=off",
                "-c",
                "max_connections=200",
                "-c",
                "shared_buffers=32MB",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start postgres");
        self.server = Some(server);
        // PostgreSQL writes "ready" as the status line of postmaster.pid once it accepts
        // connections.
        let deadline = Instant::now() + READY_WITHIN;
        loop {
            if let Ok(text) = fs::read_to_string(&pid_file)
                && text.lines().nth(7).is_some_and(|l| l.trim() == "ready")
            {
                return;
            }
            if let Some(server) = self.server.as_mut()
                && let Ok(Some(status)) = server.try_wait()
            {
                self.server = None;
                panic!(
                    "postgres exited ({status}) before accepting connections:\n{}",
                    fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
                );
            }
            assert!(
                Instant::now() < deadline,
                "postgres did not accept connections within {READY_WITHIN:?}:\n{}",
                fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A command of the server's binaries, as the unprivileged user when the test is root.
    fn command(&self, program: &str) -> Command {
        let program = self.bin.join(program);
        match self.run_as {
            None => Command::new(program),
            Some((uid, gid)) => {
                let mut c = Command::new("setpriv");
                c.arg(format!("--reuid={uid}"))
                    .arg(format!("--regid={gid}"))
                    .arg("--clear-groups")
                    .arg("--")
                    .arg(program);
                c
            }
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The database name of a URL made by [`Cluster::url`] or [`Cluster::create_database`].
pub fn database_of(url: &str) -> &str {
    let path = url.rsplit('/').next().unwrap_or("");
    path.split('?').next().unwrap_or(path)
}

/// The newest `/usr/lib/postgresql/<version>/bin` holding `initdb`, or `PG_BINDIR`.
fn bindir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("PG_BINDIR") {
        let dir = PathBuf::from(dir);
        return dir.join("initdb").exists().then_some(dir);
    }
    let mut found: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .filter_map(|e| {
            let version: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, bin)| bin)
}

/// The `postgres` user's ids, else `nobody`'s (from /etc/passwd).
fn unprivileged_user() -> (u32, u32) {
    let passwd = fs::read_to_string("/etc/passwd").unwrap_or_default();
    let ids = |name: &str| {
        passwd.lines().find_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            (fields.first() == Some(&name) && fields.len() > 3)
                .then(|| Some((fields[2].parse().ok()?, fields[3].parse().ok()?)))
                .flatten()
        })
    };
    ids("postgres")
        .or_else(|| ids("nobody"))
        .expect("an unprivileged user (postgres or nobody) to run PostgreSQL as")
}
