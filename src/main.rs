// mimalloc gives freed memory back to the system; glibc's malloc keeps the Argon2 buffers of every hashing
// thread resident after a burst of logins.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` in mimalloc.h's `mi_option_e` (the same index in mimalloc 2 and 3); the Rust
/// bindings do not name it.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

fn main() -> std::process::ExitCode {
    // mimalloc purges freed memory 10 ms after the free, but only when some thread allocates again later; an
    // idle server kept the 7 MiB Argon2 buffer of its last login resident (bench/run.sh: 41.7 MB after one
    // login, 29.3 MB with immediate purging, S1 unchanged within noise).
    // SAFETY: mi_option_set stores one integer option; it may be called at any time from any thread.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0) };
    warden::cli::run()
}
