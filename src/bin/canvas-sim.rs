//! canvas-sim: the bundled Canvas REST simulator (CONTRACT.md "Binaries"). A shim: the command line is
//! `canvas_sim::cli` in crates/canvas-sim. It stays a target of this package so that `cargo build --release` builds
//! both binaries and the tests can run it through `CARGO_BIN_EXE_canvas-sim` (set only for the tested package's bins).

fn main() -> std::process::ExitCode {
    canvas_sim::cli::main()
}
