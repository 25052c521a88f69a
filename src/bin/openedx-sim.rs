//! openedx-sim: the bundled Open edX program-enrollment simulator (CONTRACT v2 "a second target"). A shim: the
//! command line is `canvas_sim::openedx::cli` in crates/canvas-sim, kept a target of this package for the reasons
//! `src/bin/canvas-sim.rs` gives (`cargo build --release` builds it; tests get `CARGO_BIN_EXE_openedx-sim`).

fn main() -> std::process::ExitCode {
    canvas_sim::openedx::cli::main()
}
