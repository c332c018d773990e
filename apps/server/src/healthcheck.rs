//! `tenantry healthcheck`: asks the local server whether it is ready, for container health
//! checks. The runtime image has no shell, curl or wget, so the binary asks itself: one plain
//! HTTP/1.1 request over loopback, bounded in time, exit code 0 only on `200`.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::time::Duration;

/// Where a server bound to `bind` answers on this host: an unspecified address (`0.0.0.0`,
/// `[::]`) is reached through loopback of the same family.
#[must_use]
pub fn local_target(bind: SocketAddr) -> SocketAddr {
    let ip = match bind.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, bind.port())
}

/// GETs `path` from `target`; `Ok(status)` when an HTTP answer came within `timeout`.
///
/// # Errors
/// The connection failed, timed out, or the answer was not HTTP.
pub fn probe(target: SocketAddr, path: &str, timeout: Duration) -> Result<u16, String> {
    let mut stream =
        TcpStream::connect_timeout(&target, timeout).map_err(|err| format!("cannot connect to {target}: {err}"))?;
    stream.set_read_timeout(Some(timeout)).map_err(|err| err.to_string())?;
    stream.set_write_timeout(Some(timeout)).map_err(|err| err.to_string())?;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {target}\r\nUser-Agent: tenantry-healthcheck\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).map_err(|err| format!("sending to {target}: {err}"))?;
    let mut head = [0_u8; 64];
    let mut read = 0;
    while read < 12 {
        let n = stream.read(&mut head[read..]).map_err(|err| format!("reading from {target}: {err}"))?;
        if n == 0 {
            break;
        }
        read += n;
    }
    let line = String::from_utf8_lossy(&head[..read]);
    let mut parts = line.split(' ');
    match (parts.next(), parts.next().and_then(|code| code.parse::<u16>().ok())) {
        (Some(version), Some(status)) if version.starts_with("HTTP/1.") => Ok(status),
        _ => Err(format!("{target} did not answer HTTP")),
    }
}

#[cfg(test)]
mod tests {
    use std::net::TcpListener;

    use super::*;

    fn answering(status: &'static str) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let address = listener.local_addr().expect("address");
        std::thread::spawn(move || {
            if let Ok((mut stream, _)) = listener.accept() {
                let mut buffer = [0_u8; 1024];
                let _ = stream.read(&mut buffer);
                let _ = stream.write_all(format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\n\r\n").as_bytes());
            }
        });
        address
    }

    #[test]
    fn the_status_of_the_answer_decides() {
        assert_eq!(probe(answering("200 OK"), "/health/ready", Duration::from_secs(2)), Ok(200));
        assert_eq!(probe(answering("503 Service Unavailable"), "/health/ready", Duration::from_secs(2)), Ok(503));
    }

    #[test]
    fn nobody_listening_is_an_error_not_a_hang() {
        let port = TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("address");
        assert!(probe(port, "/health/ready", Duration::from_secs(2)).is_err());
    }

    #[test]
    fn unspecified_binds_are_reached_through_loopback() {
        assert_eq!(local_target("0.0.0.0:8080".parse().expect("v4")), "127.0.0.1:8080".parse().expect("v4"));
        assert_eq!(local_target("[::]:8080".parse().expect("v6")), "[::1]:8080".parse().expect("v6"));
        assert_eq!(local_target("10.1.2.3:80".parse().expect("v4")), "10.1.2.3:80".parse().expect("v4"));
    }
}
