//! ggml tensor types and their storage sizes.

use serde::Serialize;

/// A ggml tensor element type, as stored in a GGUF tensor info.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct GgmlType(pub u32);

impl GgmlType {
    /// (name, elements per block, bytes per block) for the types llama.cpp
    /// writes; `None` for ids this reader does not know.
    fn layout(self) -> Option<(&'static str, u64, u64)> {
        Some(match self.0 {
            0 => ("f32", 1, 4),
            1 => ("f16", 1, 2),
            2 => ("q4_0", 32, 18),
            3 => ("q4_1", 32, 20),
            6 => ("q5_0", 32, 22),
            7 => ("q5_1", 32, 24),
            8 => ("q8_0", 32, 34),
            9 => ("q8_1", 32, 36),
            10 => ("q2_K", 256, 84),
            11 => ("q3_K", 256, 110),
            12 => ("q4_K", 256, 144),
            13 => ("q5_K", 256, 176),
            14 => ("q6_K", 256, 210),
            15 => ("q8_K", 256, 292),
            16 => ("iq2_xxs", 256, 66),
            17 => ("iq2_xs", 256, 74),
            18 => ("iq3_xxs", 256, 98),
            19 => ("iq1_s", 256, 50),
            20 => ("iq4_nl", 32, 18),
            21 => ("iq3_s", 256, 110),
            22 => ("iq2_s", 256, 82),
            23 => ("iq4_xs", 256, 136),
            24 => ("i8", 1, 1),
            25 => ("i16", 1, 2),
            26 => ("i32", 1, 4),
            27 => ("i64", 1, 8),
            28 => ("f64", 1, 8),
            29 => ("iq1_m", 256, 56),
            30 => ("bf16", 1, 2),
            34 => ("tq1_0", 256, 54),
            35 => ("tq2_0", 256, 66),
            39 => ("mxfp4", 32, 17),
            _ => return None,
        })
    }

    /// The name llama.cpp prints for this type (`q4_K`, `f16`, …).
    pub fn name(self) -> String {
        match self.layout() {
            Some((name, _, _)) => name.to_string(),
            None => format!("type{}", self.0),
        }
    }

    pub fn is_known(self) -> bool {
        self.layout().is_some()
    }

    /// Bytes needed for `n_elements` of this type, or `None` when the type is
    /// unknown, the count is not a whole number of blocks, or it overflows.
    pub fn bytes_for(self, n_elements: u64) -> Option<u64> {
        let (_, block, size) = self.layout()?;
        if n_elements % block != 0 {
            return None;
        }
        (n_elements / block).checked_mul(size)
    }
}

/// The name of a `general.file_type` value (llama.cpp's `llama_ftype`), as
/// llama.cpp prints it in its model type string.
pub fn file_type_name(file_type: u32) -> Option<&'static str> {
    Some(match file_type {
        0 => "F32",
        1 => "F16",
        2 => "Q4_0",
        3 => "Q4_1",
        7 => "Q8_0",
        8 => "Q5_0",
        9 => "Q5_1",
        10 => "Q2_K",
        11 => "Q3_K_S",
        12 => "Q3_K_M",
        13 => "Q3_K_L",
        14 => "Q4_K_S",
        15 => "Q4_K_M",
        16 => "Q5_K_S",
        17 => "Q5_K_M",
        18 => "Q6_K",
        19 => "IQ2_XXS",
        20 => "IQ2_XS",
        21 => "Q2_K_S",
        22 => "IQ3_XS",
        23 => "IQ3_XXS",
        24 => "IQ1_S",
        25 => "IQ4_NL",
        26 => "IQ3_S",
        27 => "IQ3_M",
        28 => "IQ2_S",
        29 => "IQ2_M",
        30 => "IQ4_XS",
        31 => "IQ1_M",
        32 => "BF16",
        36 => "TQ1_0",
        37 => "TQ2_0",
        38 => "MXFP4_MOE",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn q4_0_block_is_18_bytes_per_32_elements() {
        assert_eq!(GgmlType(2).bytes_for(64), Some(36));
        assert_eq!(GgmlType(2).bytes_for(33), None, "partial block");
    }

    #[test]
    fn unknown_type_has_no_size() {
        assert_eq!(GgmlType(1000).bytes_for(32), None);
        assert_eq!(GgmlType(1000).name(), "type1000");
    }

    #[test]
    fn size_overflow_is_none() {
        assert_eq!(GgmlType(0).bytes_for(u64::MAX), None);
    }
}
