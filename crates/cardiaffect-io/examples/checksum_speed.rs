//! How fast the artifact checksum (XXH3-128) runs here: `cargo run --release -p cardiaffect-io
//! --example checksum_speed [MiB]` prints GB/s over a buffer of MiB (default 1024), best of 5.
use std::time::Instant;

fn main() {
    let mib: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1024);
    let buf: Vec<u8> = (0..mib << 20).map(|i| (i * 31 % 251) as u8).collect();
    let mut best = f64::INFINITY;
    let mut sum = String::new();
    for _ in 0..5 {
        let t = Instant::now();
        sum = cardiaffect_io::artifact::checksum(&buf);
        best = best.min(t.elapsed().as_secs_f64());
    }
    println!(
        "xxh3-128 over {mib} MiB: {:.2} GB/s (best of 5, one thread; {sum})",
        buf.len() as f64 / best / 1e9
    );
}
