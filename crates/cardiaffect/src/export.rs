//! `cardiaffect export`: a model folder for other tools. Weights in safetensors, in PyTorch's
//! layout by default (loads into `reference/model.py` with `load_state_dict`), with the config,
//! preprocessing and classes beside them, and the parameter names explained. ONNX: Burn 0.22
//! imports ONNX but has no exporter, so none is written (the PyTorch layout plus
//! `reference/model.py` gives PyTorch users `torch.onnx.export`).

use std::path::PathBuf;

use anyhow::{Context, Result};
use burn::module::Module;
use cardiaffect_bundle::{CONFIG_FILE, LABELS_FILE, PREPROCESS_FILE, WEIGHTS_FILE};
use cardiaffect_io::artifact;
use cardiaffect_model::{load_model, save_weights, save_weights_pytorch};
use clap::Args;

/// Tensor layout of the exported weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Layout {
    /// Linear `[out, in]`, LayerNorm `weight`/`bias` (for `reference/model.py`).
    Pytorch,
    /// Burn's own: Linear `[in, out]`, LayerNorm `gamma`/`beta`.
    Burn,
}

#[derive(Args)]
pub struct ExportArgs {
    /// A model folder, a finetune run (its final model/) or a pretrain run.
    #[arg(long, value_name = "RUN_DIR")]
    pub model: PathBuf,
    /// Output folder (created).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Tensor layout: pytorch (Linear [out, in], LayerNorm weight/bias) or burn.
    #[arg(long, value_enum, default_value_t = Layout::Pytorch)]
    pub layout: Layout,
}

const NAMES: &str = "# Parameters of the exported model\n\nPyTorch layout (default): load with\n\n```python\nimport json, safetensors.torch, sys\nsys.path.insert(0, 'reference')  # from the cardiaffect repository\nfrom model import Model\ncfg = json.load(open('config.json'))\nm = Model(cfg)\nm.load_state_dict(safetensors.torch.load_file('model.safetensors'))\n```\n\n| name | shape | what |\n|---|---|---|\n| `encoder.convs.{i}.weight`, `.bias` | `[C_i, C_{i-1}, k_i]`, `[C_i]` | convolution `i` of the signal encoder (C_{-1} = 1) |\n| `encoder.norms.{i}.weight`, `.bias` | `[C_i]` | LayerNorm over channels after conv `i`, then GELU |\n| `proj.weight`, `.bias` | `[d, C_last]`, `[d]` | channels to model width |\n| `cls_token`, `mask_token` | `[d]` | CLS and mask embeddings |\n| `pos` | `[T + 1, d]` | learned positions (CLS first); absent when sinusoidal |\n| `pos_conv.weight`, `.bias` | `[d, 1, k]`, `[d]` | depthwise convolution over tokens, GELU, added to them |\n| `transformer.layers.{l}.norm_2.*` | `[d]` | LayerNorm before attention |\n| `transformer.layers.{l}.mha.{query,key,value,output}.*` | `[d, d]`, `[d]` | attention |\n| `transformer.layers.{l}.norm_1.*` | `[d]` | LayerNorm before the feed-forward |\n| `transformer.layers.{l}.pwff.linear_inner.*`, `linear_outer.*` | `[d_ff, d]`, `[d, d_ff]` | feed-forward (GELU) |\n| `final_norm.*` | `[d]` | LayerNorm after the last layer |\n| `recon_head.weight`, `.bias` | `[s, d]`, `[s]` | per-token reconstruction (pre-training) |\n| `cls_head.weight`, `.bias` | `[n_classes, d]`, `[n_classes]` | classification from the CLS token |\n\nBurn layout (`--layout burn`): Linear weights are `[in, out]` and LayerNorm parameters are\n`gamma`/`beta`. Inputs: `preprocess.json` (rate, band-pass, window; z-score each window);\nclasses: `labels.json` (absent for a pre-trained-only model).\n";

/// The files of an export folder (`checksums.json` lists them).
const FILES: [&str; 5] = [
    WEIGHTS_FILE,
    CONFIG_FILE,
    PREPROCESS_FILE,
    LABELS_FILE,
    "PARAMETERS.md",
];

pub fn run(a: ExportArgs) -> Result<()> {
    let dir = cardiaffect_bundle::resolve(&a.model);
    let device = crate::device::device(crate::device::Backend::Flex)?;
    let (cfg, model) =
        load_model(&dir, &device).with_context(|| format!("--model {}", dir.display()))?;
    // Completed as OUT.tmp and swapped in whole: a reader never sees half an export.
    artifact::write_dir(&a.out, &FILES, |tmp| -> Result<()> {
        let w = tmp.join(WEIGHTS_FILE);
        if a.layout == Layout::Pytorch {
            save_weights_pytorch(&model, &w)?;
        } else {
            save_weights(&model, &w)?;
        }
        artifact::write_json_atomic(&tmp.join(CONFIG_FILE), &cfg)?;
        for f in [PREPROCESS_FILE, LABELS_FILE] {
            if dir.join(f).exists() {
                let bytes = std::fs::read(dir.join(f)).with_context(|| format!("reading {f}"))?;
                artifact::write_atomic(&tmp.join(f), &bytes)?;
            }
        }
        artifact::write_atomic(&tmp.join("PARAMETERS.md"), NAMES.as_bytes())?;
        Ok(())
    })?;
    let w = a.out.join(WEIGHTS_FILE);
    println!("wrote {} ({} layout, {} parameters), config.json, preprocess.json, labels.json, PARAMETERS.md", w.display(), match a.layout { Layout::Pytorch => "pytorch", Layout::Burn => "burn" }, model.num_params());
    println!("ONNX: not written (Burn 0.22 has no ONNX exporter); from PyTorch, reference/model.py + these weights + torch.onnx.export");
    Ok(())
}
