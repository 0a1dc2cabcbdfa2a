//! Liveness and readiness probes: httpGet and tcpSocket from the node to
//! the pod's address (as the kubelet does), exec inside the pod's network
//! namespace, each bounded by the probe's timeout.

use std::{
    io::{Read, Write},
    net::{Ipv4Addr, SocketAddr, TcpStream},
    path::Path,
    time::{Duration, Instant},
};

use rudder_api::core::{Container, IntOrString, Probe};
use rudder_netlink::NetworkNamespace;

/// Runs `probe` once against the pod at `ip`; why it failed, if it did
/// (the text of the `Unhealthy` event).
pub fn run(probe: &Probe, container: &Container, ip: Ipv4Addr, netns: &Path) -> Result<(), String> {
    let timeout = super::deadline::seconds(probe.timeout_seconds, 1, 1);
    if let Some(http) = &probe.http_get {
        let Some(port) = resolve_port(&http.port, container) else {
            return Err(format!("the container has no port {:?}", http.port));
        };
        return http_get(
            SocketAddr::from((ip, port)),
            http.path.as_deref().unwrap_or("/"),
            timeout,
        );
    }
    if let Some(tcp) = &probe.tcp_socket {
        let Some(port) = resolve_port(&tcp.port, container) else {
            return Err(format!("the container has no port {:?}", tcp.port));
        };
        let addr = SocketAddr::from((ip, port));
        return TcpStream::connect_timeout(&addr, timeout)
            .map(drop)
            .map_err(|err| format!("dial tcp {addr}: {err}"));
    }
    if let Some(exec) = &probe.exec {
        return exec_in(&exec.command, netns, timeout);
    }
    // A probe with no handler is a spec error the API should have refused;
    // treat it as passing rather than killing the container over it.
    Ok(())
}

/// A port by number, or by the name of one of the container's ports.
fn resolve_port(port: &IntOrString, container: &Container) -> Option<u16> {
    match port {
        IntOrString::Int(n) => u16::try_from(*n).ok(),
        IntOrString::String(name) => container
            .ports
            .iter()
            .find(|p| p.name.as_deref() == Some(name.as_str()))
            .and_then(|p| u16::try_from(p.container_port).ok()),
    }
}

/// GET `path`; passes on a status from 200 to 399.
fn http_get(addr: SocketAddr, path: &str, timeout: Duration) -> Result<(), String> {
    let url = format!("http://{addr}{path}");
    // The whole exchange is bounded, not each read: a server dripping a
    // byte at a time cannot stretch the probe past its timeout.
    let give_up = super::deadline::after(Instant::now(), timeout);
    let left = || {
        let left = give_up.saturating_duration_since(Instant::now());
        (!left.is_zero()).then_some(left)
    };
    let timed_out = || format!("Get {url:?}: timed out after {timeout:?}");
    let mut stream = TcpStream::connect_timeout(&addr, timeout)
        .map_err(|err| format!("Get {url:?}: dial tcp {addr}: {err}"))?;
    let _ = stream.set_write_timeout(Some(timeout));
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: rudder-probe\r\nConnection: close\r\n\r\n")
        .map_err(|err| format!("Get {url:?}: {err}"))?;
    let mut head = [0u8; 12];
    let mut got = 0;
    while got < head.len() {
        let wait = left().ok_or_else(timed_out)?;
        let _ = stream.set_read_timeout(Some(wait));
        match stream.read(&mut head[got..]) {
            Ok(0) => return Err(format!("Get {url:?}: the server closed the connection")),
            Ok(n) => got += n,
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
            Err(err) => return Err(format!("Get {url:?}: reading the response: {err}")),
        }
    }
    let status: u16 = std::str::from_utf8(&head[9..12])
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    if (200..400).contains(&status) {
        Ok(())
    } else {
        Err(format!("HTTP probe failed with statuscode: {status}"))
    }
}

/// Runs `command` in the pod's network namespace (entered with `setns` in
/// the child, as the pod's containers are); passes on exit code 0.
fn exec_in(command: &[String], netns: &Path, timeout: Duration) -> Result<(), String> {
    let Some((program, args)) = command.split_first() else {
        return Err("exec probe without a command".to_owned());
    };
    let namespace =
        NetworkNamespace::open(netns).map_err(|err| format!("exec {program:?}: {err}"))?;
    let mut cmd = std::process::Command::new(program);
    cmd.args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut child = namespace
        .spawn(cmd)
        .map_err(|err| format!("exec {program:?}: {err}"))?;
    let started = std::time::Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => return Ok(()),
            Ok(Some(status)) => return Err(format!("command {command:?} exited with {status}")),
            Ok(None) if started.elapsed() < timeout => {
                std::thread::sleep(Duration::from_millis(10));
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("command {command:?} timed out after {timeout:?}"));
            }
        }
    }
}
