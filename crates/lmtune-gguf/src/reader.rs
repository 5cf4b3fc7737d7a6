//! The bounded GGUF header parser.
//!
//! Every count read from the file is checked against the bytes left before
//! anything is allocated for it, and against [`Limits`], so a corrupt length
//! can cost at most an error, never gigabytes of memory.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use crate::types::GgmlType;
use crate::GgufError;

const MAGIC: &[u8; 4] = b"GGUF";
const DEFAULT_ALIGNMENT: u64 = 32;
/// ggml's `GGML_MAX_DIMS`.
const MAX_DIMS: u32 = 4;

/// Bounds on what the reader accepts. The defaults are far above what real
/// models use (a 256k-token vocabulary needs a few MiB of metadata).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Bytes of header (metadata + tensor infos) read at most.
    pub max_header_bytes: u64,
    /// Longest single string.
    pub max_string_bytes: u64,
    pub max_kv_count: u64,
    pub max_tensor_count: u64,
    /// Longest array (elements).
    pub max_array_len: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_header_bytes: 512 << 20,
            max_string_bytes: 16 << 20,
            max_kv_count: 1 << 20,
            max_tensor_count: 1 << 20,
            max_array_len: 1 << 24,
        }
    }
}

/// One metadata value. Arrays are kept typed and compact.
#[derive(Debug, Clone, PartialEq)]
pub enum MetadataValue {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    U64(u64),
    I64(i64),
    F32(f32),
    F64(f64),
    Bool(bool),
    String(String),
    /// An array of integers (any integer element type), widened.
    IntArray(Vec<i64>),
    FloatArray(Vec<f64>),
    BoolArray(Vec<bool>),
    StringArray(Vec<String>),
    /// Arrays of arrays are legal GGUF but unused by llama.cpp; only their
    /// length is kept.
    NestedArray(u64),
}

impl MetadataValue {
    pub fn type_name(&self) -> &'static str {
        match self {
            MetadataValue::U8(_) => "u8",
            MetadataValue::I8(_) => "i8",
            MetadataValue::U16(_) => "u16",
            MetadataValue::I16(_) => "i16",
            MetadataValue::U32(_) => "u32",
            MetadataValue::I32(_) => "i32",
            MetadataValue::U64(_) => "u64",
            MetadataValue::I64(_) => "i64",
            MetadataValue::F32(_) => "f32",
            MetadataValue::F64(_) => "f64",
            MetadataValue::Bool(_) => "bool",
            MetadataValue::String(_) => "string",
            MetadataValue::IntArray(_) => "integer array",
            MetadataValue::FloatArray(_) => "float array",
            MetadataValue::BoolArray(_) => "bool array",
            MetadataValue::StringArray(_) => "string array",
            MetadataValue::NestedArray(_) => "nested array",
        }
    }

    /// The value as an unsigned integer, if it is a non-negative integer.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            MetadataValue::U8(v) => Some(v.into()),
            MetadataValue::U16(v) => Some(v.into()),
            MetadataValue::U32(v) => Some(v.into()),
            MetadataValue::U64(v) => Some(v),
            MetadataValue::I8(v) => u64::try_from(v).ok(),
            MetadataValue::I16(v) => u64::try_from(v).ok(),
            MetadataValue::I32(v) => u64::try_from(v).ok(),
            MetadataValue::I64(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            MetadataValue::String(s) => Some(s),
            _ => None,
        }
    }
}

/// One tensor's header entry. `n_bytes` is derived from the type and shape
/// and has been checked to lie inside the file.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorInfo {
    pub name: String,
    pub dims: Vec<u64>,
    pub ggml_type: GgmlType,
    /// Offset from the start of the data section.
    pub offset: u64,
    pub n_elements: u64,
    pub n_bytes: u64,
}

/// A parsed GGUF header: metadata and tensor infos, no tensor data.
#[derive(Debug, Clone)]
pub struct GgufFile {
    pub path: PathBuf,
    pub version: u32,
    pub file_len: u64,
    pub metadata: BTreeMap<String, MetadataValue>,
    pub tensors: Vec<TensorInfo>,
    /// Absolute offset of the tensor data section.
    pub data_offset: u64,
}

impl GgufFile {
    /// Reads the header of the GGUF file at `path` with default [`Limits`].
    pub fn open(path: impl AsRef<Path>) -> Result<GgufFile, GgufError> {
        Self::open_with_limits(path, Limits::default())
    }

    pub fn open_with_limits(path: impl AsRef<Path>, limits: Limits) -> Result<GgufFile, GgufError> {
        let path = path.as_ref().to_path_buf();
        let file = File::open(&path).map_err(|source| GgufError::Open {
            path: path.clone(),
            source,
        })?;
        let file_len = file
            .metadata()
            .map_err(|source| GgufError::Io {
                path: path.clone(),
                source,
            })?
            .len();
        let mut cursor = Cursor {
            inner: BufReader::with_capacity(1 << 16, file),
            path,
            offset: 0,
            decoded: 0,
            file_len,
            limits,
        };
        parse(&mut cursor)
    }

    /// Parses a header from bytes in memory (used by tests and the fuzzer).
    pub fn from_bytes(bytes: &[u8], limits: Limits) -> Result<GgufFile, GgufError> {
        let mut cursor = Cursor {
            inner: bytes,
            path: PathBuf::from("<memory>"),
            offset: 0,
            decoded: 0,
            file_len: bytes.len() as u64,
            limits,
        };
        parse(&mut cursor)
    }

    pub fn get(&self, key: &str) -> Option<&MetadataValue> {
        self.metadata.get(key)
    }

    /// `general.architecture`, e.g. `llama`.
    pub fn architecture(&self) -> Option<&str> {
        self.get("general.architecture")
            .and_then(MetadataValue::as_str)
    }

    /// An unsigned integer key, with a typed error naming the key when it is
    /// missing or of another type.
    pub fn require_u64(&self, key: &str, hint: &str) -> Result<u64, GgufError> {
        let value = self.get(key).ok_or_else(|| GgufError::MissingKey {
            path: self.path.clone(),
            key: key.to_string(),
            hint: hint.to_string(),
        })?;
        value.as_u64().ok_or_else(|| GgufError::WrongType {
            path: self.path.clone(),
            key: key.to_string(),
            found: value.type_name(),
            expected: "unsigned integer",
        })
    }
}

struct Cursor<R> {
    inner: R,
    path: PathBuf,
    offset: u64,
    file_len: u64,
    limits: Limits,
    /// Bytes of decoded metadata held so far: arrays widen (a u8 array is
    /// kept as i64), so the file's size alone does not bound memory.
    decoded: u64,
}

impl<R: Read> Cursor<R> {
    fn remaining(&self) -> u64 {
        self.file_len.saturating_sub(self.offset)
    }

    fn truncated(&self, what: &str, needed: u64) -> GgufError {
        GgufError::Truncated {
            path: self.path.clone(),
            what: what.to_string(),
            offset: self.offset,
            needed,
            file_len: self.file_len,
        }
    }

    fn corrupt(&self, what: String) -> GgufError {
        GgufError::Corrupt {
            path: self.path.clone(),
            what,
            offset: self.offset,
        }
    }

    fn limit(&self, what: &str, limit: u64) -> GgufError {
        GgufError::LimitExceeded {
            path: self.path.clone(),
            what: what.to_string(),
            limit,
            offset: self.offset,
        }
    }

    /// Fails unless `n` more bytes exist in the file and stay inside the
    /// header budget.
    fn ensure(&self, what: &str, n: u64) -> Result<(), GgufError> {
        if n > self.remaining() {
            return Err(self.truncated(what, n));
        }
        if self.offset.saturating_add(n) > self.limits.max_header_bytes {
            return Err(self.limit("the GGUF header", self.limits.max_header_bytes));
        }
        Ok(())
    }

    fn bytes<const N: usize>(&mut self, what: &str) -> Result<[u8; N], GgufError> {
        self.ensure(what, N as u64)?;
        let mut buf = [0u8; N];
        self.inner.read_exact(&mut buf).map_err(|e| {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                self.truncated(what, N as u64)
            } else {
                GgufError::Io {
                    path: self.path.clone(),
                    source: e,
                }
            }
        })?;
        self.offset += N as u64;
        Ok(buf)
    }

    fn u8(&mut self, what: &str) -> Result<u8, GgufError> {
        Ok(self.bytes::<1>(what)?[0])
    }
    fn u16(&mut self, what: &str) -> Result<u16, GgufError> {
        Ok(u16::from_le_bytes(self.bytes(what)?))
    }
    fn u32(&mut self, what: &str) -> Result<u32, GgufError> {
        Ok(u32::from_le_bytes(self.bytes(what)?))
    }
    fn u64(&mut self, what: &str) -> Result<u64, GgufError> {
        Ok(u64::from_le_bytes(self.bytes(what)?))
    }

    fn string(&mut self, what: &str) -> Result<String, GgufError> {
        let len = self.u64(what)?;
        if len > self.limits.max_string_bytes {
            return Err(self.limit(
                &format!("the length of {what} ({len} bytes)"),
                self.limits.max_string_bytes,
            ));
        }
        self.ensure(what, len)?;
        // `len` is bounded by the limit and by the bytes present: safe to allocate.
        let mut buf = vec![0u8; len as usize];
        self.inner.read_exact(&mut buf).map_err(|e| {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                self.truncated(what, len)
            } else {
                GgufError::Io {
                    path: self.path.clone(),
                    source: e,
                }
            }
        })?;
        self.offset += len;
        // Real vocabularies hold invalid UTF-8 fragments (byte tokens); keep them lossy.
        Ok(String::from_utf8(buf)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()))
    }

    fn scalar(&mut self, value_type: u32, what: &str) -> Result<MetadataValue, GgufError> {
        Ok(match value_type {
            0 => MetadataValue::U8(self.u8(what)?),
            1 => MetadataValue::I8(self.u8(what)? as i8),
            2 => MetadataValue::U16(self.u16(what)?),
            3 => MetadataValue::I16(self.u16(what)? as i16),
            4 => MetadataValue::U32(self.u32(what)?),
            5 => MetadataValue::I32(self.u32(what)? as i32),
            6 => MetadataValue::F32(f32::from_le_bytes(self.bytes(what)?)),
            7 => match self.u8(what)? {
                0 => MetadataValue::Bool(false),
                1 => MetadataValue::Bool(true),
                other => {
                    return Err(self.corrupt(format!("{what} is a bool with byte value {other}")))
                }
            },
            8 => MetadataValue::String(self.string(what)?),
            10 => MetadataValue::U64(self.u64(what)?),
            11 => MetadataValue::I64(self.u64(what)? as i64),
            12 => MetadataValue::F64(f64::from_le_bytes(self.bytes(what)?)),
            other => return Err(self.corrupt(format!("{what} has unknown value type {other}"))),
        })
    }

    fn value(
        &mut self,
        value_type: u32,
        what: &str,
        depth: u32,
    ) -> Result<MetadataValue, GgufError> {
        if value_type != 9 {
            return self.scalar(value_type, what);
        }
        let elem_type = self.u32(what)?;
        let len = self.u64(what)?;
        if len > self.limits.max_array_len {
            return Err(self.limit(
                &format!("the length of array {what} ({len})"),
                self.limits.max_array_len,
            ));
        }
        let min_elem = match elem_type {
            0 | 1 | 7 => 1,
            2 | 3 => 2,
            4..=6 => 4,
            8 | 10..=12 => 8,
            9 => 12,
            other => {
                return Err(self.corrupt(format!("array {what} has unknown element type {other}")))
            }
        };
        // Each element takes at least `min_elem` bytes: a count the file cannot
        // hold is rejected before any allocation.
        let needed = len.saturating_mul(min_elem);
        if needed > self.remaining() {
            return Err(self.truncated(&format!("array {what} of {len} elements"), needed));
        }
        let per_element: u64 = match elem_type {
            7 => 1,
            8 => 24 + 8,
            9 => 0,
            _ => 8,
        };
        self.decoded = self.decoded.saturating_add(len.saturating_mul(per_element));
        if self.decoded > self.limits.max_header_bytes {
            return Err(self.limit("the decoded metadata", self.limits.max_header_bytes));
        }
        let n = len as usize;
        Ok(match elem_type {
            0..=5 | 10 | 11 => {
                let mut out = Vec::with_capacity(n);
                for _ in 0..n {
                    out.push(match self.scalar(elem_type, what)? {
                        MetadataValue::U8(v) => v.into(),
                        MetadataValue::I8(v) => v.into(),
                        MetadataValue::U16(v) => v.into(),
                        MetadataValue::I16(v) => v.into(),
                        MetadataValue::U32(v) => v.into(),
                        MetadataValue::I32(v) => v.into(),
                        MetadataValue::U64(v) => v as i64,
                        MetadataValue::I64(v) => v,
                        _ => unreachable!("integer element types only"),
                    });
                }
                MetadataValue::IntArray(out)
            }
            6 | 12 => {
                let mut out = Vec::with_capacity(n);
                for _ in 0..n {
                    out.push(match self.scalar(elem_type, what)? {
                        MetadataValue::F32(v) => v.into(),
                        MetadataValue::F64(v) => v,
                        _ => unreachable!("float element types only"),
                    });
                }
                MetadataValue::FloatArray(out)
            }
            7 => {
                let mut out = Vec::with_capacity(n);
                for _ in 0..n {
                    out.push(matches!(self.scalar(7, what)?, MetadataValue::Bool(true)));
                }
                MetadataValue::BoolArray(out)
            }
            8 => {
                let mut out = Vec::with_capacity(n);
                for _ in 0..n {
                    out.push(self.string(what)?);
                }
                MetadataValue::StringArray(out)
            }
            _ => {
                if depth >= 2 {
                    return Err(
                        self.corrupt(format!("array {what} nests arrays more than two deep"))
                    );
                }
                for _ in 0..n {
                    let inner_type = 9;
                    self.value(inner_type, what, depth + 1)?;
                }
                MetadataValue::NestedArray(len)
            }
        })
    }
}

fn parse<R: Read>(c: &mut Cursor<R>) -> Result<GgufFile, GgufError> {
    let magic = c.bytes::<4>("the magic number")?;
    if &magic != MAGIC {
        return Err(GgufError::BadMagic {
            path: c.path.clone(),
            found: magic,
        });
    }
    let version = c.u32("the version")?;
    if !(2..=3).contains(&version) {
        return Err(GgufError::UnsupportedVersion {
            path: c.path.clone(),
            version,
        });
    }
    let tensor_count = c.u64("the tensor count")?;
    let kv_count = c.u64("the metadata count")?;
    if tensor_count > c.limits.max_tensor_count {
        return Err(c.limit(
            &format!("the tensor count ({tensor_count})"),
            c.limits.max_tensor_count,
        ));
    }
    if kv_count > c.limits.max_kv_count {
        return Err(c.limit(
            &format!("the metadata count ({kv_count})"),
            c.limits.max_kv_count,
        ));
    }

    let mut metadata = BTreeMap::new();
    for i in 0..kv_count {
        let key = c.string(&format!("metadata key #{i}"))?;
        let value_type = c.u32(&format!("the type of `{key}`"))?;
        let value = c.value(value_type, &format!("`{key}`"), 0)?;
        if metadata.insert(key.clone(), value).is_some() {
            return Err(c.corrupt(format!("metadata key `{key}` appears twice")));
        }
    }

    let alignment = match metadata.get("general.alignment") {
        None => DEFAULT_ALIGNMENT,
        Some(v) => match v.as_u64() {
            Some(a) if a > 0 && a.is_power_of_two() && a <= 1 << 16 => a,
            _ => {
                return Err(c.corrupt(format!(
                    "general.alignment = {v:?} is not a power of two up to 65536"
                )))
            }
        },
    };

    // Each tensor info takes at least 8 + 4 + 4 + 8 bytes.
    if tensor_count.saturating_mul(24) > c.remaining() {
        return Err(c.truncated(
            &format!("{tensor_count} tensor infos"),
            tensor_count.saturating_mul(24),
        ));
    }
    let mut tensors = Vec::with_capacity(tensor_count as usize);
    for i in 0..tensor_count {
        let name = c.string(&format!("the name of tensor #{i}"))?;
        let n_dims = c.u32(&format!("the dimension count of `{name}`"))?;
        if n_dims == 0 || n_dims > MAX_DIMS {
            return Err(c.corrupt(format!(
                "tensor `{name}` has {n_dims} dimensions (1 to {MAX_DIMS} allowed)"
            )));
        }
        let mut dims = Vec::with_capacity(n_dims as usize);
        for _ in 0..n_dims {
            dims.push(c.u64(&format!("a dimension of `{name}`"))?);
        }
        let ggml_type = GgmlType(c.u32(&format!("the type of `{name}`"))?);
        let offset = c.u64(&format!("the offset of `{name}`"))?;
        let n_elements = dims
            .iter()
            .try_fold(1u64, |acc, &d| acc.checked_mul(d))
            .ok_or_else(|| {
                c.corrupt(format!(
                    "tensor `{name}` has shape {dims:?} whose element count overflows"
                ))
            })?;
        if !ggml_type.is_known() {
            return Err(c.corrupt(format!(
                "tensor `{name}` has unknown ggml type id {}",
                ggml_type.0
            )));
        }
        let n_bytes = ggml_type.bytes_for(n_elements).ok_or_else(|| {
            c.corrupt(format!(
                "tensor `{name}` of type {} has {n_elements} elements: not a whole number of blocks, or too large",
                ggml_type.name()
            ))
        })?;
        if offset % alignment != 0 {
            return Err(c.corrupt(format!("tensor `{name}` starts at data offset {offset}, not a multiple of the alignment {alignment}")));
        }
        tensors.push(TensorInfo {
            name,
            dims,
            ggml_type,
            offset,
            n_elements,
            n_bytes,
        });
    }

    let data_offset = c.offset.div_ceil(alignment) * alignment;
    let data_len = c.file_len.saturating_sub(data_offset);
    for t in &tensors {
        let end = t.offset.checked_add(t.n_bytes);
        if end.is_none_or(|end| end > data_len) {
            return Err(GgufError::Truncated {
                path: c.path.clone(),
                what: format!(
                    "the data of tensor `{}` ({} bytes at data offset {})",
                    t.name, t.n_bytes, t.offset
                ),
                offset: data_offset.saturating_add(t.offset),
                needed: t.n_bytes,
                file_len: c.file_len,
            });
        }
    }

    Ok(GgufFile {
        path: c.path.clone(),
        version,
        file_len: c.file_len,
        metadata,
        tensors,
        data_offset,
    })
}
