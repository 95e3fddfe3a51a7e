//! sipsensor-agent: filled in by its own issue.

fn main() {
    println!("sipsensor-agent {}", env!("CARGO_PKG_VERSION"));
}
