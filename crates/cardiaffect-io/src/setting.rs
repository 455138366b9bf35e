//! Settings named in messages.
//!
//! A library names a setting by its config field, written `‹field›` (`‹lead›`, `‹fs›`,
//! `‹masking.ratio›`): the libraries have no flags. Each front end spells the names its own way
//! before a person reads the message: the binary as flags (`--lead`, `--mask-ratio`), the Python
//! package as keyword arguments (`lead=`). A message read straight from a library still reads
//! well: the marks only set the name apart.

/// Opens a setting's name in a message.
pub const OPEN: char = '‹';
/// Closes it.
pub const CLOSE: char = '›';

/// `‹field›`: how a message names a setting.
pub fn name(field: &str) -> String {
    format!("{OPEN}{field}{CLOSE}")
}

/// The message with every `‹field›` replaced by `spell(field)`; an unclosed mark stays as it is.
pub fn spell(message: &str, mut spell: impl FnMut(&str) -> String) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(i) = rest.find(OPEN) {
        out.push_str(&rest[..i]);
        let after = &rest[i + OPEN.len_utf8()..];
        match after.find(CLOSE) {
            Some(j) if !after[..j].contains(OPEN) => {
                out.push_str(&spell(&after[..j]));
                rest = &after[j + CLOSE.len_utf8()..];
            }
            _ => {
                out.push(OPEN);
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// The fields named in a message, in order (for tests and front ends that check their tables).
pub fn named(message: &str) -> Vec<String> {
    let mut found = Vec::new();
    spell(message, |f| {
        found.push(f.to_string());
        String::new()
    });
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spells_every_name_and_keeps_the_rest() {
        let m = format!(
            "x.mat: {} 3: expected 0..2; or pass {}",
            name("lead"),
            name("format")
        );
        assert_eq!(m, "x.mat: ‹lead› 3: expected 0..2; or pass ‹format›");
        assert_eq!(
            spell(&m, |f| format!("--{f}")),
            "x.mat: --lead 3: expected 0..2; or pass --format"
        );
        assert_eq!(named(&m), ["lead", "format"]);
    }

    #[test]
    fn unclosed_or_nested_marks_stay() {
        assert_eq!(spell("a ‹b", |_| "X".into()), "a ‹b");
        assert_eq!(spell("‹a ‹b› c", |_| "X".into()), "‹a X c");
        assert_eq!(spell("no marks", |_| "X".into()), "no marks");
    }
}
