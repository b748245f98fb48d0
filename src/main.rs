//! The `audit-export` binary: everything lives in the library's `cli`.

fn main() -> std::process::ExitCode {
    audit_export::cli::main()
}
