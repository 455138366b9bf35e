//! `cardiaffect embed`: the CLS embedding of every window of a corpus, as an NPY file, for
//! scikit-learn or any tool on top (the same numbers as Python's `Model.embed`).

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use cardiaffect_io::artifact::write_atomic;
use cardiaffect_io::formats::npy;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

#[derive(Args)]
pub struct EmbedArgs {
    /// A model folder, a finetune run (its final model/), a pretrain run, or `bundled`.
    #[arg(long, value_name = "RUN_DIR|bundled", default_value = "bundled")]
    pub model: String,
    /// A corpus written by `prepare`; every window is embedded, in windows.csv's order.
    #[arg(long, value_name = "DIR")]
    pub corpus: PathBuf,
    /// Output .npy: `[windows, d_model]` float32.
    #[arg(long, value_name = "FILE.npy")]
    pub out: PathBuf,
    /// Windows per forward pass (changes speed, not the numbers).
    #[arg(long, default_value_t = 64)]
    pub batch: usize,
    #[command(flatten)]
    pub device: crate::device::DeviceArgs,
}

pub fn run(a: EmbedArgs) -> Result<()> {
    if a.out.extension().is_none_or(|x| x != "npy") {
        bail!("--out {}: expected a .npy file", a.out.display());
    }
    if a.batch == 0 {
        bail!("--batch 0: expected at least 1 window per pass");
    }
    let dir = if a.model == "bundled" {
        crate::bundled::weights_dir()?
    } else {
        cardiaffect_bundle::resolve(std::path::Path::new(&a.model))
    };
    let device = a.device.device()?;
    let (cfg, model) = cardiaffect_model::load_model(&dir, &device)
        .with_context(|| format!("--model {}", dir.display()))?;
    let corpus = cardiaffect_corpus::Corpus::open(&a.corpus)?;
    let l = corpus.window_len();
    if l != cfg.window_len {
        bail!(
            "--corpus {}: its windows have {l} samples, the model {} takes {}: prepare the corpus with the model's window",
            a.corpus.display(),
            dir.display(),
            cfg.window_len
        );
    }
    if let Some(p) = cardiaffect_bundle::read_preprocess(&dir)? {
        let fs = corpus.manifest.config.fs;
        if (p.fs - fs).abs() > 1e-9 {
            bail!(
                "--corpus {}: its windows are at {fs} Hz, the model {} was trained at {} Hz",
                a.corpus.display(),
                dir.display(),
                p.fs
            );
        }
    }
    let n = corpus.len();
    let bar = ProgressBar::new(n as u64);
    bar.set_style(
        ProgressStyle::with_template("embed [{bar:30}] {pos}/{len} windows (ETA {eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let mut bytes = npy::header("<f4", &[n, cfg.d_model]);
    bytes.reserve(n * cfg.d_model * 4);
    let model = model.prepared();
    let mut start = 0;
    while start < n {
        let end = (start + a.batch).min(n);
        let x = cardiaffect_model::batch::zscored((start..end).map(|i| corpus.window(i)), l);
        let t = cardiaffect_model::batch::tensor(x, l, &device);
        for row in model.cls_embeddings(t) {
            for v in row {
                bytes.extend_from_slice(&(v as f32).to_le_bytes());
            }
        }
        bar.inc((end - start) as u64);
        start = end;
    }
    bar.finish_and_clear();
    write_atomic(&a.out, &bytes)?;
    println!(
        "wrote {} ({n} windows x {} dimensions: the CLS embeddings of model {})",
        a.out.display(),
        cfg.d_model,
        dir.display()
    );
    Ok(())
}
