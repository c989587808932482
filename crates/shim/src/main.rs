//! `podhost-shim` binary; see the library for the behaviour.
fn main() {
    std::process::exit(podhost_shim::main_entry());
}
