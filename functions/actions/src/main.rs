//! Wiring only (filled in once the AWS adapters of the write half exist).
fn main() {}
