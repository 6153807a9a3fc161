//! The real upstream MCP servers of the gateway tests, installed once per test run (pinned, from npm and
//! PyPI) by `tests/gateway/install.sh`.
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;

pub struct Upstreams {
    pub dir: PathBuf,
}

/// Installs the servers on first use (a few seconds when already there).
pub fn upstreams() -> &'static Upstreams {
    static KIT: OnceLock<Upstreams> = OnceLock::new();
    KIT.get_or_init(|| {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/gateway/install.sh");
        let output = Command::new("bash").arg(script).output().expect("run tests/gateway/install.sh");
        assert!(
            output.status.success(),
            "installing the upstream servers failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        Upstreams { dir: PathBuf::from(String::from_utf8(output.stdout).unwrap().trim()) }
    })
}

impl Upstreams {
    /// `@modelcontextprotocol/server-everything`'s entry point (run with node).
    pub fn everything(&self) -> String {
        self.dir.join("node_modules/@modelcontextprotocol/server-everything/dist/index.js").display().to_string()
    }

    /// `@modelcontextprotocol/server-filesystem`'s entry point (run with node).
    pub fn filesystem(&self) -> String {
        self.dir.join("node_modules/@modelcontextprotocol/server-filesystem/dist/index.js").display().to_string()
    }

    /// server-everything in its Streamable HTTP mode on `port`.
    pub fn everything_http(&self, port: u16) -> Running {
        let child = Command::new("node")
            .args([self.everything().as_str(), "streamableHttp"])
            .env("PORT", port.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start server-everything");
        Running(child)
    }

    /// The Python interpreter the Python SDK is installed for.
    pub fn python(&self) -> String {
        self.dir.join("venv/bin/python").display().to_string()
    }

    /// The Python SDK server over stdio whose tool `grow` adds a tool (run with [`Upstreams::python`]).
    pub fn growing_server(&self) -> &'static str {
        concat!(env!("CARGO_MANIFEST_DIR"), "/tests/gateway/growing_server.py")
    }

    /// The Python SDK server that wants `X-API-Key: key`, on `port`.
    pub fn api_key_server(&self, port: u16, key: &str) -> Running {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/gateway/api_key_server.py");
        let child = Command::new(self.python())
            .args([script, &port.to_string(), key])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the Python server");
        Running(child)
    }
}

/// A server process, killed when dropped.
pub struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A free local port.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Waits until something accepts connections on `port`.
pub async fn until_listening(port: u16) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
        assert!(std::time::Instant::now() < deadline, "nothing listens on {port}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// How many processes carry `marker` on their command line.
pub fn processes_with(marker: &str) -> usize {
    let found = std::process::Command::new("pgrep").args(["-f", marker]).output().expect("pgrep runs");
    String::from_utf8_lossy(&found.stdout).lines().count()
}
