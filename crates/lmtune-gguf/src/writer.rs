//! A GGUF (version 3) writer: metadata, tensor infos, then tensor data that
//! the caller streams, so multi-GB files never sit in memory.

use std::fs::File;
use std::io::{BufWriter, Seek, Write};
use std::path::Path;

use crate::reader::MetadataValue;
use crate::types::GgmlType;

const ALIGNMENT: u64 = 32;

/// A tensor to write: name, shape (ne[0] first, as ggml orders it) and type.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorSpec {
    pub name: String,
    pub dims: Vec<u64>,
    pub ggml_type: GgmlType,
}

impl TensorSpec {
    pub fn n_elements(&self) -> u64 {
        self.dims.iter().product()
    }

    /// Bytes of the tensor's data; `None` if the shape does not fit the type's blocks.
    pub fn n_bytes(&self) -> Option<u64> {
        self.ggml_type.bytes_for(self.n_elements())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("cannot write {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("tensor `{name}`: {n_elements} elements are not a whole number of {ggml_type} blocks")]
    BadShape {
        name: String,
        n_elements: u64,
        ggml_type: String,
    },
    #[error("tensor `{name}`: the data writer produced {written} bytes, expected {expected}")]
    WrongDataSize {
        name: String,
        written: u64,
        expected: u64,
    },
}

/// Writes a GGUF file. `fill` is called once per tensor, in order, and must
/// write exactly that tensor's bytes.
pub fn write_gguf(
    path: &Path,
    metadata: &[(String, MetadataValue)],
    tensors: &[TensorSpec],
    mut fill: impl FnMut(&TensorSpec, &mut dyn Write) -> std::io::Result<()>,
) -> Result<(), WriteError> {
    let io = |source| WriteError::Io {
        path: path.display().to_string(),
        source,
    };
    let mut sizes = Vec::with_capacity(tensors.len());
    for t in tensors {
        sizes.push(t.n_bytes().ok_or_else(|| WriteError::BadShape {
            name: t.name.clone(),
            n_elements: t.n_elements(),
            ggml_type: t.ggml_type.name(),
        })?);
    }
    let mut out = BufWriter::with_capacity(1 << 20, File::create(path).map_err(io)?);
    let mut header = Vec::new();
    header.extend_from_slice(b"GGUF");
    header.extend_from_slice(&3u32.to_le_bytes());
    header.extend_from_slice(&(tensors.len() as u64).to_le_bytes());
    header.extend_from_slice(&(metadata.len() as u64).to_le_bytes());
    for (key, value) in metadata {
        put_string(&mut header, key);
        put_value(&mut header, value);
    }
    let mut offset = 0u64;
    for (t, &size) in tensors.iter().zip(&sizes) {
        put_string(&mut header, &t.name);
        header.extend_from_slice(&(t.dims.len() as u32).to_le_bytes());
        for d in &t.dims {
            header.extend_from_slice(&d.to_le_bytes());
        }
        header.extend_from_slice(&t.ggml_type.0.to_le_bytes());
        header.extend_from_slice(&offset.to_le_bytes());
        offset += size.div_ceil(ALIGNMENT) * ALIGNMENT;
    }
    pad(&mut header, ALIGNMENT);
    out.write_all(&header).map_err(io)?;

    for (t, &size) in tensors.iter().zip(&sizes) {
        let start = out.stream_position().map_err(io)?;
        fill(t, &mut out).map_err(io)?;
        let written = out.stream_position().map_err(io)? - start;
        if written != size {
            return Err(WriteError::WrongDataSize {
                name: t.name.clone(),
                written,
                expected: size,
            });
        }
        let padding = size.div_ceil(ALIGNMENT) * ALIGNMENT - size;
        out.write_all(&vec![0u8; padding as usize]).map_err(io)?;
    }
    out.flush().map_err(io)?;
    Ok(())
}

fn pad(buf: &mut Vec<u8>, alignment: u64) {
    let len = buf.len() as u64;
    buf.resize((len.div_ceil(alignment) * alignment) as usize, 0);
}

fn put_string(buf: &mut Vec<u8>, s: &str) {
    buf.extend_from_slice(&(s.len() as u64).to_le_bytes());
    buf.extend_from_slice(s.as_bytes());
}

/// GGUF value type id and payload. Integer arrays are written as i32 when
/// every element fits, else i64; float arrays as f32.
fn put_value(buf: &mut Vec<u8>, value: &MetadataValue) {
    let mut typed = |id: u32, payload: &[u8]| {
        buf.extend_from_slice(&id.to_le_bytes());
        buf.extend_from_slice(payload);
    };
    match value {
        MetadataValue::U8(v) => typed(0, &[*v]),
        MetadataValue::I8(v) => typed(1, &v.to_le_bytes()),
        MetadataValue::U16(v) => typed(2, &v.to_le_bytes()),
        MetadataValue::I16(v) => typed(3, &v.to_le_bytes()),
        MetadataValue::U32(v) => typed(4, &v.to_le_bytes()),
        MetadataValue::I32(v) => typed(5, &v.to_le_bytes()),
        MetadataValue::F32(v) => typed(6, &v.to_le_bytes()),
        MetadataValue::Bool(v) => typed(7, &[u8::from(*v)]),
        MetadataValue::String(s) => {
            typed(8, &[]);
            put_string(buf, s);
        }
        MetadataValue::U64(v) => typed(10, &v.to_le_bytes()),
        MetadataValue::I64(v) => typed(11, &v.to_le_bytes()),
        MetadataValue::F64(v) => typed(12, &v.to_le_bytes()),
        MetadataValue::IntArray(items) => {
            let narrow = items.iter().all(|&x| i32::try_from(x).is_ok());
            array_header(buf, if narrow { 5 } else { 11 }, items.len());
            for &x in items {
                if narrow {
                    buf.extend_from_slice(&(x as i32).to_le_bytes());
                } else {
                    buf.extend_from_slice(&x.to_le_bytes());
                }
            }
        }
        MetadataValue::FloatArray(items) => {
            array_header(buf, 6, items.len());
            for &x in items {
                buf.extend_from_slice(&(x as f32).to_le_bytes());
            }
        }
        MetadataValue::BoolArray(items) => {
            array_header(buf, 7, items.len());
            buf.extend(items.iter().map(|&b| u8::from(b)));
        }
        MetadataValue::StringArray(items) => {
            array_header(buf, 8, items.len());
            for s in items {
                put_string(buf, s);
            }
        }
        // Only the length of nested arrays is kept when reading; write them empty.
        MetadataValue::NestedArray(_) => array_header(buf, 9, 0),
    }
}

fn array_header(buf: &mut Vec<u8>, elem_type: u32, len: usize) {
    buf.extend_from_slice(&9u32.to_le_bytes());
    buf.extend_from_slice(&elem_type.to_le_bytes());
    buf.extend_from_slice(&(len as u64).to_le_bytes());
}
