//! The clients: one request per attempt, bounded by a timeout.

use std::{
    io::{Read, Write},
    net::{TcpStream, UdpSocket},
    time::Instant,
};

use anyhow::{Context, Result, bail};

use crate::ClientArgs;

/// Runs `request` `args.count` times, printing each reply. The first request
/// is retried for up to `args.retry_ms` while it fails.
pub fn repeat(args: &ClientArgs, mut request: impl FnMut() -> Result<String>) -> Result<()> {
    let started = Instant::now();
    let first = loop {
        match request() {
            Ok(reply) => break reply,
            Err(err) if started.elapsed() >= args.retry() => return Err(err),
            Err(_) => std::thread::sleep(std::time::Duration::from_millis(50)),
        }
    };
    println!("{}", first.trim_end());
    for _ in 1..args.count {
        println!("{}", request()?.trim_end());
    }
    Ok(())
}

/// One TCP connection: send the message, read the echo of the same length.
pub fn tcp(args: &ClientArgs, message: &str) -> Result<String> {
    let mut stream = TcpStream::connect_timeout(&args.to, args.timeout())
        .with_context(|| format!("connecting to {}", args.to))?;
    stream.set_read_timeout(Some(args.timeout()))?;
    stream.write_all(message.as_bytes())?;
    let mut reply = vec![0u8; message.len()];
    stream
        .read_exact(&mut reply)
        .with_context(|| format!("reading the echo from {}", args.to))?;
    Ok(String::from_utf8_lossy(&reply).into_owned())
}

/// One datagram out, one back.
pub fn udp(args: &ClientArgs, message: &str) -> Result<String> {
    let socket = UdpSocket::bind(("0.0.0.0", 0))?;
    socket.set_read_timeout(Some(args.timeout()))?;
    socket.connect(args.to)?;
    socket.send(message.as_bytes())?;
    let mut buf = [0u8; 65536];
    let n = socket
        .recv(&mut buf)
        .with_context(|| format!("waiting for the echo from {}", args.to))?;
    Ok(String::from_utf8_lossy(&buf[..n]).into_owned())
}

/// One HTTP/1.1 GET / on a fresh connection; returns the body.
pub fn http_get(args: &ClientArgs) -> Result<String> {
    let mut stream = TcpStream::connect_timeout(&args.to, args.timeout())
        .with_context(|| format!("connecting to {}", args.to))?;
    stream.set_read_timeout(Some(args.timeout()))?;
    write!(
        stream,
        "GET / HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        args.to
    )?;
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .with_context(|| format!("reading the response from {}", args.to))?;
    let Some((head, body)) = response.split_once("\r\n\r\n") else {
        bail!("malformed HTTP response from {}: {response:?}", args.to);
    };
    if !head.starts_with("HTTP/1.1 200") {
        bail!(
            "{} answered {}",
            args.to,
            head.lines().next().unwrap_or_default()
        );
    }
    Ok(body.to_owned())
}
