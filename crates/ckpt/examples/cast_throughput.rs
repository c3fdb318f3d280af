//! Throughput of the dtype casts: `cargo run --release -p ckpt --example cast_throughput [N]`.
//!
//! Casts N elements (default 100M) float32 -> bfloat16 and bfloat16 -> float32, float32 ->
//! float16 and float32 -> float8_e4m3fn: the kernel on one thread, the kernel on all cores, and
//! the streamed path of a writer (`CastView::for_each_chunk`, 1 MiB chunks).

#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::cast_precision_loss)]

use std::time::Instant;

use ckpt::cast::{Cast, CastStats, CastView};
use ckpt::model::{ByteOrder, Storage};
use ckpt::{Dtype, TensorView};

fn main() -> ckpt::Result<()> {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(100_000_000);
    // Weight-like values (a cheap LCG): random sign and mantissa, magnitudes 2^-8..2^8, and
    // one random bit pattern (NaN, inf, subnormal, anything) in 2^20.
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let f32_input: Vec<u8> = (0..n)
        .flat_map(|_| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let bits = (state >> 32) as u32;
            let bits = if state & 0xF_FFFF == 0 {
                bits
            } else {
                (bits & 0x807F_FFFF) | (((bits >> 23) % 16 + 119) << 23)
            };
            bits.to_le_bytes()
        })
        .collect();
    let bf16_input = {
        let mut out = Vec::new();
        Cast::new(Dtype::Float32, Dtype::BFloat16)?.apply(
            &f32_input,
            &mut out,
            &mut CastStats::default(),
        )?;
        out
    };
    println!(
        "{n} elements; MB/s and Melem/s are of input; {} rayon threads",
        rayon::current_num_threads()
    );
    for (from, to, input) in [
        (Dtype::Float32, Dtype::BFloat16, &f32_input),
        (Dtype::BFloat16, Dtype::Float32, &bf16_input),
        (Dtype::Float32, Dtype::Float16, &f32_input),
        (Dtype::Float32, Dtype::Float8E4M3Fn, &f32_input),
    ] {
        let cast = Cast::new(from, to)?;
        let mut out = vec![0u8; cast.output_len(input.len())?];
        let one = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap();
        let single = best_of(3, || {
            one.install(|| {
                cast.apply_to_slice(input, &mut out, &mut CastStats::default())
                    .unwrap();
            });
        });
        let all = best_of(3, || {
            cast.apply_to_slice(input, &mut out, &mut CastStats::default())
                .unwrap();
        });
        let view = TensorView::contiguous(from, vec![n], Storage::new(input, ByteOrder::Little))?;
        let cast_view = CastView::new(&view, Some(to))?;
        let streamed = best_of(3, || {
            let mut sum = 0u64;
            cast_view
                .for_each_chunk(|chunk| {
                    sum = sum.wrapping_add(u64::from(chunk.last().copied().unwrap_or(0)));
                    Ok(())
                })
                .unwrap();
            std::hint::black_box(sum);
        });
        for (what, seconds) in [
            ("kernel, 1 thread", single),
            ("kernel, all cores", all),
            ("streamed (CastView)", streamed),
        ] {
            println!(
                "{from:>8} -> {to:<13} {what:<20} {:>7.3} s  {:>6.0} Melem/s  {:>6.0} MB/s",
                seconds,
                n as f64 / seconds / 1e6,
                input.len() as f64 / seconds / 1e6
            );
        }
    }
    Ok(())
}

fn best_of(runs: usize, mut f: impl FnMut()) -> f64 {
    (0..runs)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}
