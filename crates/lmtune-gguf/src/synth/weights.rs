//! Random weights that look trained: whole quantized blocks of random bits
//! with small, finite f16 scales (random scales would make NaNs and change
//! the timing), and small floats for f32/f16/bf16 tensors.

use crate::types::GgmlType;

/// 1 MiB of valid random blocks of type `t` (a whole number of blocks).
pub(super) fn block_pool(t: GgmlType, seed: u64) -> Vec<u8> {
    let block_bytes = t
        .bytes_for(if matches!(t.0, 0 | 1 | 30) {
            1
        } else if matches!(t.0, 10..=15) {
            256
        } else {
            32
        })
        .unwrap_or(1) as usize;
    let n_blocks = ((1 << 20) / block_bytes).max(1);
    let mut rng = seed ^ 0x9E37_79B9_7F4A_7C15 ^ u64::from(t.0);
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut pool = vec![0u8; n_blocks * block_bytes];
    for chunk in pool.chunks_mut(8) {
        let r = next().to_le_bytes();
        chunk.copy_from_slice(&r[..chunk.len()]);
    }
    // Small weights around ±0.02, like a trained model's.
    let small = |r: u64| ((r % 2000) as f32 / 1000.0 - 1.0) * 0.02;
    match t.0 {
        0 => {
            for c in pool.chunks_mut(4) {
                c.copy_from_slice(&small(next()).to_le_bytes());
            }
        }
        1 | 30 => {
            for c in pool.chunks_mut(2) {
                let v = small(next());
                let bits = if t.0 == 1 {
                    f16_bits(v)
                } else {
                    (v.to_bits() >> 16) as u16
                };
                c.copy_from_slice(&bits.to_le_bytes());
            }
        }
        _ => {
            // Offsets of the f16 scale fields within a block.
            let scales: &[usize] = match t.0 {
                2 | 6 | 8 => &[0],
                3 | 7 | 12 | 13 => &[0, 2],
                10 => &[80, 82],
                11 => &[108],
                14 => &[208],
                _ => &[],
            };
            for block in pool.chunks_mut(block_bytes) {
                for &off in scales {
                    let scale = 0.001 + (next() % 1000) as f32 * 1e-6;
                    block[off..off + 2].copy_from_slice(&f16_bits(scale).to_le_bytes());
                }
            }
        }
    }
    pool
}

/// IEEE half-precision bits of a small finite `f32` (round toward zero;
/// subnormals flushed), enough for weights and scales.
fn f16_bits(v: f32) -> u16 {
    let bits = v.to_bits();
    let sign = ((bits >> 16) & 0x8000) as u16;
    let exp = ((bits >> 23) & 0xff) as i32 - 127 + 15;
    let mantissa = ((bits >> 13) & 0x3ff) as u16;
    if exp <= 0 {
        sign
    } else if exp >= 31 {
        sign | 0x7bff
    } else {
        sign | ((exp as u16) << 10) | mantissa
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synth::{quant_type, SUPPORTED_QUANTS};

    #[test]
    fn f16_of_known_values() {
        assert_eq!(f16_bits(1.0), 0x3c00);
        assert_eq!(f16_bits(-2.0), 0xc000);
        assert_eq!(f16_bits(0.0), 0);
        assert_eq!(f16_bits(1e9), 0x7bff);
    }

    #[test]
    fn pools_are_whole_blocks_with_finite_scales() {
        for name in SUPPORTED_QUANTS {
            let t = quant_type(name).unwrap();
            let pool = block_pool(t, 1);
            assert!(!pool.is_empty());
            if t.0 == 2 {
                for block in pool.chunks(18) {
                    let d = u16::from_le_bytes([block[0], block[1]]);
                    assert_ne!(d & 0x7c00, 0x7c00, "scale is not inf/nan");
                }
            }
        }
    }
}
