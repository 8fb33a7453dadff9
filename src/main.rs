fn main() -> std::process::ExitCode {
    std::process::ExitCode::from(krun::app::main())
}
