//! The server binary as a child process, for tests of what only the binary does (flags,
//! signals, the environment it reads), with its JSON log collected.

use std::{
    io::{BufRead, BufReader},
    net::SocketAddr,
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

pub const BIN: &str = env!("CARGO_BIN_EXE_basic-service");

/// Starts the binary through `sh` (for `ulimit`) and reads its listen address from the
/// JSON log. The child is killed if the test fails before [`stop`].
pub struct Server {
    child: Child,
    pub addr: SocketAddr,
    pub log: Arc<Mutex<Vec<String>>>,
}

impl Server {
    pub fn start(fd_limit: Option<u32>, extra: &[&str]) -> Self {
        Self::start_with_env(fd_limit, extra, &[])
    }

    /// [`Server::start`] with these environment variables set too.
    pub fn start_with_env(fd_limit: Option<u32>, extra: &[&str], env: &[(&str, &str)]) -> Self {
        let ulimit = fd_limit
            .map(|n| format!("ulimit -n {n} && "))
            .unwrap_or_default();
        let mut command = Command::new("sh");
        // Only the variables the test gives: none of the OpenTelemetry settings of the
        // shell that runs the tests.
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("OTEL_") {
                command.env_remove(name);
            }
        }
        let mut child = command
            .arg("-c")
            .arg(format!("{ulimit}exec \"$0\" \"$@\""))
            .arg(BIN)
            .args(["--addr", "127.0.0.1:0", "--log-format", "json"])
            .args(extra)
            .env("RUST_LOG", "info")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn server binary");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let mut early = Vec::new();
        let addr = loop {
            let line = lines
                .next()
                .expect("server exited before listening")
                .expect("read log");
            let addr = line.contains("listening").then(|| {
                let start = line.find("\"addr\":\"").expect("addr field") + 8;
                let end = start + line[start..].find('"').expect("addr end");
                line[start..end].parse().expect("addr parses")
            });
            early.push(line);
            if let Some(addr) = addr {
                break addr;
            }
        };
        // Keep draining the log so the server never blocks on a full pipe.
        let log = Arc::new(Mutex::new(early));
        let sink = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                if let Ok(mut log) = sink.lock() {
                    log.push(line);
                }
            }
        });
        Self { child, addr, log }
    }

    /// SIGTERM, then the exit status (waits at most 30 s). Async, so that the test's
    /// own runtime keeps running its client connections (they must see the GOAWAY).
    pub async fn stop(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "server did not exit after SIGTERM"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// The log lines so far.
    pub fn lines(&self) -> Vec<String> {
        self.log.lock().map(|log| log.clone()).unwrap_or_default()
    }

    /// Waits (at most 10 s) for a log line containing `needle`.
    pub async fn wait_for_line(&self, needle: &str) -> Option<String> {
        wait_for_line(&self.log, needle).await
    }
}

/// Waits (at most 10 s) for a line of `log` containing `needle`.
pub async fn wait_for_line(log: &Mutex<Vec<String>>, needle: &str) -> Option<String> {
    for _ in 0..500 {
        if let Some(line) = log
            .lock()
            .ok()
            .and_then(|log| log.iter().find(|l| l.contains(needle)).cloned())
        {
            return Some(line);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}
