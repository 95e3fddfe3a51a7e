//! sipsensor-collector: filled in by its own issue.

fn main() {
    println!("sipsensor-collector {}", env!("CARGO_PKG_VERSION"));
}
