//! A clean stop on SIGTERM, SIGINT and SIGHUP (Slurm's time limit and preemption send SIGTERM
//! before SIGKILL; Ctrl-C sends SIGINT): worker processes are asked to stop too, the claims this
//! process holds are released and its temporary files removed, and it exits with 128 + the
//! signal's number. A rerun then starts at once: nothing of the stopped run is left holding a
//! claim until its timeout. What was already written stays, as after SIGKILL: every result is
//! renamed into place whole.
//!
//! The signals are blocked in every thread (the mask is set before any thread starts, and threads
//! inherit it) and taken by one thread with `sigwait`, so the cleanup runs as ordinary code, not
//! in a signal handler. Child processes start with an empty mask (std resets it when spawning).
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Worker processes to stop first.
static CHILDREN: Mutex<Vec<u32>> = Mutex::new(Vec::new());

/// Set once a stop has begun.
static STOPPING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// True once a stop signal was received: what fails from then on (workers that exit, a claim
/// that is gone) is the stop, not an error to report.
pub fn stopping() -> bool {
    STOPPING.load(std::sync::atomic::Ordering::SeqCst)
}

/// Blocks the calling thread for good when a stop is under way, so that the stop thread, not a
/// `main` returning with the errors the stop caused, ends the process (with its exit code).
pub fn wait_if_stopping() {
    while stopping() {
        std::thread::park();
    }
}

/// How long a stop waits for its workers to stop.
const WORKERS_GRACE: Duration = Duration::from_secs(20);

const SIGNALS: [libc::c_int; 3] = [libc::SIGTERM, libc::SIGINT, libc::SIGHUP];

/// Blocks the stop signals and starts the thread that waits for them. Call it first thing in
/// `main`, before any other thread is started: threads started earlier would still take the
/// signals' default action (death without cleanup).
pub fn install() {
    // SAFETY: plain libc calls on a local, initialised signal set.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in SIGNALS {
            libc::sigaddset(&mut set, s);
        }
        if libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) != 0 {
            tracing::warn!("cannot block SIGTERM and SIGINT: a stop will not clean up");
            return;
        }
        let spawned = std::thread::Builder::new()
            .name("w2s-stop".into())
            .spawn(move || {
                let mut sig: libc::c_int = 0;
                if libc::sigwait(&set, &mut sig) == 0 {
                    stop(sig);
                }
            });
        if let Err(e) = spawned {
            tracing::warn!("cannot start the stop thread ({e}): a stop will not clean up");
        }
    }
}

/// A worker process to stop (with SIGTERM) before this one stops.
pub fn register_child(pid: u32) {
    if let Ok(mut c) = CHILDREN.lock() {
        c.push(pid);
    }
}

/// A worker process that has exited.
pub fn forget_child(pid: u32) {
    if let Ok(mut c) = CHILDREN.lock() {
        c.retain(|&p| p != pid);
    }
}

fn name(sig: libc::c_int) -> &'static str {
    match sig {
        libc::SIGTERM => "SIGTERM",
        libc::SIGINT => "SIGINT",
        libc::SIGHUP => "SIGHUP",
        _ => "a signal",
    }
}

/// Stops the workers, releases claims, removes temporary files and exits.
fn stop(sig: libc::c_int) -> ! {
    STOPPING.store(true, std::sync::atomic::Ordering::SeqCst);
    let children = CHILDREN.lock().map(|c| c.clone()).unwrap_or_default();
    eprintln!(
        "\nw2s: {} received: stopping{} and releasing what this process holds",
        name(sig),
        if children.is_empty() {
            String::new()
        } else {
            format!(" {} workers", children.len())
        }
    );
    for &pid in &children {
        // SAFETY: sending a signal to a process this one started.
        unsafe { libc::kill(pid as libc::pid_t, libc::SIGTERM) };
    }
    let start = Instant::now();
    while children.iter().any(|&p| crate::claim::pid_alive(p)) && start.elapsed() < WORKERS_GRACE {
        std::thread::sleep(Duration::from_millis(50));
    }
    let claims = crate::claim::release_all();
    let temps = crate::cache::remove_live_temps();
    eprintln!("w2s: released {claims} claims, removed {temps} temporary files; results already written are kept");
    std::process::exit(128 + sig)
}
