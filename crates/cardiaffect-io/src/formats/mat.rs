//! MATLAB MAT-file level 5 (the format of `save -v7` and `scipy.io.savemat`).
//!
//! Reads numeric arrays of every class, logical, char, cell and struct arrays, and
//! zlib-compressed elements, in either byte order. Sparse and object arrays are recognised and
//! kept as [`MatValue::Unsupported`] so that a file holding one still opens. MAT v7.3 files are
//! HDF5 and are refused with a hint.
//!
//! Reference: The MathWorks, "MAT-File Format" (matfile_format.pdf), chapter 1.
//!
//! Every length read from the file is checked against the bytes that are really there before
//! anything is allocated, so a corrupt header cannot ask for terabytes.

use std::io::Read;

use crate::error::ParseError;

const HEADER_LEN: usize = 128;
const MAX_DEPTH: usize = 64;

// Data types (the `mi*` constants of the spec).
const MI_INT8: u32 = 1;
const MI_UINT8: u32 = 2;
const MI_INT16: u32 = 3;
const MI_UINT16: u32 = 4;
const MI_INT32: u32 = 5;
const MI_UINT32: u32 = 6;
const MI_SINGLE: u32 = 7;
const MI_DOUBLE: u32 = 9;
const MI_INT64: u32 = 12;
const MI_UINT64: u32 = 13;
const MI_MATRIX: u32 = 14;
const MI_COMPRESSED: u32 = 15;
const MI_UTF8: u32 = 16;
const MI_UTF16: u32 = 17;
const MI_UTF32: u32 = 18;

/// Array classes (the `mx*_CLASS` constants).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatClass {
    Cell,
    Struct,
    Object,
    Char,
    Sparse,
    Double,
    Single,
    Int8,
    UInt8,
    Int16,
    UInt16,
    Int32,
    UInt32,
    Int64,
    UInt64,
    /// A numeric array with the logical flag set.
    Logical,
}

impl MatClass {
    fn from_code(code: u8) -> Option<MatClass> {
        use MatClass::*;
        Some(match code {
            1 => Cell,
            2 => Struct,
            3 => Object,
            4 => Char,
            5 => Sparse,
            6 => Double,
            7 => Single,
            8 => Int8,
            9 => UInt8,
            10 => Int16,
            11 => UInt16,
            12 => Int32,
            13 => UInt32,
            14 => Int64,
            15 => UInt64,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        use MatClass::*;
        match self {
            Cell => "cell",
            Struct => "struct",
            Object => "object",
            Char => "char",
            Sparse => "sparse",
            Double => "double",
            Single => "single",
            Int8 => "int8",
            UInt8 => "uint8",
            Int16 => "int16",
            UInt16 => "uint16",
            Int32 => "int32",
            UInt32 => "uint32",
            Int64 => "int64",
            UInt64 => "uint64",
            Logical => "logical",
        }
    }
}

/// A numeric (or logical) array, column-major as MATLAB stores it.
#[derive(Debug, Clone, PartialEq)]
pub struct NumericArray {
    pub class: MatClass,
    pub dims: Vec<usize>,
    /// Decoded, or (read with [`parse_shared`]) doubles viewed in place in the file.
    pub real: crate::mapped::F64s,
    pub imag: Option<Vec<f64>>,
}

impl NumericArray {
    pub fn rows(&self) -> usize {
        self.dims.first().copied().unwrap_or(0)
    }

    pub fn cols(&self) -> usize {
        self.dims.iter().skip(1).product()
    }

    /// Column `c` of a 2-D array (contiguous, as MATLAB is column-major).
    pub fn column(&self, c: usize) -> Option<&[f64]> {
        let r = self.rows();
        if c >= self.cols() {
            return None;
        }
        self.real.get(c * r..(c + 1) * r)
    }

    /// Column `c` of a 2-D array as values that stay a view where the array is one.
    pub fn column_values(&self, c: usize) -> Option<crate::mapped::F64s> {
        let r = self.rows();
        if c >= self.cols() {
            return None;
        }
        self.real.slice(c * r..(c + 1) * r)
    }

    /// Element (i, j) of a 2-D array.
    pub fn at(&self, i: usize, j: usize) -> Option<f64> {
        if i >= self.rows() || j >= self.cols() {
            return None;
        }
        self.real.get(j * self.rows() + i).copied()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum MatValue {
    Numeric(NumericArray),
    Char {
        dims: Vec<usize>,
        /// Rows of the char matrix, joined with '\n'.
        text: String,
    },
    Cell {
        dims: Vec<usize>,
        /// Column-major.
        items: Vec<MatValue>,
    },
    Struct {
        dims: Vec<usize>,
        fields: Vec<String>,
        /// Element-major: element `e`'s field `f` is at `e * fields.len() + f`.
        values: Vec<MatValue>,
    },
    /// Sparse and object arrays: recognised, skipped.
    Unsupported {
        class: MatClass,
        dims: Vec<usize>,
    },
    /// A zero-length matrix element (how MATLAB writes `[]` inside cells and structs).
    Empty,
}

impl MatValue {
    pub fn dims(&self) -> &[usize] {
        match self {
            MatValue::Numeric(a) => &a.dims,
            MatValue::Char { dims, .. }
            | MatValue::Cell { dims, .. }
            | MatValue::Struct { dims, .. }
            | MatValue::Unsupported { dims, .. } => dims,
            MatValue::Empty => &[],
        }
    }

    /// Number of elements.
    pub fn numel(&self) -> usize {
        match self {
            MatValue::Empty => 0,
            v => v.dims().iter().product(),
        }
    }

    /// "double 20x17", "cell 1x20", "struct 1x1", for error messages.
    pub fn describe(&self) -> String {
        let dims = self
            .dims()
            .iter()
            .map(|d| d.to_string())
            .collect::<Vec<_>>()
            .join("x");
        match self {
            MatValue::Numeric(a) => format!("{} {dims}", a.class.name()),
            MatValue::Char { text, .. } => format!("char {dims} {text:?}"),
            MatValue::Cell { .. } => format!("cell {dims}"),
            MatValue::Struct { .. } => format!("struct {dims}"),
            MatValue::Unsupported { class, .. } => format!("{} {dims}", class.name()),
            MatValue::Empty => "an empty array []".to_string(),
        }
    }

    /// Field `name` of element `index` of a struct array.
    pub fn field_at(&self, index: usize, name: &str) -> Option<&MatValue> {
        match self {
            MatValue::Struct { fields, values, .. } => {
                let f = fields.iter().position(|n| n == name)?;
                values.get(index * fields.len() + f)
            }
            _ => None,
        }
    }

    /// Field `name` of a 1x1 struct.
    pub fn field(&self, name: &str) -> Option<&MatValue> {
        self.field_at(0, name)
    }

    pub fn field_names(&self) -> &[String] {
        match self {
            MatValue::Struct { fields, .. } => fields,
            _ => &[],
        }
    }

    pub fn as_numeric(&self) -> Option<&NumericArray> {
        match self {
            MatValue::Numeric(a) => Some(a),
            _ => None,
        }
    }

    pub fn as_cell(&self) -> Option<&[MatValue]> {
        match self {
            MatValue::Cell { items, .. } => Some(items),
            _ => None,
        }
    }

    pub fn as_text(&self) -> Option<&str> {
        match self {
            MatValue::Char { text, .. } => Some(text),
            _ => None,
        }
    }

    /// The single value of a 1x1 numeric array.
    pub fn as_scalar(&self) -> Option<f64> {
        match self {
            MatValue::Numeric(a) if a.real.len() == 1 => Some(a.real[0]),
            _ => None,
        }
    }
}

/// A parsed MAT file: its descriptive header text and its variables, in file order.
#[derive(Debug, Clone, PartialEq)]
pub struct MatFile {
    pub header_text: String,
    pub variables: Vec<(String, MatValue)>,
}

impl MatFile {
    pub fn get(&self, name: &str) -> Option<&MatValue> {
        self.variables
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v)
    }

    pub fn names(&self) -> Vec<&str> {
        self.variables.iter().map(|(n, _)| n.as_str()).collect()
    }
}

/// True if the bytes start like a MAT v5 file (or a v7.3 one, which is refused by [`parse`]).
pub fn looks_like_mat(bytes: &[u8]) -> bool {
    bytes.len() >= HEADER_LEN
        && bytes.starts_with(b"MATLAB")
        && (&bytes[126..128] == b"IM" || &bytes[126..128] == b"MI")
}

#[derive(Clone, Copy)]
struct Endian {
    little: bool,
}

impl Endian {
    fn u16(self, b: &[u8]) -> u16 {
        let a = [b[0], b[1]];
        if self.little {
            u16::from_le_bytes(a)
        } else {
            u16::from_be_bytes(a)
        }
    }
    fn u32(self, b: &[u8]) -> u32 {
        let a = [b[0], b[1], b[2], b[3]];
        if self.little {
            u32::from_le_bytes(a)
        } else {
            u32::from_be_bytes(a)
        }
    }
}

/// Parse a whole MAT v5 file.
pub fn parse(bytes: &[u8]) -> Result<MatFile, ParseError> {
    parse_with(bytes, None)
}

/// [`parse`], with uncompressed double arrays left in `bytes` as views (nothing decoded or
/// copied; what a reader of a mapped file wants).
pub fn parse_shared(bytes: &crate::mapped::Bytes) -> Result<MatFile, ParseError> {
    parse_with((**bytes).as_ref(), Some(bytes))
}

/// The byte order and text of a MAT v5 header.
fn header(bytes: &[u8]) -> Result<(Endian, String), ParseError> {
    if bytes.len() < HEADER_LEN {
        return Err(ParseError::new(
            0,
            "header",
            "a 128-byte MAT v5 header",
            format!("{} bytes in the whole file", bytes.len()),
        ));
    }
    if !bytes.starts_with(b"MATLAB") {
        return Err(ParseError::new(
            0,
            "header text",
            "text starting with \"MATLAB\"",
            format!(
                "{:?}",
                String::from_utf8_lossy(&bytes[..16.min(bytes.len())])
            ),
        ));
    }
    let endian = match &bytes[126..128] {
        b"IM" => Endian { little: true },
        b"MI" => Endian { little: false },
        other => {
            return Err(ParseError::new(
                126,
                "endian indicator",
                "\"IM\" or \"MI\"",
                format!("{:?}", String::from_utf8_lossy(other)),
            ))
        }
    };
    let version = endian.u16(&bytes[124..126]);
    if version == 0x0200 {
        return Err(ParseError::new(
            124,
            "version",
            "MAT v5/v7 (0x0100); this is MAT v7.3, an HDF5 file: re-save it in MATLAB with save(..., '-v7')",
            "0x0200",
        ));
    }
    let header_text = String::from_utf8_lossy(&bytes[..116])
        .trim_end_matches(['\0', ' '])
        .to_string();

    Ok((endian, header_text))
}

/// The file's top-level elements in order; an error ends them.
fn top_level(
    bytes: &[u8],
    endian: Endian,
) -> impl Iterator<Item = Result<Element, ParseError>> + '_ {
    let mut pos = HEADER_LEN;
    std::iter::from_fn(move || {
        // Some writers pad the end of the file with fewer than 8 zero bytes.
        if pos >= bytes.len() || bytes.len() - pos < 8 && bytes[pos..].iter().all(|&b| b == 0) {
            return None;
        }
        let el = read_tag(bytes, pos, endian, 0);
        pos = el.as_ref().map_or(bytes.len(), |e| e.next);
        Some(el)
    })
}

/// The names of the file's variables, without reading their values (a compressed variable
/// is inflated only as far as its name): what format detection needs.
pub fn variable_names(bytes: &[u8]) -> Result<Vec<String>, ParseError> {
    let (endian, _) = header(bytes)?;
    let mut names = Vec::new();
    for el in top_level(bytes, endian) {
        let el = el?;
        match el.ty {
            MI_MATRIX if el.data_start == el.data_end => names.push(String::new()),
            MI_MATRIX => names.push(matrix_name(
                &bytes[..el.data_end],
                el.data_start,
                endian,
                0,
            )?),
            MI_COMPRESSED => {
                let mut head = Vec::new();
                flate2::read::ZlibDecoder::new(&bytes[el.data_start..el.data_end])
                    .take(4096)
                    .read_to_end(&mut head)
                    .map_err(|e| {
                        ParseError::new(
                            el.data_start,
                            "compressed element",
                            "a valid zlib stream",
                            e.to_string(),
                        )
                    })?;
                if head.len() >= 8 && endian.u32(&head[..4]) == MI_MATRIX {
                    names.push(matrix_name(&head, 8, endian, el.data_start)?);
                }
            }
            _ => {}
        }
    }
    Ok(names)
}

/// The name of the matrix whose sub-elements start at `start` (after flags and dimensions).
fn matrix_name(buf: &[u8], start: usize, e: Endian, base: usize) -> Result<String, ParseError> {
    let flags = read_tag(buf, start, e, base)?;
    let dims = read_tag(buf, flags.next, e, base)?;
    let name = read_tag(buf, dims.next, e, base)?;
    if name.ty != MI_INT8 && name.ty != MI_UINT8 && name.ty != MI_UTF8 {
        return Err(ParseError::new(
            base + dims.next,
            "array name",
            "an int8 sub-element",
            format!("type {}", name.ty),
        ));
    }
    Ok(String::from_utf8_lossy(&buf[name.data_start..name.data_end]).to_string())
}

/// `shared`, when given, holds `bytes` itself.
fn parse_with(bytes: &[u8], shared: Option<&crate::mapped::Bytes>) -> Result<MatFile, ParseError> {
    let (endian, header_text) = header(bytes)?;
    let mut variables = Vec::new();
    for el in top_level(bytes, endian) {
        let el = el?;
        match el.ty {
            MI_COMPRESSED => {
                let inflated = inflate(&bytes[el.data_start..el.data_end], el.data_start)?;
                let mut ipos = 0;
                while ipos < inflated.len() {
                    let inner = read_tag(&inflated, ipos, endian, el.data_start)?;
                    if inner.ty == MI_MATRIX {
                        let (name, value) =
                            parse_matrix(&inflated, &inner, endian, el.data_start, 0, None)?;
                        variables.push((name, value));
                    }
                    ipos = inner.next;
                }
            }
            MI_MATRIX => {
                let (name, value) = parse_matrix(bytes, &el, endian, 0, 0, shared)?;
                variables.push((name, value));
            }
            // Other top-level elements (e.g. subsystem data) carry no variables.
            _ => {}
        }
    }
    Ok(MatFile {
        header_text,
        variables,
    })
}

fn inflate(data: &[u8], offset: usize) -> Result<Vec<u8>, ParseError> {
    // Grows with what really decompresses: no size from the file is trusted for allocation.
    let mut out = Vec::with_capacity(data.len().saturating_mul(4).min(1 << 26));
    flate2::read::ZlibDecoder::new(data)
        .read_to_end(&mut out)
        .map_err(|e| {
            ParseError::new(
                offset,
                "compressed element",
                "a valid zlib stream",
                e.to_string(),
            )
        })?;
    Ok(out)
}

struct Element {
    ty: u32,
    data_start: usize,
    data_end: usize,
    /// Where the next element starts (after 8-byte padding).
    next: usize,
}

/// `base` is added to offsets in errors, so that they point into the file even inside an
/// inflated buffer (there they are the offset of the compressed element).
fn read_tag(buf: &[u8], pos: usize, e: Endian, base: usize) -> Result<Element, ParseError> {
    let at = base + pos;
    if buf.len() < pos + 8 {
        return Err(ParseError::new(
            at,
            "data element tag",
            "8 bytes",
            format!("{} bytes left", buf.len() - pos.min(buf.len())),
        ));
    }
    let w = e.u32(&buf[pos..pos + 4]);
    let small_size = (w >> 16) as usize;
    if small_size != 0 {
        // Small data element: type and size share the first word, data in the second.
        let ty = w & 0xFFFF;
        if small_size > 4 {
            return Err(ParseError::new(
                at,
                "small data element",
                "at most 4 bytes of data",
                format!("{small_size}"),
            ));
        }
        return Ok(Element {
            ty,
            data_start: pos + 4,
            data_end: pos + 4 + small_size,
            next: pos + 8,
        });
    }
    let ty = w;
    let size = e.u32(&buf[pos + 4..pos + 8]) as usize;
    let data_start = pos + 8;
    let available = buf.len() - data_start;
    if size > available {
        return Err(ParseError::new(
            at,
            "data element",
            format!("{size} bytes of data (element type {ty})"),
            format!("{available} bytes left in the file: it is truncated"),
        ));
    }
    let data_end = data_start + size;
    let next = if ty == MI_COMPRESSED {
        data_end
    } else {
        (data_start + size.div_ceil(8) * 8).min(buf.len())
    };
    Ok(Element {
        ty,
        data_start,
        data_end,
        next,
    })
}

fn type_size(ty: u32) -> Option<usize> {
    Some(match ty {
        MI_INT8 | MI_UINT8 | MI_UTF8 => 1,
        MI_INT16 | MI_UINT16 | MI_UTF16 => 2,
        MI_INT32 | MI_UINT32 | MI_SINGLE | MI_UTF32 => 4,
        MI_DOUBLE | MI_INT64 | MI_UINT64 => 8,
        _ => return None,
    })
}

/// Decode the data of a numeric sub-element as f64, whatever its stored type.
fn decode_numbers(
    buf: &[u8],
    el: &Element,
    e: Endian,
    base: usize,
    field: &str,
) -> Result<Vec<f64>, ParseError> {
    let data = &buf[el.data_start..el.data_end];
    let size = type_size(el.ty).ok_or_else(|| {
        ParseError::new(
            base + el.data_start,
            field,
            "a numeric data type",
            format!("type {}", el.ty),
        )
    })?;
    if !data.len().is_multiple_of(size) {
        return Err(ParseError::new(
            base + el.data_start,
            field,
            format!("a multiple of {size} bytes"),
            format!("{} bytes", data.len()),
        ));
    }
    use crate::formats::dtype::{decode_numbers, Number};
    let n = match el.ty {
        MI_INT8 => Number::I8,
        MI_UINT8 | MI_UTF8 => Number::U8,
        MI_INT16 => Number::I16,
        MI_UINT16 | MI_UTF16 => Number::U16,
        MI_INT32 => Number::I32,
        MI_UINT32 | MI_UTF32 => Number::U32,
        MI_SINGLE => Number::F32,
        MI_DOUBLE => Number::F64,
        MI_INT64 => Number::I64,
        MI_UINT64 => Number::U64,
        _ => unreachable!("type_size checked the type"),
    };
    Ok(decode_numbers(data, n, e.little))
}

fn parse_matrix(
    buf: &[u8],
    el: &Element,
    e: Endian,
    base: usize,
    depth: usize,
    // `buf` itself, shared, where its doubles may stay in place (never an inflated buffer).
    shared: Option<&crate::mapped::Bytes>,
) -> Result<(String, MatValue), ParseError> {
    if depth > MAX_DEPTH {
        return Err(ParseError::new(
            base + el.data_start,
            "matrix",
            format!("nesting of at most {MAX_DEPTH} levels"),
            "deeper nesting",
        ));
    }
    if el.data_start == el.data_end {
        return Ok((String::new(), MatValue::Empty));
    }
    let sub = &buf[..el.data_end];
    let at = |p: usize| base + p;

    // Array flags.
    let flags_el = read_tag(sub, el.data_start, e, base)?;
    if flags_el.ty != MI_UINT32 || flags_el.data_end - flags_el.data_start < 4 {
        return Err(ParseError::new(
            at(el.data_start),
            "array flags",
            "a uint32 sub-element",
            format!("type {}", flags_el.ty),
        ));
    }
    let flags = e.u32(&sub[flags_el.data_start..flags_el.data_start + 4]);
    let class_code = (flags & 0xFF) as u8;
    let complex = flags & 0x0800 != 0;
    let logical = flags & 0x0200 != 0;
    let class = MatClass::from_code(class_code).ok_or_else(|| {
        ParseError::new(
            at(flags_el.data_start),
            "array class",
            "a class code 1-15",
            format!("{class_code}"),
        )
    })?;

    // Dimensions.
    let dims_el = read_tag(sub, flags_el.next, e, base)?;
    if dims_el.ty != MI_INT32 {
        return Err(ParseError::new(
            at(flags_el.next),
            "dimensions",
            "an int32 sub-element",
            format!("type {}", dims_el.ty),
        ));
    }
    let dims: Vec<usize> = decode_numbers(sub, &dims_el, e, base, "dimensions")?
        .into_iter()
        .map(|d| if d < 0.0 { usize::MAX } else { d as usize })
        .collect();
    if dims.len() < 2 || dims.contains(&usize::MAX) {
        return Err(ParseError::new(
            at(dims_el.data_start),
            "dimensions",
            "at least 2 non-negative sizes",
            format!("{dims:?}"),
        ));
    }
    let numel = dims
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| {
            ParseError::new(
                at(dims_el.data_start),
                "dimensions",
                "a product that fits in memory",
                format!("{dims:?}"),
            )
        })?;

    // Name.
    let name_el = read_tag(sub, dims_el.next, e, base)?;
    if name_el.ty != MI_INT8 && name_el.ty != MI_UINT8 && name_el.ty != MI_UTF8 {
        return Err(ParseError::new(
            at(dims_el.next),
            "array name",
            "an int8 sub-element",
            format!("type {}", name_el.ty),
        ));
    }
    let name = String::from_utf8_lossy(&sub[name_el.data_start..name_el.data_end]).to_string();
    let mut pos = name_el.next;

    let value = match class {
        MatClass::Cell => {
            // Every element needs at least an 8-byte tag: checked before allocating.
            check_count(
                numel,
                8,
                el.data_end.saturating_sub(pos),
                at(pos),
                "cell elements",
            )?;
            let mut items = Vec::with_capacity(numel);
            for _ in 0..numel {
                let item = read_tag(sub, pos, e, base)?;
                if item.ty != MI_MATRIX {
                    return Err(ParseError::new(
                        at(pos),
                        "cell element",
                        "a matrix element",
                        format!("type {}", item.ty),
                    ));
                }
                items.push(parse_matrix(sub, &item, e, base, depth + 1, shared)?.1);
                pos = item.next;
            }
            MatValue::Cell { dims, items }
        }
        MatClass::Struct | MatClass::Object => {
            if class == MatClass::Object {
                // Class name precedes the fields.
                pos = read_tag(sub, pos, e, base)?.next;
            }
            let len_el = read_tag(sub, pos, e, base)?;
            let name_len = decode_numbers(sub, &len_el, e, base, "field name length")?
                .first()
                .copied()
                .unwrap_or(0.0) as usize;
            let names_el = read_tag(sub, len_el.next, e, base)?;
            let raw = &sub[names_el.data_start..names_el.data_end];
            let fields: Vec<String> = if name_len == 0 {
                Vec::new()
            } else {
                raw.chunks(name_len)
                    .filter(|c| c.len() == name_len)
                    .map(|c| {
                        let end = c.iter().position(|&b| b == 0).unwrap_or(c.len());
                        String::from_utf8_lossy(&c[..end]).to_string()
                    })
                    .collect()
            };
            pos = names_el.next;
            let total = numel.saturating_mul(fields.len());
            check_count(
                total,
                8,
                el.data_end.saturating_sub(pos),
                at(pos),
                "struct field values",
            )?;
            let mut values = Vec::with_capacity(total);
            for _ in 0..total {
                let item = read_tag(sub, pos, e, base)?;
                if item.ty != MI_MATRIX {
                    return Err(ParseError::new(
                        at(pos),
                        "struct field value",
                        "a matrix element",
                        format!("type {}", item.ty),
                    ));
                }
                values.push(parse_matrix(sub, &item, e, base, depth + 1, shared)?.1);
                pos = item.next;
            }
            if class == MatClass::Object {
                MatValue::Unsupported { class, dims }
            } else {
                MatValue::Struct {
                    dims,
                    fields,
                    values,
                }
            }
        }
        MatClass::Char => {
            let data_el = read_tag(sub, pos, e, base)?;
            let units: Vec<u32> = match data_el.ty {
                MI_UTF8 | MI_UINT8 | MI_INT8 => {
                    let s = String::from_utf8_lossy(&sub[data_el.data_start..data_el.data_end])
                        .to_string();
                    s.chars().map(|c| c as u32).collect()
                }
                _ => decode_numbers(sub, &data_el, e, base, "char data")?
                    .into_iter()
                    .map(|v| v as u32)
                    .collect(),
            };
            let rows = dims[0].max(1);
            let cols = if units.is_empty() {
                0
            } else {
                units.len() / rows
            };
            let mut lines = Vec::with_capacity(rows);
            for r in 0..rows {
                let line: String = (0..cols)
                    .filter_map(|c| units.get(c * rows + r))
                    .map(|&u| char::from_u32(u).unwrap_or('\u{FFFD}'))
                    .collect();
                lines.push(line);
            }
            MatValue::Char {
                dims,
                text: lines.join("\n"),
            }
        }
        MatClass::Sparse => MatValue::Unsupported { class, dims },
        _ => {
            let real_el = read_tag(sub, pos, e, base)?;
            let n_doubles = (real_el.data_end - real_el.data_start) / 8;
            let view = match shared {
                Some(b) if real_el.ty == MI_DOUBLE && e.little && n_doubles == numel => {
                    crate::mapped::F64s::view(b, real_el.data_start, numel)
                }
                _ => None,
            };
            let real = match view {
                Some(v) => v,
                None => decode_numbers(sub, &real_el, e, base, "real part")?.into(),
            };
            if real.len() != numel {
                return Err(ParseError::new(
                    at(real_el.data_start),
                    format!("data of `{name}`"),
                    format!("{numel} values for dimensions {dims:?}"),
                    format!("{}", real.len()),
                ));
            }
            let imag = if complex {
                let imag_el = read_tag(sub, real_el.next, e, base)?;
                let imag = decode_numbers(sub, &imag_el, e, base, "imaginary part")?;
                if imag.len() != numel {
                    return Err(ParseError::new(
                        at(imag_el.data_start),
                        "imaginary part",
                        format!("{numel} values"),
                        format!("{}", imag.len()),
                    ));
                }
                Some(imag)
            } else {
                None
            };
            let class = if logical { MatClass::Logical } else { class };
            MatValue::Numeric(NumericArray {
                class,
                dims,
                real,
                imag,
            })
        }
    };
    Ok((name, value))
}

fn check_count(
    count: usize,
    min_bytes_each: usize,
    available: usize,
    at: usize,
    what: &str,
) -> Result<(), ParseError> {
    if count.saturating_mul(min_bytes_each) > available {
        return Err(ParseError::new(
            at,
            what,
            format!(
                "{count} elements (at least {} bytes)",
                count.saturating_mul(min_bytes_each)
            ),
            format!("{available} bytes left"),
        ));
    }
    Ok(())
}

/// Write variables as a MAT v5 file (the format `scipy.io.loadmat` and MATLAB read): doubles,
/// logicals as doubles, char (UTF-16), cell and struct arrays; each variable zlib-compressed
/// when `compress` (as MATLAB's `-v7`).
pub fn write(vars: &[(&str, &MatValue)], compress: bool) -> Vec<u8> {
    let mut out = Vec::new();
    let mut text = b"MATLAB 5.0 MAT-file, written by cardiaffect".to_vec();
    text.resize(116, b' ');
    out.extend_from_slice(&text);
    out.extend_from_slice(&[0u8; 8]);
    out.extend_from_slice(&0x0100u16.to_le_bytes());
    out.extend_from_slice(b"IM");
    for (name, value) in vars {
        let el = matrix_element(name, value);
        if compress {
            use std::io::Write;
            let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
            // Writing to a Vec cannot fail.
            let _ = z.write_all(&el);
            let data = z.finish().unwrap_or_default();
            out.extend_from_slice(&MI_COMPRESSED.to_le_bytes());
            out.extend_from_slice(&(data.len() as u32).to_le_bytes());
            out.extend_from_slice(&data);
        } else {
            out.extend_from_slice(&el);
        }
    }
    out
}

fn tagged(ty: u32, data: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(8 + data.len() + 7);
    v.extend_from_slice(&ty.to_le_bytes());
    v.extend_from_slice(&(data.len() as u32).to_le_bytes());
    v.extend_from_slice(data);
    while v.len() % 8 != 0 {
        v.push(0);
    }
    v
}

fn matrix_element(name: &str, value: &MatValue) -> Vec<u8> {
    let (class, dims): (u8, Vec<usize>) = match value {
        MatValue::Numeric(a) => (6, a.dims.clone()),
        MatValue::Char { dims, .. } => (4, dims.clone()),
        MatValue::Cell { dims, .. } => (1, dims.clone()),
        MatValue::Struct { dims, .. } => (2, dims.clone()),
        MatValue::Unsupported { .. } | MatValue::Empty => (6, vec![0, 0]),
    };
    let mut body = tagged(MI_UINT32, &[class, 0, 0, 0, 0, 0, 0, 0]);
    let dims_b: Vec<u8> = dims
        .iter()
        .flat_map(|d| (*d as i32).to_le_bytes())
        .collect();
    body.extend(tagged(MI_INT32, &dims_b));
    body.extend(tagged(MI_INT8, name.as_bytes()));
    match value {
        MatValue::Numeric(a) => {
            let d: Vec<u8> = a.real.iter().flat_map(|v| v.to_le_bytes()).collect();
            body.extend(tagged(MI_DOUBLE, &d));
        }
        MatValue::Char { text, .. } => {
            let d: Vec<u8> = text.encode_utf16().flat_map(|u| u.to_le_bytes()).collect();
            body.extend(tagged(MI_UINT16, &d));
        }
        MatValue::Cell { items, .. } => {
            for it in items {
                body.extend(matrix_element("", it));
            }
        }
        MatValue::Struct { fields, values, .. } => {
            body.extend(tagged(MI_INT32, &32i32.to_le_bytes()));
            let mut names = Vec::with_capacity(32 * fields.len());
            for f in fields {
                let mut b = f.as_bytes()[..f.len().min(31)].to_vec();
                b.resize(32, 0);
                names.extend(b);
            }
            body.extend(tagged(MI_INT8, &names));
            for v in values {
                body.extend(matrix_element("", v));
            }
        }
        MatValue::Unsupported { .. } | MatValue::Empty => body.extend(tagged(MI_DOUBLE, &[])),
    }
    tagged(MI_MATRIX, &body)
}

/// A real double matrix from row-major rows (stored column-major, as MATLAB does).
pub fn matrix_from_rows(rows: usize, cols: usize, row_major: &[f64]) -> MatValue {
    let mut real = vec![0.0; rows * cols];
    for r in 0..rows {
        for c in 0..cols {
            real[c * rows + r] = row_major[r * cols + c];
        }
    }
    MatValue::Numeric(NumericArray {
        class: MatClass::Double,
        dims: vec![rows, cols],
        real: real.into(),
        imag: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal writer used only to build test inputs, little-endian, uncompressed.
    fn tag(ty: u32, data: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&ty.to_le_bytes());
        v.extend_from_slice(&(data.len() as u32).to_le_bytes());
        v.extend_from_slice(data);
        while v.len() % 8 != 0 {
            v.push(0);
        }
        v
    }

    fn matrix(class: u8, dims: &[i32], name: &str, body: &[u8]) -> Vec<u8> {
        let mut d = Vec::new();
        d.extend(tag(MI_UINT32, &[class, 0, 0, 0, 0, 0, 0, 0]));
        let dims_b: Vec<u8> = dims.iter().flat_map(|x| x.to_le_bytes()).collect();
        d.extend(tag(MI_INT32, &dims_b));
        d.extend(tag(MI_INT8, name.as_bytes()));
        d.extend_from_slice(body);
        tag(MI_MATRIX, &d)
    }

    fn file(elements: &[Vec<u8>]) -> Vec<u8> {
        let mut h = vec![b' '; 128];
        h[..6].copy_from_slice(b"MATLAB");
        h[124..126].copy_from_slice(&0x0100u16.to_le_bytes());
        h[126..128].copy_from_slice(b"IM");
        for e in elements {
            h.extend_from_slice(e);
        }
        h
    }

    #[test]
    fn reads_double_matrix_stored_as_int16() {
        // MATLAB stores doubles in the smallest type that holds them.
        let data: Vec<u8> = [1i16, -2, 3, 4, 5, 6]
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect();
        let f = file(&[matrix(6, &[2, 3], "x", &tag(MI_INT16, &data))]);
        let m = parse(&f).unwrap();
        let a = m.get("x").unwrap().as_numeric().unwrap();
        assert_eq!(a.dims, vec![2, 3]);
        assert_eq!(a.column(1).unwrap(), &[3.0, 4.0]);
        assert_eq!(a.at(1, 0), Some(-2.0));
    }

    #[test]
    fn truncated_file_is_an_error_not_a_panic() {
        let data: Vec<u8> = [1.0f64, 2.0].iter().flat_map(|x| x.to_le_bytes()).collect();
        let f = file(&[matrix(6, &[1, 2], "x", &tag(MI_DOUBLE, &data))]);
        for cut in 0..f.len() {
            let _ = parse(&f[..cut]);
        }
        let err = parse(&f[..f.len() - 9]).unwrap_err();
        assert!(err.expected.contains("bytes"), "{err}");
    }

    #[test]
    fn huge_cell_dimensions_are_refused_before_allocation() {
        let f = file(&[matrix(1, &[100_000, 100_000], "c", &[])]);
        let err = parse(&f).unwrap_err();
        assert_eq!(err.field, "cell elements");
    }

    #[test]
    fn element_count_must_match_dimensions() {
        let data: Vec<u8> = [1.0f64, 2.0].iter().flat_map(|x| x.to_le_bytes()).collect();
        let f = file(&[matrix(6, &[3, 3], "x", &tag(MI_DOUBLE, &data))]);
        let err = parse(&f).unwrap_err();
        assert!(err.expected.contains("9 values"), "{err}");
    }

    #[test]
    fn variable_names_are_read_without_the_values() {
        let m = matrix_from_rows(2, 3, &[1., 2., 3., 4., 5., 6.]);
        for compress in [false, true] {
            let bytes = write(&[("joined_data", &m), ("labels", &m)], compress);
            assert_eq!(variable_names(&bytes).unwrap(), ["joined_data", "labels"]);
            assert_eq!(parse(&bytes).unwrap().names(), ["joined_data", "labels"]);
            // A truncated file is an error for both (the last element's size says so).
            let cut = &bytes[..bytes.len() - 8];
            assert!(variable_names(cut).is_err() && parse(cut).is_err());
        }
        // Uncompressed doubles read with parse_shared stay in the file, equal to parse's.
        let bytes = write(&[("x", &m)], false);
        let shared: crate::mapped::Bytes = std::sync::Arc::new(bytes.clone());
        let a = parse_shared(&shared).unwrap();
        let b = parse(&bytes).unwrap();
        let (MatValue::Numeric(x), MatValue::Numeric(y)) =
            (a.get("x").unwrap(), b.get("x").unwrap())
        else {
            panic!("not numeric")
        };
        assert!(x.real.is_view() && !y.real.is_view());
        assert_eq!(x, y);
    }

    #[test]
    fn written_files_read_back() {
        let m = matrix_from_rows(2, 3, &[1., 2., 3., 4., 5., 6.]);
        let cell = MatValue::Cell {
            dims: vec![1, 2],
            items: vec![
                m.clone(),
                MatValue::Char {
                    dims: vec![1, 2],
                    text: "V1".into(),
                },
            ],
        };
        let st = MatValue::Struct {
            dims: vec![1, 1],
            fields: vec!["a".into(), "b".into()],
            values: vec![m.clone(), cell.clone()],
        };
        for compress in [false, true] {
            let bytes = write(&[("m", &m), ("c", &cell), ("s", &st)], compress);
            let f = parse(&bytes).unwrap();
            assert_eq!(f.get("m"), Some(&m));
            assert_eq!(f.get("c"), Some(&cell));
            assert_eq!(f.get("s").unwrap().field("b"), Some(&cell));
            assert_eq!(
                f.get("m").unwrap().as_numeric().unwrap().at(1, 0),
                Some(4.0)
            );
        }
    }

    #[test]
    fn v73_hdf5_is_refused_with_a_hint() {
        let mut f = file(&[]);
        f[124..126].copy_from_slice(&0x0200u16.to_le_bytes());
        let err = parse(&f).unwrap_err();
        assert!(err.expected.contains("-v7"), "{err}");
    }
}
