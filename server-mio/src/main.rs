//! The `antenna` binary.

fn main() {
    eprintln!("antenna: runtime not wired yet");
    std::process::exit(1);
}
