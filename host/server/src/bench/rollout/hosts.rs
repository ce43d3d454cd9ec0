//! Real hosts on one machine for the rollout benchmark: each replica in its
//! own network namespace, reached from the host over a veth pair, behind an
//! haproxy on loopback that health-checks `/ready`. Everything made here is
//! undone when its guard drops, also on error or panic.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// Namespaces of this benchmark start with this; leftovers of a killed run are removed first.
const PREFIX: &str = "weft-ro-";

fn ip(args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new("ip").args(args).output().context("running `ip` (iproute2)")?;
    if !out.status.success() {
        bail!("ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}

/// Why network namespaces cannot be made here, if they cannot (not root, no
/// iproute2, a container without CAP_SYS_ADMIN): the benchmark is then skipped.
pub fn unavailable() -> Option<String> {
    let probe = format!("{PREFIX}probe");
    let _ = ip(&["netns", "del", &probe]);
    match ip(&["netns", "add", &probe]) {
        Ok(()) => {
            let _ = ip(&["netns", "del", &probe]);
            None
        }
        Err(e) => Some(format!("{e:#}")),
    }
}

/// Removes namespaces a killed run left behind.
pub fn sweep() {
    if let Ok(out) = Command::new("ip").args(["netns", "list"]).output() {
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            if let Some(name) = line.split_whitespace().next().filter(|n| n.starts_with(PREFIX)) {
                let _ = ip(&["netns", "del", name]);
            }
        }
    }
}

/// One namespace with a veth pair: the host side is 10.231.`i`.1, the replica listens on 10.231.`i`.2.
pub struct Host {
    pub ns: String,
    pub addr: String,
}

impl Host {
    pub fn new(i: usize) -> anyhow::Result<Self> {
        let ns = format!("{PREFIX}{i}");
        let (outer, inner) = (format!("wro{i}h"), format!("wro{i}n"));
        let _ = ip(&["netns", "del", &ns]);
        let _ = ip(&["link", "del", &outer]);
        ip(&["netns", "add", &ns])?;
        let host = Host { ns: ns.clone(), addr: format!("10.231.{i}.2") };
        ip(&["link", "add", &outer, "type", "veth", "peer", "name", &inner])?;
        ip(&["link", "set", &inner, "netns", &ns])?;
        ip(&["addr", "add", &format!("10.231.{i}.1/24"), "dev", &outer])?;
        ip(&["link", "set", &outer, "up"])?;
        ip(&["netns", "exec", &ns, "ip", "addr", "add", &format!("{}/24", host.addr), "dev", &inner])?;
        ip(&["netns", "exec", &ns, "ip", "link", "set", &inner, "up"])?;
        ip(&["netns", "exec", &ns, "ip", "link", "set", "lo", "up"])?;
        Ok(host)
    }

    /// `weft serve` inside the namespace (`ip netns exec` execs, so the child's pid is the server's).
    pub fn serve(&self, config: &Path, log: &Path) -> anyhow::Result<Child> {
        let exe = std::env::current_exe()?;
        let log = std::fs::OpenOptions::new().create(true).append(true).open(log)?;
        let child = Command::new("ip")
            .args(["netns", "exec", &self.ns])
            .arg(exe)
            .args(["serve", "--config"])
            .arg(config)
            .args(["--host", &self.addr, "--port", "8080"])
            // Three replicas share this machine's cores: no spinning helpers.
            .env("WEFT_TEAM", "off")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()?;
        Ok(child)
    }

    pub fn url(&self) -> String {
        format!("http://{}:8080", self.addr)
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        let _ = ip(&["netns", "del", &self.ns]);
    }
}

/// haproxy, installed through apt when missing (as the README's set-up promises).
fn ensure_haproxy() -> anyhow::Result<()> {
    if Command::new("haproxy").arg("-v").output().is_ok() {
        return Ok(());
    }
    eprintln!("weft bench rollout: haproxy is missing; installing it with apt-get");
    let apt = |args: &[&str]| {
        Command::new("apt-get").args(args).env("DEBIAN_FRONTEND", "noninteractive").stdout(Stdio::null()).status()
    };
    if !apt(&["install", "-y", "-qq", "haproxy"]).is_ok_and(|s| s.success()) {
        let _ = apt(&["update", "-qq"]);
        apt(&["install", "-y", "-qq", "haproxy"]).context("apt-get install haproxy")?;
    }
    Command::new("haproxy").arg("-v").output().context("haproxy is still missing after apt-get install")?;
    Ok(())
}

/// haproxy in the foreground on loopback, balancing over the replicas and
/// checking `/ready` every second (two failures take a server out, two
/// successes put it back). Server connections are not kept alive, so a
/// request never lands on a connection a draining replica is closing; a
/// refused connection is retried on another replica.
pub struct Balancer {
    child: Child,
    pub url: String,
    stats: String,
}

impl Balancer {
    pub fn start(dir: &Path, backends: &[String]) -> anyhow::Result<Self> {
        ensure_haproxy()?;
        let (port, stats_port) = (super::super::free_port()?, super::super::free_port()?);
        let servers: String = backends.iter().enumerate().map(|(i, b)| format!("  server r{i} {b} check\n")).collect();
        let cfg = format!(
            "global\n  maxconn 4096\n\ndefaults\n  mode http\n  timeout connect 2s\n  timeout client 300s\n  timeout server 300s\n  \
             retries 3\n  option redispatch\n  retry-on conn-failure empty-response\n\n\
             frontend fe\n  bind 127.0.0.1:{port}\n  default_backend weft\n\n\
             backend weft\n  balance leastconn\n  option http-server-close\n  option httpchk GET /ready\n  \
             http-check expect status 200\n  default-server inter 1s fall 2 rise 2\n{servers}\n\
             listen stats\n  bind 127.0.0.1:{stats_port}\n  stats enable\n  stats uri /stats\n"
        );
        let path = dir.join("haproxy.cfg");
        std::fs::write(&path, cfg)?;
        let log = std::fs::File::create(dir.join("haproxy.log"))?;
        let child =
            Command::new("haproxy").arg("-db").arg("-f").arg(&path).stdout(Stdio::null()).stderr(log).spawn()?;
        let b = Balancer {
            child,
            url: format!("http://127.0.0.1:{port}"),
            stats: format!("http://127.0.0.1:{stats_port}/stats;csv"),
        };
        Ok(b)
    }

    /// Whether haproxy counts replica `i` as up.
    pub fn is_up(&self, i: usize) -> bool {
        let Ok(r) = reqwest::blocking::get(&self.stats) else { return false };
        let Ok(text) = r.text() else { return false };
        let name = format!("r{i}");
        text.lines().any(|l| {
            let f: Vec<&str> = l.split(',').collect();
            f.len() > 17 && f[0] == "weft" && f[1] == name && f[17].starts_with("UP")
        })
    }

    pub fn wait_up(&self, i: usize, within: Duration) -> anyhow::Result<Duration> {
        let t0 = Instant::now();
        while !self.is_up(i) {
            if t0.elapsed() > within {
                bail!("haproxy never saw replica {i} up");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(t0.elapsed())
    }
}

impl Drop for Balancer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
