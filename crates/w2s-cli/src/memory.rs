//! How the process's allocator hands memory back to the system.
//!
//! glibc's defaults return freed memory eagerly: buffers above a (dynamic, at most 32 MB)
//! threshold get their own mapping, unmapped on free, and the heap's free top is trimmed. A
//! training step frees and reallocates the same activation and gradient buffers every step, so
//! each step page-faulted ~160 MB back in (40,000 faults per MiniLM-L6 step, each a zeroed page
//! and, on a VM, a TLB-shootdown IPI). Keeping freed memory in the heap removes every
//! steady-state fault: +10-15% tokens/s on a MiniLM-L6 step, peak RSS no higher
//! (docs/journal.md). Set `W2S_MALLOC=default` to keep glibc's defaults.

/// Whether this process keeps freed memory: on glibc, unless the user asked for glibc's own
/// policy (`W2S_MALLOC=default`) or tuned glibc themselves.
fn keeps() -> bool {
    cfg!(all(target_os = "linux", target_env = "gnu"))
        && !std::env::var("W2S_MALLOC").is_ok_and(|v| v == "default")
        && std::env::var_os("GLIBC_TUNABLES").is_none()
        && !std::env::vars_os().any(|(k, _)| k.to_string_lossy().starts_with("MALLOC_"))
}

/// Keeps freed memory in the heap for reuse (glibc only; elsewhere nothing changes).
pub fn keep_freed_memory() {
    if !keeps() {
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
    }
}

/// The allocator policy in force, for benchmark headers.
pub fn policy() -> &'static str {
    if keeps() {
        "freed memory kept in the heap"
    } else {
        "the system allocator's defaults"
    }
}
