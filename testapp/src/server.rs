//! The servers: one thread per TCP connection, one loop for UDP.

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::{SocketAddr, TcpListener, TcpStream, UdpSocket},
    time::Duration,
};

use anyhow::{Context, Result};

/// Echoes every byte back on every connection.
pub fn tcp_echo(listen: SocketAddr) -> Result<()> {
    let listener = TcpListener::bind(listen).with_context(|| format!("binding {listen}"))?;
    announce(listen);
    for stream in listener.incoming() {
        let Ok(mut stream) = stream else { continue };
        // Small echoes go out at once (request/response clients wait on them).
        let _ = stream.set_nodelay(true);
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stream.read(&mut buf) {
                if n == 0 || stream.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        });
    }
    Ok(())
}

/// Listens and never accepts: a client's handshake completes in the
/// backlog, and whatever it sends is never answered.
pub fn silent(listen: SocketAddr) -> Result<()> {
    let _listener = TcpListener::bind(listen).with_context(|| format!("binding {listen}"))?;
    announce(listen);
    loop {
        std::thread::park();
    }
}

/// Echoes every datagram back to its sender.
pub fn udp_echo(listen: SocketAddr) -> Result<()> {
    let socket = UdpSocket::bind(listen).with_context(|| format!("binding {listen}"))?;
    announce(listen);
    let mut buf = [0u8; 65536];
    loop {
        let Ok((n, peer)) = socket.recv_from(&mut buf) else {
            continue;
        };
        let _ = socket.send_to(&buf[..n], peer);
    }
}

/// Answers every HTTP request with `pod=<name> client=<peer>`.
pub fn http(listen: SocketAddr, name: &str, drain: Duration) -> Result<()> {
    if !drain.is_zero() {
        exit_after_drain_on_sigterm(drain)?;
    }
    let listener = TcpListener::bind(listen).with_context(|| format!("binding {listen}"))?;
    announce(listen);
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        let name = name.to_owned();
        std::thread::spawn(move || {
            let _ = answer_http(stream, &name);
        });
    }
    Ok(())
}

/// SIGTERM no longer ends the process at once: a thread waits for it,
/// lets the server answer for `drain` more, then exits 0.
fn exit_after_drain_on_sigterm(drain: Duration) -> Result<()> {
    use nix::sys::signal::{SigSet, Signal};
    let mut term = SigSet::empty();
    term.add(Signal::SIGTERM);
    // Blocked here, before any other thread exists, so every thread
    // inherits the mask and only the waiter below takes the signal.
    term.thread_block().context("blocking SIGTERM")?;
    std::thread::spawn(move || {
        if term.wait().is_ok() {
            eprintln!("SIGTERM: draining for {} ms", drain.as_millis());
            std::thread::sleep(drain);
            std::process::exit(0);
        }
    });
    Ok(())
}

fn answer_http(stream: TcpStream, name: &str) -> std::io::Result<()> {
    let peer = stream.peer_addr()?;
    let mut reader = BufReader::new(stream.try_clone()?);
    // Keep-alive unless the client asks to close (HTTP/1.1 semantics).
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line)? == 0 {
            return Ok(());
        }
        // Read headers up to the blank line, noting whether to close after.
        let mut close = request_line.trim_end().ends_with("HTTP/1.0");
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header)? == 0 || header.trim().is_empty() {
                break;
            }
            let header = header.to_ascii_lowercase();
            if header.starts_with("connection:") && header.contains("close") {
                close = true;
            }
        }
        let body = format!("pod={name} client={peer}\n");
        let response = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        (&stream).write_all(response.as_bytes())?;
        if close {
            return Ok(());
        }
    }
}

/// `--name`, else $POD_NAME, else the hostname.
pub fn responder_name(name: Option<String>) -> String {
    name.or_else(|| std::env::var("POD_NAME").ok())
        .or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|h| h.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".into())
}

fn announce(listen: SocketAddr) {
    println!("listening on {listen}");
    let _ = std::io::stdout().flush();
}
