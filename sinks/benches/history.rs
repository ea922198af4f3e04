//! History write and compaction throughput (see `twinline_sinks::history::bench`). Prints a
//! table. `cargo bench -p twinline-sinks --bench history [-- ROWS]`; the release binary runs
//! the same measurement as `twinline bench --history`.

fn main() {
    let rows: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(4_000_000);
    let tmp = tempfile::tempdir().unwrap();
    let t = twinline_sinks::history::bench::throughput(tmp.path(), rows, 50, 16).unwrap();
    print!("{}", t.table());
}
