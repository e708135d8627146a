//! Hostile: tries to reach outside the sandbox (files, environment,
//! arguments, stdin, sockets, name lookups) and reports what it got. The
//! tests assert that it got nothing.
use std::io::Read;
use std::net::{TcpListener, TcpStream, ToSocketAddrs, UdpSocket};

use corral_sdk::Error;
use serde_json::{Value, json};

fn attempt<T>(f: impl FnOnce() -> std::io::Result<T>, show: impl FnOnce(T) -> Value) -> Value {
    match f() {
        Ok(v) => json!({ "ok": show(v) }),
        Err(e) => json!({ "denied": e.to_string() }),
    }
}

fn escape(_input: Value) -> Result<Value, Error> {
    let mut stdin = String::new();
    Ok(json!({
        "read_file": attempt(|| std::fs::read_to_string("/etc/passwd"), Value::from),
        "read_relative_file": attempt(|| std::fs::read_to_string("Cargo.toml"), Value::from),
        "list_root": attempt(|| std::fs::read_dir("/").map(|d| d.count()), Value::from),
        "write_file": attempt(|| std::fs::write("/tmp/corral-escape", b"x"), |_| Value::Null),
        "current_dir": attempt(std::env::current_dir, |p| Value::from(p.display().to_string())),
        "env": std::env::vars().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>(),
        "args": std::env::args().collect::<Vec<_>>(),
        "stdin": attempt(|| std::io::stdin().read_to_string(&mut stdin), Value::from),
        "tcp_connect": attempt(|| TcpStream::connect("127.0.0.1:5432"), |_| Value::from("connected")),
        "tcp_listen": attempt(|| TcpListener::bind("127.0.0.1:0"), |_| Value::from("listening")),
        "udp_bind": attempt(|| UdpSocket::bind("127.0.0.1:0"), |_| Value::from("bound")),
        "dns": attempt(|| "localhost:80".to_socket_addrs().map(|a| a.count()), Value::from),
    }))
}

corral_sdk::register!(escape);
