//! Delimited text: CSV, TSV, whitespace-separated, and OpenSignals text files (BITalino,
//! biosignalsplux, WESAD's RespiBAN), whose `#` header carries a JSON object with the sampling
//! rate and column names.

use crate::error::ParseError;

#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    pub columns: Vec<String>,
    /// Column-wise values.
    pub data: Vec<Vec<f64>>,
    /// From an OpenSignals header, when there is one.
    pub fs: Option<f64>,
    /// Raw OpenSignals header fields (device JSON) when present.
    pub opensignals: Option<OpenSignals>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct OpenSignals {
    pub device: String,
    pub sensors: Vec<String>,
    pub resolution: Vec<u32>,
}

fn detect_delimiter(line: &str) -> Option<char> {
    [('\t'), (','), (';')]
        .into_iter()
        .find(|&c| line.contains(c))
}

fn split(line: &str, d: Option<char>) -> Vec<&str> {
    match d {
        Some(c) => line.split(c).map(|s| s.trim()).collect(),
        None => line.split_whitespace().collect(),
    }
}

/// Pull a few fields out of OpenSignals' one-line JSON header without a JSON dependency.
fn opensignals_header(json: &str) -> (Option<f64>, Vec<String>, Option<OpenSignals>) {
    let after = |key: &str| {
        json.find(&format!("\"{key}\""))
            .map(|i| &json[i + key.len() + 2..])
    };
    let fs = after("sampling rate").and_then(|r| {
        let r = r.trim_start().strip_prefix(':')?.trim_start();
        let end = r.find([',', '}']).unwrap_or(r.len());
        r[..end].trim().parse::<f64>().ok()
    });
    let list = |key: &str| -> Vec<String> {
        after(key)
            .and_then(|r| {
                let r = r
                    .trim_start()
                    .strip_prefix(':')?
                    .trim_start()
                    .strip_prefix('[')?;
                Some(
                    r[..r.find(']')?]
                        .split(',')
                        .map(|s| s.trim().trim_matches('"').to_string())
                        .filter(|s| !s.is_empty())
                        .collect(),
                )
            })
            .unwrap_or_default()
    };
    let columns = list("column");
    let device = after("device").and_then(|r| {
        let r = r
            .trim_start()
            .strip_prefix(':')?
            .trim_start()
            .strip_prefix('"')?;
        Some(r[..r.find('"')?].to_string())
    });
    let sensors = list("sensor");
    let resolution = list("resolution")
        .iter()
        .filter_map(|s| s.parse().ok())
        .collect();
    let os = Some(OpenSignals {
        device: device.unwrap_or_default(),
        sensors,
        resolution,
    });
    (fs, columns, os)
}

/// One field as CSV writes it (RFC 4180): as it is, or in double quotes (inner quotes doubled)
/// when it holds a comma, a quote or a line break. Every CSV file cardiaffect writes uses it.
pub fn field(s: &str) -> std::borrow::Cow<'_, str> {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\"")).into()
    } else {
        s.into()
    }
}

/// Split one line at `delim`, reading RFC 4180 quoting (double quotes group, `""` is a quote;
/// no embedded newlines): the reader of what [`field`] writes. Fields are not trimmed.
pub fn split_fields(line: &str, delim: char) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            ('"', _) => quoted = !quoted,
            (c, false) if c == delim => out.push(std::mem::take(&mut cur)),
            (c, _) => cur.push(c),
        }
    }
    out.push(cur);
    out
}

pub fn parse(text: &str) -> Result<Table, ParseError> {
    let mut fs = None;
    let mut columns: Vec<String> = Vec::new();
    let mut opensignals = None;
    let mut delim: Option<Option<char>> = None;
    let mut data: Vec<Vec<f64>> = Vec::new();
    let mut offset = 0usize;
    for (lineno, raw) in text.lines().enumerate() {
        let line_at = offset;
        offset += raw.len() + 1;
        let line = raw.trim();
        if line.is_empty() {
            continue;
        }
        if let Some(c) = line.strip_prefix('#') {
            let c = c.trim();
            if c.starts_with('{') && c.contains("sampling rate") {
                let (f, cols, os) = opensignals_header(c);
                fs = f;
                if !cols.is_empty() {
                    columns = cols;
                }
                opensignals = os;
            }
            continue;
        }
        let d = *delim.get_or_insert_with(|| detect_delimiter(line));
        let fields = split(line, d);
        let parsed: Vec<Option<f64>> = fields
            .iter()
            .map(|f| {
                if f.is_empty() || f.eq_ignore_ascii_case("nan") || f.eq_ignore_ascii_case("na") {
                    Some(f64::NAN)
                } else {
                    f.parse::<f64>().ok()
                }
            })
            .collect();
        if data.is_empty() && parsed.iter().any(|p| p.is_none()) {
            // A header row of names.
            if columns.is_empty() || columns.len() != fields.len() {
                columns = fields
                    .iter()
                    .map(|s| s.trim_matches('"').to_string())
                    .collect();
            }
            continue;
        }
        if data.is_empty() {
            data = vec![Vec::new(); fields.len()];
        }
        if fields.len() != data.len() {
            return Err(ParseError::new(
                line_at,
                format!("line {}", lineno + 1),
                format!("{} columns", data.len()),
                format!("{} columns", fields.len()),
            ));
        }
        for (c, p) in parsed.iter().enumerate() {
            match p {
                Some(v) => data[c].push(*v),
                None => {
                    return Err(ParseError::new(
                        line_at,
                        format!("line {}, column {}", lineno + 1, c + 1),
                        "a number",
                        format!("{:?}", fields[c]),
                    ));
                }
            }
        }
    }
    if data.is_empty() {
        return Err(ParseError::new(
            0,
            "rows",
            "at least one row of numbers",
            "none",
        ));
    }
    if columns.len() != data.len() {
        columns = (0..data.len())
            .map(|i| format!("column {}", i + 1))
            .collect();
    }
    Ok(Table {
        columns,
        data,
        fs,
        opensignals,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_and_delimiters() {
        let t = parse("time,ecg\n0,1.5\n1,2.5\n").unwrap();
        assert_eq!(t.columns, vec!["time", "ecg"]);
        assert_eq!(t.data[1], vec![1.5, 2.5]);
        let t = parse("1\t2\n3\t4\n").unwrap();
        assert_eq!(t.data[0], vec![1., 3.]);
        let t = parse("1 2\n3 4\n").unwrap();
        assert_eq!(t.data[1], vec![2., 4.]);
    }

    #[test]
    fn opensignals_header_gives_rate_and_names() {
        let t = parse("# OpenSignals Text File Format\n# {\"00:07\": {\"sampling rate\": 1000, \"column\": [\"nSeq\", \"DI\", \"A1\"], \"sensor\": [\"ECG\"], \"resolution\": [10]}}\n# EndOfHeader\n0\t0\t512\n1\t0\t513\n").unwrap();
        assert_eq!(t.fs, Some(1000.0));
        assert_eq!(t.columns, vec!["nSeq", "DI", "A1"]);
        assert_eq!(t.opensignals.unwrap().sensors, vec!["ECG"]);
    }

    #[test]
    fn ragged_rows_are_errors() {
        let e = parse("1,2\n3\n").unwrap_err();
        assert!(e.field.contains("line 2"), "{e}");
    }
}

#[cfg(test)]
mod field_tests {
    use super::field;

    #[test]
    fn fields_are_quoted_only_when_they_must_be() {
        assert_eq!(field("P01"), "P01");
        assert_eq!(field("a,b"), "\"a,b\"");
        assert_eq!(field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(field("two\nlines"), "\"two\nlines\"");
    }
}
