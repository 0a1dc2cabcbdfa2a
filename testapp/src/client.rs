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

/// A TCP connection to `args.to`, from `source_port` if given.
fn connect(args: &ClientArgs, source_port: Option<u16>) -> Result<TcpStream> {
    let Some(port) = source_port else {
        return TcpStream::connect_timeout(&args.to, args.timeout())
            .with_context(|| format!("connecting to {}", args.to));
    };
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket
        .bind(&std::net::SocketAddr::from(([0, 0, 0, 0], port)).into())
        .with_context(|| format!("binding source port {port}"))?;
    socket
        .connect_timeout(&args.to.into(), args.timeout())
        .with_context(|| format!("connecting to {} from port {port}", args.to))?;
    Ok(socket.into())
}

/// Requests on one connection, each answer printed as it comes.
pub fn http_keep_alive(
    args: &ClientArgs,
    pause: std::time::Duration,
    source_port: Option<u16>,
) -> Result<()> {
    let started = Instant::now();
    let stream = loop {
        match connect(args, source_port) {
            Ok(stream) => break stream,
            Err(err) if started.elapsed() >= args.retry() => return Err(err),
            Err(_) => std::thread::sleep(std::time::Duration::from_millis(50)),
        }
    };
    stream.set_read_timeout(Some(args.timeout()))?;
    let mut reader = std::io::BufReader::new(stream.try_clone()?);
    for i in 0..args.count {
        let what = || {
            format!(
                "request {} on the kept-alive connection to {} (local {}, {:?} after it opened, at unix time {:.3} s)",
                i + 1,
                args.to,
                stream
                    .local_addr()
                    .map_or_else(|_| "unknown".to_owned(), |a| a.to_string()),
                started.elapsed(),
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_secs_f64()
            )
        };
        write!(
            &stream,
            "GET {} HTTP/1.1\r\nHost: {}\r\n\r\n",
            args.path, args.to
        )
        .with_context(what)?;
        let body = read_response(&mut reader).with_context(what)?;
        println!("{}", body.trim_end());
        std::io::stdout().flush()?;
        std::thread::sleep(pause);
    }
    Ok(())
}

/// Reads one response with a Content-Length body; returns the body.
fn read_response(reader: &mut impl std::io::BufRead) -> Result<String> {
    let mut status = String::new();
    reader.read_line(&mut status)?;
    if !status.starts_with("HTTP/1.1 200") {
        bail!("unexpected response: {status:?}");
    }
    let mut length = 0usize;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 {
            bail!("connection closed in the headers");
        }
        if header.trim().is_empty() {
            break;
        }
        if let Some(value) = header.to_ascii_lowercase().strip_prefix("content-length:") {
            length = value.trim().parse().context("bad content-length")?;
        }
    }
    let mut body = vec![0u8; length];
    reader.read_exact(&mut body)?;
    Ok(String::from_utf8_lossy(&body).into_owned())
}

/// One datagram out and one back on an unconnected socket; the reply's
/// source address is part of the result.
pub fn udp_unconnected(args: &ClientArgs, message: &str) -> Result<String> {
    let socket = UdpSocket::bind(("0.0.0.0", 0))?;
    socket.set_read_timeout(Some(args.timeout()))?;
    socket.send_to(message.as_bytes(), args.to)?;
    let mut buf = [0u8; 65536];
    let (n, from) = socket
        .recv_from(&mut buf)
        .with_context(|| format!("waiting for the echo from {}", args.to))?;
    Ok(format!(
        "{} from={from}",
        String::from_utf8_lossy(&buf[..n])
    ))
}

/// One HTTP/1.1 GET on a fresh connection; returns the body.
pub fn http_get(args: &ClientArgs, source_port: Option<u16>) -> Result<String> {
    let mut stream = connect(args, source_port)?;
    stream.set_read_timeout(Some(args.timeout()))?;
    write!(
        stream,
        "GET {} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        args.path, args.to
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
