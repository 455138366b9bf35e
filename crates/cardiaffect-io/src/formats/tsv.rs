//! Text tables with a header row: BIDS TSV files (`participants.tsv`, `*_events.tsv`,
//! `*_channels.tsv`; tab-separated, `n/a` for a missing value) and the CSV or TSV event files a
//! user writes by hand (RFC 4180 quoting in CSV).

use crate::error::ParseError;

#[derive(Debug, Clone, PartialEq)]
pub struct TextTable {
    pub columns: Vec<String>,
    /// (line number in the file, 1-based; fields), one per data row; missing values are `None`.
    pub rows: Vec<(usize, Vec<Option<String>>)>,
}

impl TextTable {
    pub fn column(&self, name: &str) -> Option<usize> {
        self.columns
            .iter()
            .position(|c| c.eq_ignore_ascii_case(name))
    }

    /// The value of `column` in data row `row`.
    pub fn get(&self, row: usize, column: usize) -> Option<&str> {
        self.rows[row].1.get(column).and_then(|v| v.as_deref())
    }
}

/// Split one line at `delim`, trimmed; in CSV (`,`) double quotes group and `""` is a quote.
fn split(line: &str, delim: char) -> Vec<String> {
    if delim != ',' || !line.contains('"') {
        return line.split(delim).map(|s| s.trim().to_string()).collect();
    }
    super::csv::split_fields(line, delim)
        .into_iter()
        .map(|f| f.trim().to_string())
        .collect()
}

fn missing(v: &str) -> bool {
    v.is_empty() || v == "n/a" || v.eq_ignore_ascii_case("nan") || v.eq_ignore_ascii_case("na")
}

/// Parse a table whose first non-blank line names the columns. `delim`: `'\t'` or `','`;
/// `None` chooses the one the header row holds (tab first).
pub fn parse(text: &str, delim: Option<char>) -> Result<TextTable, ParseError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut lines = text
        .split('\n')
        .enumerate()
        .map(|(i, l)| (i + 1, l.strip_suffix('\r').unwrap_or(l)))
        .filter(|(_, l)| !l.trim().is_empty());
    let Some((_, head)) = lines.next() else {
        return Err(ParseError::new(
            0,
            "header row",
            "a first line naming the columns",
            "an empty file",
        ));
    };
    let delim = delim.unwrap_or(if head.contains('\t') { '\t' } else { ',' });
    let columns = split(head, delim);
    let mut rows = Vec::new();
    let mut offset = head.len() + 1;
    for (line, l) in lines {
        let fields = split(l, delim);
        if fields.len() != columns.len() {
            return Err(ParseError::new(
                offset,
                format!("line {line}"),
                format!("{} fields, as the header row has", columns.len()),
                format!("{} fields", fields.len()),
            ));
        }
        offset += l.len() + 1;
        rows.push((
            line,
            fields
                .into_iter()
                .map(|f| (!missing(&f)).then_some(f))
                .collect(),
        ));
    }
    Ok(TextTable { columns, rows })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bids_tsv_with_missing_values() {
        let t = parse(
            "onset\tduration\ttrial_type\n1.5\t2\tfear\n4\tn/a\tjoy\n",
            None,
        )
        .unwrap();
        assert_eq!(t.columns, ["onset", "duration", "trial_type"]);
        assert_eq!(t.rows.len(), 2);
        assert_eq!(t.rows[1].0, 3);
        assert_eq!(t.get(1, 1), None);
        assert_eq!(t.get(0, 2), Some("fear"));
    }

    #[test]
    fn quoted_csv_and_ragged_rows() {
        let t = parse(
            "recording,onset,duration,note\r\n\"a,b.edf\",1,2,\"say \"\"hi\"\"\"\r\n",
            None,
        )
        .unwrap();
        assert_eq!(t.get(0, 0), Some("a,b.edf"));
        assert_eq!(t.get(0, 3), Some("say \"hi\""));
        let e = parse("a\tb\n1\t2\t3\n", None).unwrap_err();
        assert_eq!(e.field, "line 2");
        assert!(parse("", None).is_err());
    }
}
