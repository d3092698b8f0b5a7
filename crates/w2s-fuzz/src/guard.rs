//! What makes a case fail besides an error: a panic (caught), an allocation larger than
//! [`crate::alloc_limit`] (refused by this crate's global allocator), or a hang (seen by a
//! watchdog thread). The last two cannot unwind, so they save the input into the target's corpus
//! folder and abort the process with a message naming the file.
use std::alloc::{GlobalAlloc, Layout, System};
use std::ffi::CString;
use std::panic::AssertUnwindSafe;
use std::path::Path;
use std::sync::atomic::{AtomicPtr, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::{Mutex, OnceLock};
use std::time::Instant;

/// The allocator of every binary that links this crate (the fuzz runner and its test).
struct Guard;

#[global_allocator]
static GLOBAL: Guard = Guard;

/// The largest single allocation allowed now (no limit outside a case).
static LIMIT: AtomicUsize = AtomicUsize::new(usize::MAX);
/// The input of the running case (null between cases).
static INPUT: AtomicPtr<u8> = AtomicPtr::new(std::ptr::null_mut());
static INPUT_LEN: AtomicUsize = AtomicUsize::new(0);
/// Where a hang's or an allocation's input is saved: a NUL-terminated path, leaked.
static SAVE_AS: AtomicPtr<libc::c_char> = AtomicPtr::new(std::ptr::null_mut());
/// Milliseconds since [`epoch`] at which the running case started (0 between cases).
static STARTED: AtomicU64 = AtomicU64::new(0);
/// Held by the watchdog while it saves an input, and by a case while it ends: the input is alive
/// whenever the watchdog reads it.
static ENDING: Mutex<()> = Mutex::new(());

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

fn now_ms() -> u64 {
    epoch().elapsed().as_millis() as u64 + 1
}

// SAFETY: every method forwards to the system allocator; the check before it allocates nothing.
unsafe impl GlobalAlloc for Guard {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        check(layout.size());
        System.alloc(layout)
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        check(layout.size());
        System.alloc_zeroed(layout)
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        check(new_size);
        System.realloc(ptr, layout, new_size)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
}

fn check(size: usize) {
    let limit = LIMIT.load(SeqCst);
    if size > limit {
        LIMIT.store(usize::MAX, SeqCst);
        // Inside the allocator: no allocation from here on, only raw writes.
        say(b"w2s-fuzz: a single allocation of ");
        say_number(size as u64);
        say(b" bytes, above the limit of ");
        say_number(limit as u64);
        say(b" for this input\n");
        save_and_abort();
    }
}

fn say(bytes: &[u8]) {
    // SAFETY: writing a valid buffer to standard error.
    unsafe { libc::write(2, bytes.as_ptr().cast(), bytes.len()) };
}

fn say_number(mut n: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    say(&buf[i..]);
}

/// Writes the running case's input to [`SAVE_AS`] and aborts, without allocating.
fn save_and_abort() -> ! {
    let path = SAVE_AS.load(SeqCst);
    let input = INPUT.load(SeqCst);
    if !path.is_null() && !input.is_null() {
        // SAFETY: `path` is a leaked NUL-terminated string; `input` is the running case's input,
        // alive until the case ends, which cannot happen meanwhile (this is its thread, or the
        // watchdog holding `ENDING`).
        unsafe {
            let fd = libc::open(path, libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC, 0o644);
            if fd >= 0 {
                libc::write(fd, input.cast(), INPUT_LEN.load(SeqCst));
                libc::close(fd);
                say(b"w2s-fuzz: the input is saved as ");
                say(std::ffi::CStr::from_ptr(path).to_bytes());
                say(b"\n");
            }
        }
    }
    std::process::abort()
}

/// Panic messages of the fuzzing thread, kept instead of printed.
fn last_panic() -> &'static Mutex<Option<String>> {
    static LAST: Mutex<Option<String>> = Mutex::new(None);
    &LAST
}

/// Replaces the panic hook (once) by one that records the message and prints nothing: a fuzz
/// run expects panics and reports them itself.
pub fn install_quiet_panic_hook() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        std::panic::set_hook(Box::new(|info| {
            let message = match info.payload().downcast_ref::<&str>() {
                Some(s) => s.to_string(),
                None => info
                    .payload()
                    .downcast_ref::<String>()
                    .cloned()
                    .unwrap_or_else(|| "a panic without a message".into()),
            };
            let at = info
                .location()
                .map(|l| format!(" at {}:{}", l.file(), l.line()))
                .unwrap_or_default();
            *last_panic().lock().unwrap_or_else(|p| p.into_inner()) =
                Some(format!("{message}{at}"));
        }));
        start_watchdog();
    });
}

fn start_watchdog() {
    std::thread::spawn(|| loop {
        std::thread::sleep(std::time::Duration::from_millis(250));
        let started = STARTED.load(SeqCst);
        if started != 0 && now_ms().saturating_sub(started) > crate::HANG.as_millis() as u64 {
            let _ending = ENDING.lock();
            if STARTED.load(SeqCst) == started {
                say(b"w2s-fuzz: a case ran past the hang limit\n");
                save_and_abort();
            }
        }
    });
}

/// Runs one case of `target` on `input` under the guards; `Err` with the message on a panic.
/// A hang or an oversized allocation saves the input as `crash_dir/crash-abort` and aborts.
pub fn watched<T>(
    target: &str,
    input: &[u8],
    crash_dir: &Path,
    case: impl FnOnce() -> T,
) -> Result<T, String> {
    set_save_path(target, crash_dir);
    INPUT_LEN.store(input.len(), SeqCst);
    INPUT.store(input.as_ptr().cast_mut(), SeqCst);
    STARTED.store(now_ms(), SeqCst);
    LIMIT.store(crate::alloc_limit(input.len()), SeqCst);
    let result = std::panic::catch_unwind(AssertUnwindSafe(case));
    LIMIT.store(usize::MAX, SeqCst);
    {
        let _ending = ENDING.lock().unwrap_or_else(|p| p.into_inner());
        STARTED.store(0, SeqCst);
        INPUT.store(std::ptr::null_mut(), SeqCst);
    }
    result.map_err(|_| {
        last_panic()
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            .unwrap_or_else(|| "a panic".into())
    })
}

/// Points [`SAVE_AS`] at `crash_dir/crash-abort` for `target` (once per target: the old path is
/// leaked, a few bytes per target).
fn set_save_path(target: &str, crash_dir: &Path) {
    static CURRENT: Mutex<String> = Mutex::new(String::new());
    let mut current = CURRENT.lock().unwrap_or_else(|p| p.into_inner());
    if *current != target {
        let path = crash_dir.join("crash-abort");
        let c = CString::new(path.to_string_lossy().into_owned()).unwrap_or_default();
        SAVE_AS.store(c.into_raw(), SeqCst);
        *current = target.to_string();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_is_caught_with_its_message() {
        install_quiet_panic_hook();
        let dir = tempfile::tempdir().unwrap();
        let r = watched("t", b"input", dir.path(), || -> u8 {
            panic!("bad byte {}", 3)
        });
        let m = r.unwrap_err();
        assert!(m.starts_with("bad byte 3 at "), "{m}");
        assert_eq!(watched("t", b"input", dir.path(), || 5), Ok(5));
    }

    /// An allocation above the limit aborts the process after saving the input: checked in a
    /// child process (this test binary, re-run on the test below with a switch).
    #[test]
    fn an_oversized_allocation_saves_the_input_and_aborts() {
        let dir = tempfile::tempdir().unwrap();
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "guard::tests::allocate_past_the_limit",
                "--nocapture",
            ])
            .env("W2S_FUZZ_ALLOC_CHILD", dir.path())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{stderr}");
        assert!(
            stderr.contains("a single allocation of 1073741824 bytes"),
            "{stderr}"
        );
        let saved = std::fs::read(dir.path().join("crash-abort")).unwrap();
        assert_eq!(saved, b"tiny input");
    }

    #[test]
    fn allocate_past_the_limit() {
        // Only as the child of the test above.
        let Some(dir) = std::env::var_os("W2S_FUZZ_ALLOC_CHILD") else {
            return;
        };
        let _ = watched("alloc", b"tiny input", Path::new(&dir), || {
            std::hint::black_box(vec![0u8; 1 << 30]).len()
        });
        unreachable!("the allocation must abort");
    }
}
