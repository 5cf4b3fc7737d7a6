//! Records the SIMD features this crate is compiled for: candle (and ggml)
//! pick their kernels at compile time, so they belong in every fingerprint.
fn main() {
    let all = std::env::var("CARGO_CFG_TARGET_FEATURE").unwrap_or_default();
    let simd = [
        "sse", "ssse", "avx", "fma", "f16c", "amx", "neon", "sve", "dotprod", "i8mm", "fp16",
        "simd128",
    ];
    let features: Vec<&str> = all
        .split(',')
        .filter(|f| simd.iter().any(|p| f.starts_with(p)))
        .collect();
    println!(
        "cargo:rustc-env=LMTUNE_TARGET_FEATURES={}",
        features.join(",")
    );
    println!("cargo:rerun-if-env-changed=CARGO_ENCODED_RUSTFLAGS");
}
