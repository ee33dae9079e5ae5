// mimalloc gives freed memory back to the system; glibc's malloc keeps the 19 MiB Argon2 buffers of every
// hashing thread resident after a burst of logins.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    warden::cli::run()
}
