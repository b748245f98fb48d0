//! Deflate levels on real export data: time and size of each level of the
//! deflate backend (zlib-rs, through flate2), block by block as
//! `storage::deflate` compresses (1 MiB blocks, no shared dictionary).
//! Compare with `zip -6` on the same file to choose `deflate::LEVEL`.
//!
//!     cargo run --release --example deflate_levels -- FILE
use std::io::Write;

fn main() {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: deflate_levels FILE");
        std::process::exit(2);
    };
    let data = match std::fs::read(&path) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("deflate_levels: cannot read {path}: {e}");
            std::process::exit(1);
        }
    };
    for level in 1u32..=9 {
        let t = std::time::Instant::now();
        let mut total = 0usize;
        for block in data.chunks(1 << 20) {
            let mut e =
                flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::new(level));
            e.write_all(block).expect("writing to memory");
            total += e.finish().expect("writing to memory").len();
        }
        println!(
            "level {level}: {:.2} s, {:.1} MiB",
            t.elapsed().as_secs_f64(),
            total as f64 / 1048576.0
        );
    }
}
