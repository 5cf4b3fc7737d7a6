//! Records the SIMD features this crate is compiled for: candle (and ggml)
//! pick their kernels at compile time, so they belong in every fingerprint.
//! With the llama.cpp backend, also compiles `cpp/memory_breakdown.cpp`, a C
//! face for llama.cpp's C++ memory breakdown (the dry run), against the very
//! llama.cpp source llama-cpp-sys-2 built.
fn main() {
    if std::env::var_os("CARGO_FEATURE_LLAMA_CPP").is_some() {
        build_memory_breakdown();
    }
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

/// The llama.cpp source tree llama-cpp-sys-2 built: its CMake cache (next to
/// the install dir it reports as `DEP_LLAMA_GGML_CMAKE_DIR`) names it.
fn llama_cpp_source() -> std::path::PathBuf {
    let cmake_dir = std::env::var("DEP_LLAMA_GGML_CMAKE_DIR")
        .expect("llama-cpp-sys-2 did not report DEP_LLAMA_GGML_CMAKE_DIR");
    let out = std::path::Path::new(&cmake_dir)
        .ancestors()
        .nth(2)
        .expect("DEP_LLAMA_GGML_CMAKE_DIR is OUT/lib/cmake")
        .to_path_buf();
    let cache = std::fs::read_to_string(out.join("build/CMakeCache.txt"))
        .expect("llama-cpp-sys-2's build/CMakeCache.txt");
    let home = cache
        .lines()
        .find_map(|l| l.strip_prefix("CMAKE_HOME_DIRECTORY:INTERNAL="))
        .expect("CMAKE_HOME_DIRECTORY in llama-cpp-sys-2's CMakeCache.txt");
    std::path::PathBuf::from(home)
}

fn build_memory_breakdown() {
    let src = llama_cpp_source();
    println!("cargo:rerun-if-changed=cpp/memory_breakdown.cpp");
    cc::Build::new()
        .cpp(true)
        .std("c++17")
        .file("cpp/memory_breakdown.cpp")
        .include(src.join("include"))
        .include(src.join("src"))
        .include(src.join("ggml/include"))
        .warnings(false)
        .compile("lmtune_memory_breakdown");
}
