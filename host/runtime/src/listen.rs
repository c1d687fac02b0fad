//! The one accept loop of weir's loopback endpoints (the control endpoint and the HTTP
//! endpoint): a thread of its own with a current-thread tokio runtime, at most a few
//! connections served at once (one more is answered as refused and closed), and an end when
//! the endpoint's stop flag is set (looked at ten times a second). Requests under way when
//! the flag is set may finish within the endpoint's grace time: a `weir reload` whose
//! rollback restarts the job still hears why.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpStream;

/// Serves connections of `listener` (non-blocking) on thread `name` until `stop`: each with
/// `serve`, at most `max` at once; a connection beyond them gets `refuse` instead. After
/// `stop`, connections still being served have up to `grace` to end (a `serve` that waits
/// for a next request should stop waiting once [`stopped`]).
pub fn spawn<S, SF, R, RF>(
    name: &str,
    listener: std::net::TcpListener,
    max: usize,
    stop: Arc<AtomicBool>,
    grace: Duration,
    serve: S,
    refuse: R,
) -> std::io::Result<std::thread::JoinHandle<()>>
where
    S: Fn(TcpStream) -> SF + Send + 'static,
    SF: Future<Output = ()> + Send + 'static,
    R: Fn(TcpStream) -> RF + Send + 'static,
    RF: Future<Output = ()> + Send,
{
    let what = name.to_string();
    std::thread::Builder::new().name(name.into()).spawn(move || {
        let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Ok(rt) => rt,
            Err(e) => return eprintln!("weir: {what}: {e}"),
        };
        rt.block_on(async move {
            let Ok(listener) = tokio::net::TcpListener::from_std(listener) else { return };
            let slots = Arc::new(tokio::sync::Semaphore::new(max));
            while !stop.load(Ordering::Relaxed) {
                let Ok(Ok((stream, _))) = tokio::time::timeout(Duration::from_millis(100), listener.accept()).await else { continue };
                match slots.clone().try_acquire_owned() {
                    Ok(slot) => {
                        let served = serve(stream);
                        tokio::spawn(async move {
                            served.await;
                            drop(slot);
                        });
                    }
                    Err(_) => {
                        let _ = tokio::time::timeout(Duration::from_secs(1), refuse(stream)).await;
                    }
                }
            }
            // Every slot back means no connection is left.
            let _ = tokio::time::timeout(grace, slots.acquire_many(max as u32)).await;
        });
    })
}

/// Resolves once `stop` is set (looked at ten times a second).
pub async fn stopped(stop: &AtomicBool) {
    while !stop.load(Ordering::Relaxed) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read as _;

    use tokio::io::AsyncWriteExt as _;

    use super::*;

    #[test]
    fn a_connection_beyond_the_limit_is_refused_and_the_loop_ends_when_told() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("addr");
        let stop = Arc::new(AtomicBool::new(false));
        // Each served connection is held open half a second; one at a time.
        let serve = |mut s: TcpStream| async move {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let _ = s.write_all(b"served").await;
        };
        let refuse = |mut s: TcpStream| async move {
            let _ = s.write_all(b"busy").await;
        };
        let thread = spawn("test-listen", listener, 1, stop.clone(), Duration::ZERO, serve, refuse).expect("spawn");
        let read = |mut c: std::net::TcpStream| {
            let mut text = String::new();
            c.read_to_string(&mut text).expect("read");
            text
        };
        let first = std::net::TcpStream::connect(addr).expect("connect");
        std::thread::sleep(Duration::from_millis(150));
        let second = std::net::TcpStream::connect(addr).expect("connect");
        assert_eq!(read(second), "busy");
        assert_eq!(read(first), "served");
        stop.store(true, Ordering::Relaxed);
        thread.join().expect("the loop ends");
    }
}
