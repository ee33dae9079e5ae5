fn main() -> std::process::ExitCode {
    warden::cli::run()
}
