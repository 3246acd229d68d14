//! TIFF read/write throughput on 1024² u16 planes (a camera tile), uncompressed and Deflate.
//!
//! The files it reads are left in `target/bench-tiff/` so `bench/tiff_throughput.sh` can time
//! Python `tifffile` on the very same bytes and print the ratio.

use std::hint::black_box;
use std::path::PathBuf;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use hcs_vfs::PlaneData;
use hcs_vfs::tiff::{TiffCompression, TiffLimits, read_tiff, write_tiff};
use ndarray::Array2;

fn tile() -> PlaneData {
    // Smooth background + sparse bright spots + pseudo-noise: compresses like real data.
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    PlaneData::U16(Array2::from_shape_fn((1024, 1024), |(y, x)| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let spot = if (x / 37 + y / 41) % 7 == 0 { 9000.0 } else { 0.0 };
        (800.0 + 200.0 * ((x as f64 / 90.0).sin() + (y as f64 / 70.0).cos()) + spot + (state % 200) as f64) as u16
    }))
}

fn dir() -> PathBuf {
    let d = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/bench-tiff");
    std::fs::create_dir_all(&d).expect("bench dir");
    d
}

fn bench(c: &mut Criterion) {
    let plane = tile();
    let bytes = (1024 * 1024 * 2) as u64;
    let mut group = c.benchmark_group("tiff");
    group.throughput(Throughput::Bytes(bytes));
    for (name, compression) in [("uncompressed", TiffCompression::None), ("deflate", TiffCompression::Deflate)] {
        let path = dir().join(format!("{name}.tif"));
        write_tiff(&path, std::slice::from_ref(&plane), compression).expect("write fixture");
        group.bench_function(format!("read_{name}"), |b| {
            b.iter(|| black_box(read_tiff(&path, TiffLimits::default()).expect("read")))
        });
        let out = dir().join(format!("out_{name}.tif"));
        group.bench_function(format!("write_{name}"), |b| {
            b.iter(|| write_tiff(&out, std::slice::from_ref(&plane), compression).expect("write"))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
