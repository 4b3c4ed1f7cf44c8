//! init_ms and rss_mb: starts the release `validate` binary against a
//! minimal Lambda Runtime API on loopback, times process start to its first
//! request for work (SDK client built, DynamoDB connection opened), serves
//! it 1,000 validate events, then reads its peak resident memory.
//!
//! Usage: lambda_init <path to validate binary> [--no-warm-up] [--secret]
//! [--invocations N] [--under-qemu]; needs DynamoDB Local, the table and
//! the Tollgate environment (see scripts/bench.sh). `--under-qemu` runs an
//! arm64 binary under `qemu-aarch64` with Debian's arm64 libc
//! (`scripts/test-arm64.sh`): proof that it runs, not a timing.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tollgate::config::Config;
use tollgate::http::ApiRequest;
use tollgate::store::dynamo::{sdk_config, DynamoStore};
use tollgate::{App, Function};
use tollgate_bench::{median, validate_event};

const INVOCATIONS: usize = 1000;

/// Where Debian's `libc6-arm64-cross` puts the arm64 loader and libc.
const ARM64_SYSROOT: &str = "/usr/aarch64-linux-gnu";

#[derive(Default)]
struct State {
    first_next: Option<Instant>,
    served: usize,
    answered: usize,
    sent_at: Vec<Instant>,
    latencies_us: Vec<f64>,
    refused: usize,
    errors: Vec<String>,
}

struct Emulator {
    state: Mutex<State>,
    done: Condvar,
    event: String,
    invocations: usize,
}

fn read_request(reader: &mut BufReader<TcpStream>) -> Option<(String, String, Vec<u8>)> {
    let mut line = String::new();
    if reader.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_owned();
    let path = parts.next()?.to_owned();
    let mut len = 0usize;
    loop {
        let mut h = String::new();
        reader.read_line(&mut h).ok()?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                len = v.trim().parse().ok()?;
            }
        }
    }
    let mut body = vec![0; len];
    reader.read_exact(&mut body).ok()?;
    Some((method, path, body))
}

fn respond(stream: &mut TcpStream, status: &str, headers: &[(&str, String)], body: &[u8]) {
    let mut head = format!("HTTP/1.1 {status}\r\ncontent-length: {}\r\n", body.len());
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    // One write: a split head and body meets Nagle and delayed ACKs (40 ms).
    let mut out = head.into_bytes();
    out.extend_from_slice(body);
    let _ = stream.write_all(&out);
}

fn serve(conn: TcpStream, emu: Arc<Emulator>) {
    let mut writer = conn.try_clone().expect("clone stream");
    let mut reader = BufReader::new(conn);
    while let Some((method, path, body)) = read_request(&mut reader) {
        if method == "GET" && path.ends_with("/runtime/invocation/next") {
            let n = {
                let mut s = emu.state.lock().unwrap();
                s.first_next.get_or_insert_with(Instant::now);
                if s.served >= emu.invocations {
                    drop(s);
                    // All work handed out: hold the request until killed.
                    std::thread::sleep(Duration::from_secs(3600));
                    return;
                }
                s.served += 1;
                s.sent_at.push(Instant::now());
                s.served
            };
            let deadline = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_millis()
                + 30_000;
            respond(
                &mut writer,
                "200 OK",
                &[
                    ("content-type", "application/json".into()),
                    ("lambda-runtime-aws-request-id", format!("req-{n}")),
                    ("lambda-runtime-deadline-ms", deadline.to_string()),
                    (
                        "lambda-runtime-invoked-function-arn",
                        "arn:aws:lambda:us-east-1:123456789012:function:validate".into(),
                    ),
                    (
                        "lambda-runtime-trace-id",
                        "Root=1-00000000-000000000000000000000000;Sampled=0".into(),
                    ),
                ],
                emu.event.as_bytes(),
            );
        } else if method == "POST" && path.ends_with("/response") {
            let n: usize = path
                .split('/')
                .nth(4)
                .and_then(|id| id.strip_prefix("req-"))
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            let resp: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let answer: Value = resp["body"]
                .as_str()
                .and_then(|b| serde_json::from_str(b).ok())
                .unwrap_or(Value::Null);
            let mut s = emu.state.lock().unwrap();
            if n > 0 {
                let lat = s.sent_at[n - 1].elapsed().as_secs_f64() * 1e6;
                s.latencies_us.push(lat);
            }
            if answer["active"] != true {
                s.refused += 1;
            }
            s.answered += 1;
            if s.answered >= emu.invocations {
                emu.done.notify_all();
            }
            drop(s);
            respond(&mut writer, "202 Accepted", &[], b"");
        } else {
            let mut s = emu.state.lock().unwrap();
            s.errors.push(format!(
                "{method} {path}: {}",
                String::from_utf8_lossy(&body)
            ));
            emu.done.notify_all();
            drop(s);
            respond(&mut writer, "202 Accepted", &[], b"");
        }
    }
}

fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

async fn mint_token() -> String {
    let config = Config::from_env().expect("TOLLGATE_TABLE and TOLLGATE_HASH_KEY");
    let sdk = sdk_config().await;
    let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(&sdk), &config.table, 86_400);
    let app = App::new(config, tollgate_bench::keyring_from_env(), Arc::new(store));
    let mut req = ApiRequest {
        method: "POST".parse().unwrap(),
        path: "/tokens".into(),
        body: json!({"resource": "/teams"}).to_string().into_bytes(),
        ..Default::default()
    };
    req.identity.jwt_sub = Some("bench-owner".into());
    let (_, resp) = app.handle(Function::Create, &req).await;
    let v: Value = serde_json::from_slice(&resp.body).unwrap();
    v["token"].as_str().expect("created").to_owned()
}

fn main() {
    let binary = std::env::args()
        .nth(1)
        .expect("usage: lambda_init <validate binary> [--no-warm-up] [--secret]");
    let flags: Vec<String> = std::env::args().skip(2).collect();
    let warm_up = !flags.iter().any(|f| f == "--no-warm-up");
    // --secret: the function reads its keyring from the (local) Secrets
    // Manager at init, as deployed, instead of TOLLGATE_HASH_KEY.
    let from_secret = flags.iter().any(|f| f == "--secret");
    let under_qemu = flags.iter().any(|f| f == "--under-qemu");
    let invocations: usize = flags
        .iter()
        .position(|f| f == "--invocations")
        .and_then(|i| flags.get(i + 1))
        .map(|n| n.parse().expect("--invocations N"))
        .unwrap_or(INVOCATIONS);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let token = rt.block_on(mint_token());
    let emu = Arc::new(Emulator {
        state: Mutex::new(State::default()),
        done: Condvar::new(),
        event: validate_event(&json!({"token": token, "resource": "/teams/1"})),
        invocations,
    });
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let addr = listener.local_addr().unwrap();
    let accept_emu = emu.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let emu = accept_emu.clone();
            std::thread::spawn(move || serve(conn, emu));
        }
    });

    let mut command = if under_qemu {
        let mut c = Command::new("qemu-aarch64");
        c.args(["-L", ARM64_SYSROOT, &binary]);
        c
    } else {
        Command::new(&binary)
    };
    if from_secret {
        let secret = std::env::var("TOLLGATE_BENCH_SECRET")
            .expect("TOLLGATE_BENCH_SECRET set by make bench");
        command
            .env_remove("TOLLGATE_HASH_KEY")
            .env("TOLLGATE_HASH_KEY_SECRET", secret);
    } else {
        command.env_remove("TOLLGATE_HASH_KEY_SECRET");
    }
    let started = Instant::now();
    let mut child = command
        .env("AWS_LAMBDA_RUNTIME_API", addr.to_string())
        .env("AWS_LAMBDA_FUNCTION_NAME", "validate")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/validate")
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "bench")
        .env("TOLLGATE_LOG", "warn")
        .env("TOLLGATE_WARM_UP", if warm_up { "1" } else { "0" })
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the validate binary");
    let pid = child.id();
    let state = {
        let guard = emu.state.lock().unwrap();
        let (guard, _) = emu
            .done
            .wait_timeout_while(guard, Duration::from_secs(120), |s| {
                s.answered < invocations && s.errors.is_empty()
            })
            .unwrap();
        guard
    };
    let rss = peak_rss_kib(pid);
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        state.errors.is_empty(),
        "runtime errors: {:?}",
        state.errors
    );
    assert_eq!(state.answered, invocations, "all invocations answered");
    assert_eq!(state.refused, 0, "every validate admitted");
    let init = state
        .first_next
        .expect("asked for work")
        .duration_since(started);
    let mut lat = state.latencies_us.clone();
    let first = lat[0];
    println!("first_invocation_us {first:.0}");
    println!("invocation_median_us {:.0}", median(&mut lat));
    println!("init_ms {:.1}", init.as_secs_f64() * 1000.0);
    println!("rss_mb {:.1}", rss as f64 / 1024.0);
}
