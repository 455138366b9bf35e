//! `cardiaffect report`: the page (`cardiaffect_train::report`) written beside the run.

use std::path::PathBuf;

use anyhow::{Context, Result};
use cardiaffect_train::report::build;
use clap::Args;

#[derive(Args)]
pub struct ReportArgs {
    /// A finetune run, a pretrain run, or a demo output folder.
    pub run: PathBuf,
    /// Where to write the page (default: RUN_DIR/report.html).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

pub fn run(a: ReportArgs) -> Result<()> {
    let html = build(&a.run)?;
    let out = a.out.unwrap_or_else(|| a.run.join("report.html"));
    if let Some(d) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
    }
    cardiaffect_io::artifact::write_atomic(&out, html.as_bytes())?;
    println!("wrote {}", out.display());
    Ok(())
}
