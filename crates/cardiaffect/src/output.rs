//! What the binary prints besides results: messages whose settings are spelt as flags, and
//! lines above a progress bar.

/// A message with the settings the libraries name (`‹field›`, see [`cardiaffect_io::setting`])
/// spelt as the flags that set them in `command`.
pub fn flags(command: &str, message: &str) -> String {
    cardiaffect_io::setting::spell(message, |field| flag(command, field))
}

/// The flag that sets a library field: its name with `-` for `_`, except where the flag's name
/// is shorter or a struct holds the field. `fs` is the read option (the input's rate), which
/// `prepare` and `predict` call `--input-fs` beside their own `--fs`.
pub(crate) fn flag(command: &str, field: &str) -> String {
    let name = match field {
        "fs" if matches!(command, "prepare" | "predict") => "input-fs",
        "prepare.fs" => "fs",
        "prepare.window_s" => "window",
        "prepare.stride_s" => "stride",
        "prepare.clean" => "band",
        "baseline_s" => "baseline",
        "corpora" => "corpus",
        "method" => "methods",
        "masking.ratio" => "mask-ratio",
        "masking.span" => "mask-span",
        "blocks" => "block",
        "synth" => return "--subjects/--trials/--trial-seconds".into(),
        f => return format!("--{}", f.replace('_', "-")),
    };
    format!("--{name}")
}

/// A line above a progress bar; when the bar is hidden (output not a terminal), plain stdout, so
/// that logs and pipes keep it.
pub fn say(bar: &indicatif::ProgressBar, line: String) {
    if bar.is_hidden() {
        println!("{line}");
    } else {
        bar.println(line);
    }
}
