//! The reader on hostile input: crafted files that each break one rule, and
//! corrupted copies of the real test model (fetched by scripts/fetch-model.sh).
//! Every case must end in `Ok` or a typed `GgufError`, never a panic, and
//! never cost more memory than the input justifies.

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use lmtune_gguf::{GgufError, GgufFile, Limits};

// ---------------------------------------------------------------------------
// Allocation tracking: VmHWM only counts pages that were touched, so a huge
// `Vec::with_capacity` that is never filled would not show there. The test
// binary's allocator also records the largest single request.

struct Tracking;

static LARGEST_ALLOC: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Tracking {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LARGEST_ALLOC.fetch_max(layout.size(), Ordering::Relaxed);
        System.alloc(layout)
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        LARGEST_ALLOC.fetch_max(layout.size(), Ordering::Relaxed);
        System.alloc_zeroed(layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LARGEST_ALLOC.fetch_max(new_size, Ordering::Relaxed);
        System.realloc(ptr, layout, new_size)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
}

#[global_allocator]
static GLOBAL: Tracking = Tracking;

/// Peak resident set size of this process (`VmHWM`), in bytes.
fn vm_hwm() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .expect("VmHWM in /proc/self/status");
    let kb: u64 = line
        .trim_start_matches("VmHWM:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .expect("VmHWM value");
    kb * 1024
}

const MAX_RSS: u64 = 1536 << 20;

// ---------------------------------------------------------------------------
// A little GGUF writer for the crafted cases.

const U8: u32 = 0;
const U32: u32 = 4;
const BOOL: u32 = 7;
const STRING: u32 = 8;
const ARRAY: u32 = 9;
const F32_TYPE: u32 = 0; // ggml type f32
const F16_TYPE: u32 = 1; // ggml type f16

#[derive(Clone)]
struct Gguf {
    bytes: Vec<u8>,
}

impl Gguf {
    /// A header with the given version and counts, nothing after it.
    fn header(version: u32, tensor_count: u64, kv_count: u64) -> Gguf {
        let mut g = Gguf { bytes: Vec::new() };
        g.raw(b"GGUF").u32(version).u64(tensor_count).u64(kv_count);
        g
    }

    fn raw(&mut self, b: &[u8]) -> &mut Self {
        self.bytes.extend_from_slice(b);
        self
    }
    fn u8(&mut self, v: u8) -> &mut Self {
        self.raw(&[v])
    }
    fn u32(&mut self, v: u32) -> &mut Self {
        self.raw(&v.to_le_bytes())
    }
    fn u64(&mut self, v: u64) -> &mut Self {
        self.raw(&v.to_le_bytes())
    }
    fn str(&mut self, s: &str) -> &mut Self {
        self.u64(s.len() as u64).raw(s.as_bytes())
    }
    fn kv_u32(&mut self, key: &str, v: u32) -> &mut Self {
        self.str(key).u32(U32).u32(v)
    }
    fn kv_str(&mut self, key: &str, v: &str) -> &mut Self {
        self.str(key).u32(STRING).str(v)
    }
    fn tensor(&mut self, name: &str, dims: &[u64], ggml_type: u32, offset: u64) -> &mut Self {
        self.str(name).u32(dims.len() as u32);
        for &d in dims {
            self.u64(d);
        }
        self.u32(ggml_type).u64(offset)
    }
    /// Pads to `align` and appends `n` bytes of tensor data.
    fn data(&mut self, align: usize, n: usize) -> &mut Self {
        while self.bytes.len() % align != 0 {
            self.bytes.push(0);
        }
        self.bytes.resize(self.bytes.len() + n, 0xAB);
        self
    }
    fn zeros(&mut self, n: usize) -> &mut Self {
        self.bytes.resize(self.bytes.len() + n, 0);
        self
    }
    fn build(&self) -> Vec<u8> {
        self.bytes.clone()
    }
}

/// The three llama keys a summary needs.
fn llama_kvs(g: &mut Gguf) -> &mut Gguf {
    g.kv_str("general.architecture", "llama")
        .kv_u32("llama.block_count", 2)
        .kv_u32("llama.context_length", 256)
}

/// A valid file: three llama keys, a string array, two tensors with data.
fn valid() -> Vec<u8> {
    let mut g = Gguf::header(3, 2, 4);
    llama_kvs(&mut g);
    g.str("tokenizer.ggml.tokens")
        .u32(ARRAY)
        .u32(STRING)
        .u64(3)
        .str("a")
        .str("b")
        .str("c");
    g.tensor("a.weight", &[8, 2], F32_TYPE, 0)
        .tensor("b.weight", &[32], F16_TYPE, 64)
        .data(32, 64 + 64);
    g.build()
}

/// A file with one tensor described by the caller, after the llama keys.
fn one_tensor(alignment: Option<u32>, dims: &[u64], ggml_type: u32, offset: u64) -> Vec<u8> {
    let mut g = Gguf::header(3, 1, 3 + u64::from(alignment.is_some()));
    llama_kvs(&mut g);
    if let Some(a) = alignment {
        g.kv_u32("general.alignment", a);
    }
    g.tensor("t", dims, ggml_type, offset).data(32, 256);
    g.build()
}

fn parse(bytes: &[u8]) -> Result<GgufFile, GgufError> {
    GgufFile::from_bytes(bytes, Limits::default())
}

/// `Corrupt` whose message contains `needle` (pins which check fired).
fn assert_corrupt(name: &str, result: Result<GgufFile, GgufError>, needle: &str) {
    match result {
        Err(GgufError::Corrupt { what, .. }) if what.contains(needle) => {}
        other => panic!("{name}: expected Corrupt mentioning {needle:?}, got {other:?}"),
    }
}

fn assert_limit(name: &str, result: Result<GgufFile, GgufError>, needle: &str) {
    match result {
        Err(GgufError::LimitExceeded { what, .. }) if what.contains(needle) => {}
        other => panic!("{name}: expected LimitExceeded mentioning {needle:?}, got {other:?}"),
    }
}

fn assert_truncated(name: &str, result: Result<GgufFile, GgufError>, needle: &str) {
    match result {
        Err(GgufError::Truncated { what, .. }) if what.contains(needle) => {}
        other => panic!("{name}: expected Truncated mentioning {needle:?}, got {other:?}"),
    }
}

/// The crafted corpus: (name, bytes, check).
type Check = fn(&str, Result<GgufFile, GgufError>);

fn crafted() -> Vec<(&'static str, Vec<u8>, Check)> {
    let mut cases: Vec<(&'static str, Vec<u8>, Check)> = Vec::new();

    cases.push(("bad_magic", b"GGML\x03\0\0\0".to_vec(), |n, r| match r {
        Err(GgufError::BadMagic { found, .. }) => assert_eq!(&found, b"GGML", "{n}"),
        other => panic!("{n}: expected BadMagic, got {other:?}"),
    }));
    cases.push(
        ("version_1", Gguf::header(1, 0, 0).build(), |n, r| match r {
            Err(GgufError::UnsupportedVersion { version: 1, .. }) => {}
            other => panic!("{n}: expected UnsupportedVersion 1, got {other:?}"),
        }),
    );
    cases.push((
        "version_99",
        Gguf::header(99, 0, 0).build(),
        |n, r| match r {
            Err(GgufError::UnsupportedVersion { version: 99, .. }) => {}
            other => panic!("{n}: expected UnsupportedVersion 99, got {other:?}"),
        },
    ));
    cases.push((
        "kv_count_2_pow_60",
        Gguf::header(3, 0, 1 << 60).build(),
        |n, r| assert_limit(n, r, "metadata count"),
    ));
    cases.push((
        "tensor_count_u64_max",
        Gguf::header(3, u64::MAX, 0).build(),
        |n, r| assert_limit(n, r, "tensor count"),
    ));
    cases.push((
        // Within the limit, but 1000 tensor infos cannot fit in the bytes left.
        "tensor_count_past_end",
        Gguf::header(3, 1000, 0).zeros(64).build(),
        |n, r| assert_truncated(n, r, "tensor infos"),
    ));
    cases.push((
        "kv_count_past_end",
        Gguf::header(3, 0, 1000).zeros(16).build(),
        |n, r| assert_truncated(n, r, "metadata key"),
    ));
    cases.push((
        "key_length_2_pow_63",
        Gguf::header(3, 0, 1).u64(1 << 63).zeros(64).build(),
        |n, r| assert_limit(n, r, "metadata key #0"),
    ));
    cases.push((
        "string_value_length_2_pow_63",
        Gguf::header(3, 0, 1)
            .str("general.name")
            .u32(STRING)
            .u64(1 << 63)
            .zeros(64)
            .build(),
        |n, r| assert_limit(n, r, "general.name"),
    ));
    cases.push((
        // Under the string limit but longer than the file.
        "string_value_length_past_end",
        Gguf::header(3, 0, 1)
            .str("general.name")
            .u32(STRING)
            .u64(1 << 20)
            .raw(b"short")
            .build(),
        |n, r| assert_truncated(n, r, "general.name"),
    ));
    cases.push((
        "array_count_2_pow_62",
        Gguf::header(3, 0, 1)
            .str("tokenizer.ggml.tokens")
            .u32(ARRAY)
            .u32(STRING)
            .u64(1 << 62)
            .zeros(64)
            .build(),
        |n, r| assert_limit(n, r, "length of array"),
    ));
    cases.push((
        // Under the array limit (2^24) but far more than the bytes left: must
        // be rejected before `Vec::with_capacity`.
        "array_count_past_end",
        Gguf::header(3, 0, 1)
            .str("tokenizer.ggml.scores")
            .u32(ARRAY)
            .u32(U32)
            .u64(1 << 24)
            .zeros(64)
            .build(),
        |n, r| assert_truncated(n, r, "elements"),
    ));
    cases.push((
        "array_unknown_element_type",
        Gguf::header(3, 0, 1)
            .str("x")
            .u32(ARRAY)
            .u32(13)
            .u64(1)
            .zeros(16)
            .build(),
        |n, r| assert_corrupt(n, r, "unknown element type 13"),
    ));
    cases.push((
        // array<array<array<array<u8>>>>: one level deeper than the reader
        // accepts (arrays nest at most two deep inside the outer array).
        "nested_arrays_too_deep",
        Gguf::header(3, 0, 1)
            .str("x")
            .u32(ARRAY)
            .u32(ARRAY)
            .u64(1)
            .u32(ARRAY)
            .u64(1)
            .u32(ARRAY)
            .u64(1)
            .u32(U8)
            .u64(1)
            .u8(0)
            .zeros(64)
            .build(),
        |n, r| assert_corrupt(n, r, "nests arrays"),
    ));
    cases.push((
        "unknown_value_type",
        Gguf::header(3, 0, 1).str("x").u32(13).zeros(16).build(),
        |n, r| assert_corrupt(n, r, "unknown value type 13"),
    ));
    cases.push((
        "bool_byte_7",
        Gguf::header(3, 0, 1).str("x").u32(BOOL).u8(7).build(),
        |n, r| assert_corrupt(n, r, "bool with byte value 7"),
    ));
    cases.push((
        "bool_array_byte_7",
        Gguf::header(3, 0, 1)
            .str("x")
            .u32(ARRAY)
            .u32(BOOL)
            .u64(2)
            .u8(1)
            .u8(7)
            .build(),
        |n, r| assert_corrupt(n, r, "bool with byte value 7"),
    ));
    cases.push((
        "duplicate_key",
        {
            let mut g = Gguf::header(3, 0, 4);
            llama_kvs(&mut g).kv_u32("llama.block_count", 3);
            g.build()
        },
        |n, r| assert_corrupt(n, r, "appears twice"),
    ));
    cases.push((
        "alignment_not_power_of_two",
        one_tensor(Some(48), &[32], F32_TYPE, 0),
        |n, r| assert_corrupt(n, r, "general.alignment"),
    ));
    cases.push((
        "alignment_zero",
        one_tensor(Some(0), &[32], F32_TYPE, 0),
        |n, r| assert_corrupt(n, r, "general.alignment"),
    ));
    cases.push((
        "alignment_wrong_type",
        {
            let mut g = Gguf::header(3, 0, 1);
            g.kv_str("general.alignment", "32");
            g.build()
        },
        |n, r| assert_corrupt(n, r, "general.alignment"),
    ));
    cases.push((
        "tensor_5_dims",
        one_tensor(None, &[2, 2, 2, 2, 2], F32_TYPE, 0),
        |n, r| assert_corrupt(n, r, "5 dimensions"),
    ));
    cases.push((
        "tensor_0_dims",
        one_tensor(None, &[], F32_TYPE, 0),
        |n, r| assert_corrupt(n, r, "0 dimensions"),
    ));
    cases.push((
        "tensor_dim_product_overflow",
        one_tensor(None, &[1 << 32, 1 << 32, 2], F32_TYPE, 0),
        |n, r| assert_corrupt(n, r, "overflows"),
    ));
    cases.push((
        // The element count fits in u64, its size in bytes (x4) does not.
        "tensor_byte_size_overflow",
        one_tensor(None, &[1 << 32, 1 << 31], F32_TYPE, 0),
        |n, r| assert_corrupt(n, r, "elements"),
    ));
    cases.push((
        "tensor_partial_block",
        one_tensor(None, &[33], 2, 0), // q4_0: blocks of 32
        |n, r| assert_corrupt(n, r, "whole number of blocks"),
    ));
    cases.push((
        "tensor_unknown_ggml_type",
        one_tensor(None, &[32], 1000, 0),
        |n, r| assert_corrupt(n, r, "unknown ggml type id 1000"),
    ));
    cases.push((
        "tensor_offset_misaligned",
        one_tensor(None, &[8], F32_TYPE, 4),
        |n, r| assert_corrupt(n, r, "not a multiple of the alignment"),
    ));
    cases.push((
        "tensor_data_past_end_of_file",
        one_tensor(None, &[64, 64], F32_TYPE, 0), // 16 KiB, 256 bytes present
        |n, r| assert_truncated(n, r, "the data of tensor"),
    ));
    cases.push((
        "tensor_offset_plus_size_overflows",
        one_tensor(None, &[32], F32_TYPE, u64::MAX - 31),
        |n, r| assert_truncated(n, r, "the data of tensor"),
    ));
    cases.push((
        "tensor_name_length_huge",
        {
            let mut g = Gguf::header(3, 1, 0);
            g.u64(u64::MAX).zeros(64);
            g.build()
        },
        |n, r| assert_limit(n, r, "the name of tensor #0"),
    ));
    cases
}

#[test]
fn the_valid_crafted_file_parses() {
    let file = parse(&valid()).unwrap();
    let s = file.summary().unwrap();
    assert_eq!(
        (s.architecture.as_str(), s.n_layer, s.n_ctx_train),
        ("llama", 2, 256)
    );
    assert_eq!(s.n_vocab, Some(3));
    assert_eq!(file.tensors.len(), 2);
    assert_eq!(s.weights_bytes, 64 + 64);
}

#[test]
fn every_crafted_bad_file_gets_its_specific_error() {
    let cases = crafted();
    assert!(cases.len() >= 12);
    let dir = std::env::temp_dir().join(format!("lmtune-gguf-hostile-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (name, bytes, check) in cases {
        check(name, parse(&bytes));
        // The file path (buffered reads) must agree with the in-memory path.
        let path = dir.join(format!("{name}.gguf"));
        std::fs::write(&path, &bytes).unwrap();
        let from_file = GgufFile::open(&path);
        check(name, from_file);
        // Every error renders.
        if let Err(e) = parse(&bytes) {
            assert!(!e.to_string().is_empty());
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_header_byte_limit_is_enforced() {
    let limits = Limits {
        max_header_bytes: 64,
        ..Limits::default()
    };
    match GgufFile::from_bytes(&valid(), limits) {
        Err(GgufError::LimitExceeded { limit: 64, .. }) => {}
        other => panic!("expected LimitExceeded 64, got {other:?}"),
    }
}

#[test]
fn a_summary_without_its_keys_is_missing_key() {
    let bytes = Gguf::header(3, 0, 0).build();
    match parse(&bytes).unwrap().summary() {
        Err(GgufError::MissingKey { key, .. }) => assert_eq!(key, "general.architecture"),
        other => panic!("expected MissingKey, got {other:?}"),
    }
    let mut g = Gguf::header(3, 0, 3);
    g.kv_str("general.architecture", "llama")
        .kv_str("llama.block_count", "thirty")
        .kv_u32("llama.context_length", 256);
    match parse(&g.build()).unwrap().summary() {
        Err(GgufError::WrongType { key, .. }) => assert_eq!(key, "llama.block_count"),
        other => panic!("expected WrongType, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------
// Corrupted copies of the real model.

fn model_path() -> PathBuf {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../models/SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(
        path.exists(),
        "{} is missing: run scripts/fetch-model.sh first",
        path.display()
    );
    path
}

/// splitmix64: a fixed seed gives the same 50 corruptions on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Where the length and count fields of a well-formed GGUF header are, found
/// by walking it independently of the reader. Fields are (offset, width),
/// grouped so that corruptions can aim at each part of the header: the
/// tokenizer's ~100k string lengths would otherwise drown out the rest.
struct Anatomy {
    /// The tensor count and the metadata count.
    counts: Vec<(usize, usize)>,
    /// Key lengths, value types, array element types and lengths, and
    /// string value lengths outside arrays.
    kvs: Vec<(usize, usize)>,
    /// Lengths of the strings inside string arrays (tokens, merges).
    array_strings: Vec<(usize, usize)>,
    /// Tensor name lengths, dimension counts, dimensions, types, offsets.
    tensor_infos: Vec<(usize, usize)>,
    /// Offset of the first tensor info.
    tensor_infos_start: usize,
    /// Offset just after the last tensor info (before the alignment padding).
    end: usize,
}

fn anatomy(b: &[u8]) -> Anatomy {
    let u32_at = |at: usize| u32::from_le_bytes(b[at..at + 4].try_into().unwrap());
    let u64_at = |at: usize| u64::from_le_bytes(b[at..at + 8].try_into().unwrap());
    fn scalar_size(t: u32) -> usize {
        match t {
            0 | 1 | 7 => 1,
            2 | 3 => 2,
            4..=6 => 4,
            10..=12 => 8,
            _ => panic!("unexpected type {t} in the test model"),
        }
    }
    let mut a = Anatomy {
        counts: vec![(8, 8), (16, 8)],
        kvs: Vec::new(),
        array_strings: Vec::new(),
        tensor_infos: Vec::new(),
        tensor_infos_start: 0,
        end: 0,
    };
    let (n_tensors, n_kv) = (u64_at(8), u64_at(16));
    let mut at = 24;
    // Skips a string, recording its length field.
    let string = |at: &mut usize, fields: &mut Vec<(usize, usize)>| {
        fields.push((*at, 8));
        *at += 8 + u64_at(*at) as usize;
    };
    for _ in 0..n_kv {
        string(&mut at, &mut a.kvs);
        a.kvs.push((at, 4)); // value type
        let t = u32_at(at);
        at += 4;
        match t {
            STRING => string(&mut at, &mut a.kvs),
            ARRAY => {
                let elem = u32_at(at);
                a.kvs.push((at, 4)); // element type
                a.kvs.push((at + 4, 8)); // length
                let len = u64_at(at + 4);
                at += 12;
                for _ in 0..len {
                    if elem == STRING {
                        string(&mut at, &mut a.array_strings);
                    } else {
                        at += scalar_size(elem);
                    }
                }
            }
            t => at += scalar_size(t),
        }
    }
    a.tensor_infos_start = at;
    for _ in 0..n_tensors {
        string(&mut at, &mut a.tensor_infos);
        let n_dims = u32_at(at) as usize;
        a.tensor_infos.push((at, 4));
        at += 4;
        for _ in 0..n_dims {
            a.tensor_infos.push((at, 8));
            at += 8;
        }
        a.tensor_infos.push((at, 4)); // ggml type
        a.tensor_infos.push((at + 4, 8)); // data offset
        at += 12;
    }
    a.end = at;
    a
}

#[test]
fn corrupted_copies_of_the_real_model_never_panic_or_blow_up_memory() {
    let start = std::time::Instant::now();
    let model = std::fs::read(model_path()).unwrap();
    let reference = parse(&model).expect("the real model parses");
    let header_end = reference.data_offset as usize;
    let anatomy = anatomy(&model);
    // The walker must agree with the reader on where the header ends.
    assert!(anatomy.end <= header_end && header_end - anatomy.end < 32);
    assert!(!anatomy.kvs.is_empty() && !anatomy.array_strings.is_empty());
    assert!(!anatomy.tensor_infos.is_empty());
    let groups = [
        &anatomy.counts,
        &anatomy.kvs,
        &anatomy.array_strings,
        &anatomy.tensor_infos,
    ];
    // Byte ranges for random flips: the whole header, the metadata before
    // the first string array, and the tensor infos.
    let first_array_string = anatomy.array_strings[0].0;
    let regions = [
        (0, header_end),
        (0, first_array_string),
        (anatomy.tensor_infos_start, header_end),
    ];
    drop(reference);

    // Interesting values for a count or length field.
    const EVIL: [u64; 10] = [
        0,
        1,
        0xFF,
        0xFFFF_FFFF,
        1 << 24,
        (1 << 24) + 1,
        1 << 32,
        1 << 60,
        1 << 63,
        u64::MAX,
    ];

    let mut rng = Rng(0x6C6D_7475_6E65_2167);
    let (mut oks, mut errs) = (0, 0);
    for case in 0..50 {
        let kind = case % 3;
        let mut bytes;
        let description;
        match kind {
            0 => {
                // Truncation: mostly inside the header, sometimes in the data.
                let cut = if rng.below(4) == 0 {
                    rng.below(model.len() as u64) as usize
                } else {
                    rng.below(header_end as u64) as usize
                };
                bytes = model[..cut].to_vec();
                description = format!("truncated at {cut}");
            }
            1 => {
                // Overwrite 1 to 3 length/count fields.
                bytes = model.clone();
                let mut what = Vec::new();
                for _ in 0..=rng.below(3) {
                    let group = groups[rng.below(groups.len() as u64) as usize];
                    let (at, width) = group[rng.below(group.len() as u64) as usize];
                    let value = match rng.below(3) {
                        0 => EVIL[rng.below(EVIL.len() as u64) as usize],
                        1 => rng.next(),
                        _ => {
                            // Nudge the real value.
                            let mut old = [0u8; 8];
                            old[..width].copy_from_slice(&bytes[at..at + width]);
                            u64::from_le_bytes(old)
                                .wrapping_add(rng.below(64))
                                .wrapping_sub(32)
                        }
                    };
                    bytes[at..at + width].copy_from_slice(&value.to_le_bytes()[..width]);
                    what.push(format!("{at}:{width}={value:#x}"));
                }
                description = format!("count fields overwritten: {}", what.join(", "));
            }
            _ => {
                // 1 to 8 random byte flips in one region of the header.
                bytes = model.clone();
                let (lo, hi) = regions[rng.below(regions.len() as u64) as usize];
                let n = 1 + rng.below(8);
                let mut at_list = Vec::new();
                for _ in 0..n {
                    let at = lo + rng.below((hi - lo) as u64) as usize;
                    bytes[at] ^= 1 + rng.below(255) as u8;
                    at_list.push(at);
                }
                description = format!("bytes flipped at {at_list:?}");
            }
        }

        let result = std::panic::catch_unwind(|| {
            let result = parse(&bytes);
            if let Ok(file) = &result {
                let _ = file.summary().map(|s| s.type_label());
            }
            result.map(|_| ()).map_err(|e| e.to_string())
        });
        match result {
            Ok(Ok(())) => oks += 1,
            Ok(Err(message)) => {
                assert!(!message.is_empty());
                errs += 1;
            }
            Err(_) => panic!("case {case} ({description}): the reader panicked"),
        }
        if kind == 0 && bytes.len() < header_end {
            // A cut inside the header can never parse.
            assert!(parse(&bytes).is_err(), "case {case} ({description}) parsed");
        }
        let hwm = vm_hwm();
        assert!(
            hwm < MAX_RSS,
            "case {case} ({description}): peak RSS {} MiB",
            hwm >> 20
        );
        let largest = LARGEST_ALLOC.load(Ordering::Relaxed);
        assert!(
            (largest as u64) < MAX_RSS,
            "case {case} ({description}): an allocation of {} MiB",
            largest >> 20
        );
    }
    eprintln!(
        "50 corrupted copies: {oks} ok, {errs} errors, peak RSS {} MiB, largest allocation {} MiB, {:.1?}",
        vm_hwm() >> 20,
        LARGEST_ALLOC.load(Ordering::Relaxed) >> 20,
        start.elapsed()
    );
}

/// Found by reading the reader after fuzzing: integer arrays are kept as
/// i64, so a u8 array costs 8x its file size in memory. The decoded size is
/// now charged against the header budget: 1 Mi u8 elements (1 MiB of file,
/// 8 MiB decoded) do not fit a 4 MiB budget.
#[test]
fn widened_u8_arrays_are_charged_against_the_header_budget() {
    let n = 1u64 << 20;
    let mut g = Gguf::header(3, 0, 1);
    g.str("big").u32(9).u32(0).u64(n).zeros(n as usize);
    let limits = Limits {
        max_header_bytes: 4 << 20,
        ..Limits::default()
    };
    match GgufFile::from_bytes(&g.build(), limits) {
        Err(GgufError::LimitExceeded { what, .. }) => {
            assert!(what.contains("decoded metadata"), "{what}")
        }
        other => panic!("expected LimitExceeded for the decoded metadata, got {other:?}"),
    }
    // With room for it, the same file parses.
    let roomy = Limits {
        max_header_bytes: 16 << 20,
        ..Limits::default()
    };
    assert!(GgufFile::from_bytes(&g.build(), roomy).is_ok());
}
