//! Prints the webhook verification benchmark table:
//! `cargo run -p entra-sync-hr --example webhook_bench --release -- [iterations]`.
#![allow(clippy::print_stdout)]

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let iterations = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(2000);
    let report = entra_sync_hr::bench::run(iterations).await;
    print!("{report}");
}
