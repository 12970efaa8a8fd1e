//! `warden healthcheck`: GET /v2/health/ready on loopback with a raw HTTP/1.0
//! request (no client library, no shell in the image). Exit 0 when 200.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::Duration;

/// True when the local server answers 200 within `timeout`.
pub fn check(port: u16, timeout: Duration) -> Result<bool, std::io::Error> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut s = TcpStream::connect_timeout(&addr, timeout)?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    s.write_all(b"GET /v2/health/ready HTTP/1.0\r\nHost: localhost\r\n\r\n")?;
    let mut head = [0u8; 16];
    let mut n = 0;
    while n < head.len() {
        match s.read(&mut head[n..])? {
            0 => break,
            k => n += k,
        }
    }
    let line = String::from_utf8_lossy(&head[..n]);
    Ok(line.starts_with("HTTP/1.1 200") || line.starts_with("HTTP/1.0 200"))
}
