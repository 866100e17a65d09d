//! Idle cost (SPEC §5): a `fulfil serve` process with nothing to do, its
//! CPU time over a window, as a percentage of one core.
//!
//!     cargo bench --bench idle
//!     BENCH_IDLE_SECS=30 cargo bench --bench idle

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fulfil::licensing::certificate::Signer;
use secrecy::{ExposeSecret, SecretString};
use sqlx::PgPool;
use uuid::Uuid;

/// Clock ticks per second of /proc/<pid>/stat (USER_HZ: 100 on Linux).
const TICKS_PER_SECOND: f64 = 100.0;

/// Kills the child when dropped, so a failed bench leaves no process.
struct ChildProcess(Child);

impl Drop for ChildProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// User plus system CPU ticks the process has used so far.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("the process runs");
    // The command name may hold spaces; the fields after it do not.
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..]
        .split_whitespace()
        .collect();
    // utime and stime are fields 14 and 15 of the whole line.
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

#[tokio::main]
async fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let seconds: u64 = std::env::var("BENCH_IDLE_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let id = Uuid::new_v4().simple().to_string();
    let database = format!("fulfil_bench_{id}");
    let url = format!("postgres://postgres@127.0.0.1:5432/{database}");
    let mail_dir = std::env::temp_dir().join(format!("fulfil-bench-mail-{id}"));
    let prefix = format!("bench-{}.", &id[..12]);
    let signing_key = SecretString::from(Signer::generate().seed_base64());
    let child = Command::new(env!("CARGO_BIN_EXE_fulfil"))
        .arg("serve")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("FULFIL__DATABASE__URL", &url)
        .env("FULFIL__AMQP__PREFIX", &prefix)
        .env("FULFIL__AMQP__QUEUE_EXPIRES", "5m")
        .env("FULFIL__HTTP__ADDR", "127.0.0.1:0")
        .env("FULFIL__MAIL__DIR", &mail_dir)
        .env("FULFIL__LICENSE__SIGNING_KEY", signing_key.expose_secret())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("fulfil serve starts");
    let child = ChildProcess(child);
    let pid = child.0.id();

    // Startup (migrations, topology, consumers) is not idle time.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let before = cpu_ticks(pid);
    let start = Instant::now();
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    let ticks = cpu_ticks(pid) - before;
    let elapsed = start.elapsed().as_secs_f64();
    let pct = ticks as f64 / TICKS_PER_SECOND / elapsed * 100.0;
    drop(child);

    if let Ok(admin) = PgPool::connect("postgres://postgres@127.0.0.1:5432/postgres").await {
        let _ = sqlx::query(&format!(
            "drop database if exists \"{database}\" with (force)"
        ))
        .execute(&admin)
        .await;
    }
    let _ = std::fs::remove_dir_all(&mail_dir);

    println!("idle_cpu_pct={pct:.2}");
    println!();
    println!(
        "idle     `fulfil serve` with nothing to do: {ticks} CPU ticks in {elapsed:.1} s = {pct:.2}% of one core (target 1%)"
    );
}
