use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = match rostersync::cli::Cli::parse_args() {
        Ok(cli) => cli,
        Err(usage) => return rostersync::cli::exit_code(Err(usage)),
    };
    // The process holds an admin token in memory: never write it to a core file (RELIABILITY.md #18).
    disable_core_dumps();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            return rostersync::cli::exit_code(Err(rostersync::cli::CommandError::Runtime(e)));
        }
    };
    runtime.block_on(rostersync::cli::run(cli))
}

fn disable_core_dumps() {
    let zero = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: setrlimit with a valid, initialised struct has no other preconditions.
    unsafe {
        libc::setrlimit(libc::RLIMIT_CORE, &zero);
        libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0);
    }
}
