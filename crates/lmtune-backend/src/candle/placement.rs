//! Where each part of a candle model lives: llama.cpp's `n_gpu_layers`
//! rule over a host and an offload device, described as records carry it.

use candle_core::Device;

/// One device the model uses, with a label for logs and records.
#[derive(Debug, Clone)]
pub struct Slot {
    pub label: String,
    pub device: Device,
}

/// Where each part of the model lives: indices into `devices`.
#[derive(Debug, Clone)]
pub struct Placement {
    pub devices: Vec<Slot>,
    pub embedding: usize,
    pub blocks: Vec<usize>,
    pub output: usize,
}

impl Placement {
    /// Everything on one device.
    pub fn single(n_layer: usize, slot: Slot) -> Placement {
        Placement {
            devices: vec![slot],
            embedding: 0,
            blocks: vec![0; n_layer],
            output: 0,
        }
    }

    /// llama.cpp's rule for `n_gpu_layers` (the vendored `load_tensors`:
    /// `i_gpu_start = n_layer + 1 - k`, the output layer counted as layer
    /// `n_layer`): the output layer goes to `offload` first, at k = 1, then
    /// the last `k - 1` blocks; the rest and the token embeddings stay on
    /// `host`. k = n_layer + 1 offloads everything but the embeddings.
    pub fn offload(n_layer: usize, n_gpu_layers: usize, host: Slot, offload: Slot) -> Placement {
        if n_gpu_layers == 0 {
            return Placement::single(n_layer, host);
        }
        let first_offloaded = (n_layer + 1).saturating_sub(n_gpu_layers);
        Placement {
            devices: vec![host, offload],
            embedding: 0,
            blocks: (0..n_layer)
                .map(|i| usize::from(i >= first_offloaded))
                .collect(),
            output: 1,
        }
    }

    /// `blocks 0-19 on cpu, blocks 20-29 on cuda:0, output on cuda:0`.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        let mut start = 0;
        while start < self.blocks.len() {
            let d = self.blocks[start];
            let mut end = start;
            while end + 1 < self.blocks.len() && self.blocks[end + 1] == d {
                end += 1;
            }
            let label = &self.devices[d].label;
            parts.push(if start == end {
                format!("block {start} on {label}")
            } else {
                format!("blocks {start}-{end} on {label}")
            });
            start = end + 1;
        }
        parts.push(format!("output on {}", self.devices[self.output].label));
        parts.join(", ")
    }

    /// The placement as records carry it, in the llama.cpp backend's terms:
    /// layers off the host device (blocks and output) out of n_layer + 1.
    pub fn record(&self) -> lmtune_core::record::Placement {
        let off_host = self.blocks.iter().filter(|&&d| d != self.embedding).count()
            + usize::from(self.output != self.embedding);
        let mut groups = vec![format!(
            "token embeddings: {}",
            self.devices[self.embedding].label
        )];
        groups.extend(
            self.describe()
                .split(", ")
                .map(|g| g.replacen(" on ", ": ", 1)),
        );
        lmtune_core::record::Placement {
            layers_offloaded: off_host as u32,
            layers_total: self.blocks.len() as u32 + 1,
            groups,
            buffers: Vec::new(),
            graph_splits: None,
            kv_caches: Vec::new(),
            overridden: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cpu(label: &str) -> Slot {
        Slot {
            label: label.into(),
            device: Device::Cpu,
        }
    }

    #[test]
    fn placement_follows_llama_cpps_n_gpu_layers_rule() {
        let p = |k| Placement::offload(30, k, cpu("cpu"), cpu("gpu"));
        assert_eq!(p(0).devices.len(), 1);
        assert!(p(0).blocks.iter().all(|&d| d == 0));
        // k = 1 is the output layer alone.
        assert!(p(1).blocks.iter().all(|&d| d == 0));
        assert_eq!(p(1).output, 1);
        let ten = p(10);
        assert_eq!(ten.blocks.iter().filter(|&&d| d == 1).count(), 9);
        assert_eq!(ten.blocks[20], 0);
        assert_eq!(ten.blocks[21], 1);
        assert_eq!(ten.output, 1);
        assert_eq!(p(30).blocks[0], 0);
        assert!(p(31).blocks.iter().all(|&d| d == 1));
        // More than n_layer + 1 is everything, as in llama.cpp.
        assert!(p(99).blocks.iter().all(|&d| d == 1));
        assert_eq!(
            ten.describe(),
            "blocks 0-20 on cpu, blocks 21-29 on gpu, output on gpu"
        );
        assert_eq!(
            Placement::offload(3, 2, cpu("cpu"), cpu("gpu")).describe(),
            "blocks 0-1 on cpu, block 2 on gpu, output on gpu"
        );
        // The record counts layers as llama.cpp's "offloaded N/M" does.
        let r = ten.record();
        assert_eq!((r.layers_offloaded, r.layers_total), (10, 31));
        assert_eq!(
            r.groups,
            [
                "token embeddings: cpu",
                "blocks 0-20: cpu",
                "blocks 21-29: gpu",
                "output: gpu"
            ]
        );
        assert_eq!(p(0).record().layers_offloaded, 0);
        assert_eq!(p(31).record().layers_offloaded, 31);
    }
}
