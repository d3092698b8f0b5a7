//! How the process's allocator hands memory back to the system.
//!
//! glibc's defaults return freed memory eagerly: buffers above a (dynamic, at most 32 MB)
//! threshold get their own mapping, unmapped on free, and the heap's free top is trimmed. A
//! training step frees and reallocates the same activation and gradient buffers every step, so
//! each step page-faulted ~160 MB back in (40,000 faults per MiniLM-L6 step, each a zeroed page
//! and, on a VM, a TLB-shootdown IPI). Keeping freed memory in the heap removes every
//! steady-state fault: +10-15% tokens/s on a MiniLM-L6 step, peak RSS no higher
//! (docs/results.md). Set `W2S_MALLOC=default` to keep glibc's defaults.

use std::sync::atomic::{AtomicBool, Ordering};

/// Set once [`keep_freed_memory`] changed glibc's parameters.
static KEPT: AtomicBool = AtomicBool::new(false);

/// Whether the user asked for glibc's own policy, or tuned glibc themselves.
fn user_choice() -> bool {
    std::env::var("W2S_MALLOC").is_ok_and(|v| v == "default")
        || std::env::var_os("GLIBC_TUNABLES").is_some()
        || std::env::vars_os().any(|(k, _)| k.to_string_lossy().starts_with("MALLOC_"))
}

/// Keeps freed memory in the heap for reuse (glibc only; elsewhere nothing changes).
pub fn keep_freed_memory() {
    if user_choice() {
        return;
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; called before any thread starts.
    unsafe {
        // Buffers up to 1 GiB come from the heap (so are reused) instead of fresh mappings...
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 30);
        // ...freed memory is never trimmed off the heap's top...
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
        // ...and the heap grows in 64 MB steps, fewer brk calls while a model loads.
        libc::mallopt(libc::M_TOP_PAD, 64 << 20);
        KEPT.store(true, Ordering::Relaxed);
    }
}

/// The allocator policy in force, for benchmark headers.
pub fn policy() -> &'static str {
    if KEPT.load(Ordering::Relaxed) {
        "freed memory kept in the heap"
    } else {
        "the system allocator's defaults"
    }
}
