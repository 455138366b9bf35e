//! A Python pickle reader that rebuilds numpy arrays, for WESAD's `S#.pkl`.
//!
//! It is a small pickle virtual machine (protocols 0-5) that never runs code: the only
//! callables it understands are the ones numpy's and Python's own pickles use for data —
//! `numpy.core.multiarray._reconstruct` (and numpy 2's `numpy._core.multiarray`),
//! `numpy.dtype`, `numpy.core.multiarray.scalar`, `_codecs.encode` (how Python 3 writes bytes in
//! protocol 2), `collections.OrderedDict` and the builtin containers. Anything else becomes an
//! opaque [`Obj::Instance`].
//!
//! Objects live in an arena and the stack holds indices, so an object that the pickle stores in
//! its memo and mutates later (the usual way dicts and lists are built) is the same object
//! wherever it is referenced. Array payloads are kept as byte ranges of the input and decoded
//! only when asked for.
//!
//! Reference: Python's `Lib/pickle.py` and `Lib/pickletools.py` (opcode semantics); numpy's
//! `ndarray.__reduce__` / `__setstate__` (array state tuple).

use std::collections::HashMap;

use crate::error::ParseError;
pub use crate::formats::dtype::{decode, fortran_to_c, Dtype};

pub type Id = usize;

/// A numpy array as pickled: shape, dtype, and where its bytes are.
#[derive(Debug, Clone, PartialEq)]
pub struct NdArray {
    pub shape: Vec<usize>,
    pub dtype: Option<Dtype>,
    pub fortran_order: bool,
    /// The object holding the raw bytes (Bytes or BytesRef), once BUILD has run.
    pub data: Option<Id>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Obj {
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    /// Bytes copied or computed (e.g. from `_codecs.encode`).
    Bytes(Vec<u8>),
    /// Bytes that are a range of the input, not copied.
    BytesRef(usize, usize),
    List(Vec<Id>),
    Tuple(Vec<Id>),
    Dict(Vec<(Id, Id)>),
    Set(Vec<Id>),
    Global(String, String),
    NdArray(NdArray),
    Dtype(Dtype),
    /// Anything else: the callable and its arguments, and its state once BUILD ran.
    Instance {
        class: Id,
        args: Id,
        state: Option<Id>,
    },
    Mark,
}

/// A whole unpickled object graph.
#[derive(Debug)]
pub struct Pickle<'a> {
    input: &'a [u8],
    arena: Vec<Obj>,
    root: Id,
}

/// A reference to one object of a [`Pickle`].
#[derive(Clone, Copy)]
pub struct PyRef<'p, 'a> {
    pickle: &'p Pickle<'a>,
    pub id: Id,
}

impl<'a> Pickle<'a> {
    pub fn root(&self) -> PyRef<'_, 'a> {
        PyRef {
            pickle: self,
            id: self.root,
        }
    }

    fn obj(&self, id: Id) -> &Obj {
        &self.arena[id]
    }

    fn bytes_of(&self, id: Id) -> Option<&[u8]> {
        match self.obj(id) {
            Obj::Bytes(b) => Some(b),
            Obj::BytesRef(s, l) => self.input.get(*s..*s + *l),
            _ => None,
        }
    }
}

impl<'p, 'a> PyRef<'p, 'a> {
    pub fn obj(&self) -> &'p Obj {
        self.pickle.obj(self.id)
    }

    fn at(&self, id: Id) -> PyRef<'p, 'a> {
        PyRef {
            pickle: self.pickle,
            id,
        }
    }

    /// The text of a str, or of a bytes object (Python 2 `str` keys arrive as bytes).
    pub fn as_str(&self) -> Option<String> {
        match self.obj() {
            Obj::Str(s) => Some(s.clone()),
            _ => self
                .pickle
                .bytes_of(self.id)
                .map(|b| b.iter().map(|&c| c as char).collect()),
        }
    }

    pub fn as_f64(&self) -> Option<f64> {
        match self.obj() {
            Obj::Int(i) => Some(*i as f64),
            Obj::Float(f) => Some(*f),
            Obj::Bool(b) => Some(*b as u8 as f64),
            _ => None,
        }
    }

    /// Items of a dict, in insertion order.
    pub fn items(&self) -> Vec<(PyRef<'p, 'a>, PyRef<'p, 'a>)> {
        match self.obj() {
            Obj::Dict(items) => items
                .iter()
                .map(|&(k, v)| (self.at(k), self.at(v)))
                .collect(),
            _ => Vec::new(),
        }
    }

    /// Value of a dict for a string key (matching str or bytes keys).
    pub fn get(&self, key: &str) -> Option<PyRef<'p, 'a>> {
        self.items()
            .into_iter()
            .find(|(k, _)| k.as_str().as_deref() == Some(key))
            .map(|(_, v)| v)
    }

    pub fn keys(&self) -> Vec<String> {
        self.items()
            .iter()
            .filter_map(|(k, _)| k.as_str())
            .collect()
    }

    pub fn is_dict(&self) -> bool {
        matches!(self.obj(), Obj::Dict(_))
    }

    pub fn as_ndarray(&self) -> Option<&'p NdArray> {
        match self.obj() {
            Obj::NdArray(a) => Some(a),
            _ => None,
        }
    }

    /// Short description for error messages.
    pub fn describe(&self) -> String {
        match self.obj() {
            Obj::None => "None".into(),
            Obj::Bool(_) => "bool".into(),
            Obj::Int(_) => "int".into(),
            Obj::Float(_) => "float".into(),
            Obj::Str(s) => format!("str {s:?}"),
            Obj::Bytes(_) | Obj::BytesRef(..) => "bytes".into(),
            Obj::List(v) => format!("list of {}", v.len()),
            Obj::Tuple(v) => format!("tuple of {}", v.len()),
            Obj::Dict(v) => format!(
                "dict with keys {:?}",
                self.keys()
                    .into_iter()
                    .take(v.len().min(12))
                    .collect::<Vec<_>>()
            ),
            Obj::Set(_) => "set".into(),
            Obj::Global(m, n) => format!("{m}.{n}"),
            Obj::NdArray(a) => format!(
                "numpy array {:?} of {}",
                a.shape,
                a.dtype
                    .as_ref()
                    .map(|d| format!("{}{}", d.kind, d.size))
                    .unwrap_or("?".into())
            ),
            Obj::Dtype(d) => format!("dtype {}{}", d.kind, d.size),
            Obj::Instance { class, .. } => format!("instance of {}", self.at(*class).describe()),
            Obj::Mark => "mark".into(),
        }
    }

    /// Decode a numeric array to f64, in C (row-major) order whatever its memory order.
    pub fn array_f64(&self) -> Result<(Vec<usize>, Vec<f64>), String> {
        let a = self
            .as_ndarray()
            .ok_or_else(|| format!("a numpy array, found {}", self.describe()))?;
        let dtype = a
            .dtype
            .as_ref()
            .ok_or("a numpy array with a dtype, found none")?;
        let data_id = a
            .data
            .ok_or("a numpy array with data, found an unbuilt array")?;
        let raw = self.pickle.bytes_of(data_id).ok_or_else(|| {
            format!(
                "array data as bytes, found {} (object arrays are not numeric)",
                self.at(data_id).describe()
            )
        })?;
        let n: usize = a
            .shape
            .iter()
            .try_fold(1usize, |acc, &d| acc.checked_mul(d))
            .ok_or("an array shape whose size fits in memory")?;
        let need = n
            .checked_mul(dtype.size)
            .ok_or("an array size that fits in memory")?;
        if raw.len() != need {
            return Err(format!(
                "{need} bytes for shape {:?} of {}{}, found {}",
                a.shape,
                dtype.kind,
                dtype.size,
                raw.len()
            ));
        }
        let values = decode(raw, dtype)?;
        if a.fortran_order && a.shape.len() > 1 {
            Ok((a.shape.clone(), fortran_to_c(&values, &a.shape)))
        } else {
            Ok((a.shape.clone(), values))
        }
    }
}

struct Vm<'a> {
    input: &'a [u8],
    pos: usize,
    arena: Vec<Obj>,
    stack: Vec<Id>,
    marks: Vec<usize>,
    memo: HashMap<u64, Id>,
}

/// Unpickle `input`. Never executes code; unknown callables become opaque instances.
pub fn parse(input: &[u8]) -> Result<Pickle<'_>, ParseError> {
    let mut vm = Vm {
        input,
        pos: 0,
        arena: Vec::new(),
        stack: Vec::new(),
        marks: Vec::new(),
        memo: HashMap::new(),
    };
    let root = vm.run()?;
    Ok(Pickle {
        input,
        arena: vm.arena,
        root,
    })
}

impl<'a> Vm<'a> {
    fn err(
        &self,
        field: &str,
        expected: impl Into<String>,
        found: impl Into<String>,
    ) -> ParseError {
        ParseError::new(self.pos, field, expected, found)
    }

    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], ParseError> {
        let left = self.input.len() - self.pos;
        if n > left {
            return Err(self.err(
                what,
                format!("{n} bytes"),
                format!("{left} bytes left: the pickle is truncated"),
            ));
        }
        let s = &self.input[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn u8(&mut self) -> Result<u8, ParseError> {
        Ok(self.take(1, "opcode argument")?[0])
    }
    fn u16(&mut self) -> Result<u16, ParseError> {
        let b = self.take(2, "opcode argument")?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Result<u32, ParseError> {
        let b = self.take(4, "opcode argument")?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u64(&mut self) -> Result<u64, ParseError> {
        let b = self.take(8, "opcode argument")?;
        Ok(u64::from_le_bytes(b.try_into().unwrap_or([0; 8])))
    }
    fn line(&mut self) -> Result<&'a [u8], ParseError> {
        let rest = &self.input[self.pos..];
        let end = rest.iter().position(|&b| b == b'\n').ok_or_else(|| {
            self.err("text argument", "a newline-terminated line", "end of input")
        })?;
        self.pos += end + 1;
        Ok(&rest[..end])
    }

    fn alloc(&mut self, o: Obj) -> Id {
        self.arena.push(o);
        self.arena.len() - 1
    }
    fn push(&mut self, o: Obj) {
        let id = self.alloc(o);
        self.stack.push(id);
    }
    fn pop(&mut self) -> Result<Id, ParseError> {
        // Popping below the innermost mark is an error in Python too.
        let floor = self.marks.last().copied().unwrap_or(0);
        if self.stack.len() <= floor {
            return Err(self.err("stack", "an object to pop", "an empty stack"));
        }
        Ok(self.stack.pop().unwrap_or_default())
    }
    fn top(&self) -> Result<Id, ParseError> {
        self.stack
            .last()
            .copied()
            .ok_or_else(|| self.err("stack", "an object", "an empty stack"))
    }
    fn pop_mark(&mut self) -> Result<Vec<Id>, ParseError> {
        let m = self
            .marks
            .pop()
            .ok_or_else(|| self.err("stack", "a MARK", "no mark"))?;
        Ok(self.stack.split_off(m.min(self.stack.len())))
    }
    fn bytes_ref(&mut self, n: usize) -> Result<Obj, ParseError> {
        let start = self.pos;
        self.take(n, "bytes payload")?;
        Ok(Obj::BytesRef(start, n))
    }
    fn text(&mut self, n: usize) -> Result<Obj, ParseError> {
        let b = self.take(n, "string payload")?;
        Ok(Obj::Str(String::from_utf8_lossy(b).into_owned()))
    }
    fn len_arg(&mut self, v: u64) -> Result<usize, ParseError> {
        usize::try_from(v)
            .map_err(|_| self.err("length", "a length that fits in memory", v.to_string()))
    }

    fn int_of(&self, id: Id) -> Option<i64> {
        match &self.arena[id] {
            Obj::Int(i) => Some(*i),
            Obj::Bool(b) => Some(*b as i64),
            _ => None,
        }
    }

    fn str_of(&self, id: Id) -> Option<String> {
        match &self.arena[id] {
            Obj::Str(s) => Some(s.clone()),
            Obj::Bytes(b) => Some(b.iter().map(|&c| c as char).collect()),
            Obj::BytesRef(s, l) => {
                Some(self.input[*s..*s + *l].iter().map(|&c| c as char).collect())
            }
            _ => None,
        }
    }

    fn tuple_items(&self, id: Id) -> Vec<Id> {
        match &self.arena[id] {
            Obj::Tuple(v) | Obj::List(v) => v.clone(),
            _ => Vec::new(),
        }
    }

    fn run(&mut self) -> Result<Id, ParseError> {
        loop {
            let op_at = self.pos;
            let op = self.u8().map_err(|_| {
                ParseError::new(
                    op_at,
                    "opcode",
                    "a STOP opcode ('.') before the end",
                    "end of input",
                )
            })?;
            match op {
                0x80 => {
                    let proto = self.u8()?;
                    if proto > 5 {
                        return Err(self.err("protocol", "0 to 5", proto.to_string()));
                    }
                }
                0x95 => {
                    self.u64()?; // FRAME: a length hint only
                }
                b'.' => return self.pop(),
                b'(' => self.marks.push(self.stack.len()),
                b'0' => {
                    self.pop()?;
                }
                b'1' => {
                    self.pop_mark()?;
                }
                b'2' => {
                    let t = self.top()?;
                    self.stack.push(t);
                }
                b'N' => self.push(Obj::None),
                0x88 => self.push(Obj::Bool(true)),
                0x89 => self.push(Obj::Bool(false)),
                b'J' => {
                    let v = self.u32()? as i32 as i64;
                    self.push(Obj::Int(v))
                }
                b'K' => {
                    let v = self.u8()? as i64;
                    self.push(Obj::Int(v))
                }
                b'M' => {
                    let v = self.u16()? as i64;
                    self.push(Obj::Int(v))
                }
                b'I' => {
                    let l = self.line()?;
                    let s = String::from_utf8_lossy(l);
                    let o = match s.trim() {
                        "01" => Obj::Bool(true),
                        "00" => Obj::Bool(false),
                        t => Obj::Int(
                            t.parse()
                                .map_err(|_| self.err("INT", "a decimal integer", t))?,
                        ),
                    };
                    self.push(o)
                }
                b'L' => {
                    let l = self.line()?;
                    let s = String::from_utf8_lossy(l);
                    let t = s.trim().trim_end_matches('L');
                    let o = match t.parse::<i64>() {
                        Ok(v) => Obj::Int(v),
                        Err(_) => Obj::Float(
                            t.parse()
                                .map_err(|_| self.err("LONG", "a decimal integer", t))?,
                        ),
                    };
                    self.push(o)
                }
                0x8a | 0x8b => {
                    let n = if op == 0x8a {
                        self.u8()? as usize
                    } else {
                        self.u32()? as usize
                    };
                    let b = self.take(n, "long payload")?;
                    let o = long_from_le(b);
                    self.push(o)
                }
                b'F' => {
                    let l = self.line()?;
                    let s = String::from_utf8_lossy(l);
                    let v = s
                        .trim()
                        .parse()
                        .map_err(|_| self.err("FLOAT", "a decimal number", s.trim()))?;
                    self.push(Obj::Float(v))
                }
                b'G' => {
                    let b = self.take(8, "BINFLOAT")?;
                    self.push(Obj::Float(f64::from_be_bytes(
                        b.try_into().unwrap_or([0; 8]),
                    )))
                }
                // Byte strings: Python 2 `str` (BINSTRING), Python 3 bytes and bytearray.
                b'U' | b'C' => {
                    let n = self.u8()? as usize;
                    let o = self.bytes_ref(n)?;
                    self.push(o)
                }
                b'T' | b'B' => {
                    let n = self.u32()? as usize;
                    let o = self.bytes_ref(n)?;
                    self.push(o)
                }
                0x8e | 0x96 => {
                    let v = self.u64()?;
                    let n = self.len_arg(v)?;
                    let o = self.bytes_ref(n)?;
                    self.push(o)
                }
                b'S' => {
                    let l = self.line()?;
                    let b = unquote_repr(l).ok_or_else(|| {
                        self.err("STRING", "a quoted string", String::from_utf8_lossy(l))
                    })?;
                    self.push(Obj::Bytes(b))
                }
                b'V' => {
                    let l = self.line()?;
                    let s = raw_unicode_escape(l);
                    self.push(Obj::Str(s))
                }
                0x8c => {
                    let n = self.u8()? as usize;
                    let o = self.text(n)?;
                    self.push(o)
                }
                b'X' => {
                    let n = self.u32()? as usize;
                    let o = self.text(n)?;
                    self.push(o)
                }
                0x8d => {
                    let v = self.u64()?;
                    let n = self.len_arg(v)?;
                    let o = self.text(n)?;
                    self.push(o)
                }
                b')' => self.push(Obj::Tuple(Vec::new())),
                b']' => self.push(Obj::List(Vec::new())),
                b'}' => self.push(Obj::Dict(Vec::new())),
                0x8f => self.push(Obj::Set(Vec::new())),
                b't' => {
                    let items = self.pop_mark()?;
                    self.push(Obj::Tuple(items))
                }
                0x85..=0x87 => {
                    let n = (op - 0x84) as usize;
                    let mut items = Vec::with_capacity(n);
                    for _ in 0..n {
                        items.push(self.pop()?);
                    }
                    items.reverse();
                    self.push(Obj::Tuple(items))
                }
                b'l' => {
                    let items = self.pop_mark()?;
                    self.push(Obj::List(items))
                }
                b'd' => {
                    let items = self.pop_mark()?;
                    let pairs = items.chunks_exact(2).map(|c| (c[0], c[1])).collect();
                    self.push(Obj::Dict(pairs))
                }
                0x91 => {
                    let items = self.pop_mark()?;
                    self.push(Obj::Set(items))
                }
                b'a' => {
                    let v = self.pop()?;
                    let l = self.top()?;
                    self.extend(l, vec![v])?;
                }
                b'e' | 0x90 => {
                    let items = self.pop_mark()?;
                    let l = self.top()?;
                    self.extend(l, items)?;
                }
                b's' => {
                    let v = self.pop()?;
                    let k = self.pop()?;
                    let d = self.top()?;
                    self.set_items(d, vec![k, v])?;
                }
                b'u' => {
                    let items = self.pop_mark()?;
                    let d = self.top()?;
                    self.set_items(d, items)?;
                }
                b'p' => {
                    let l = self.line()?;
                    let k = String::from_utf8_lossy(l)
                        .trim()
                        .parse::<u64>()
                        .map_err(|_| self.err("PUT", "a memo index", String::from_utf8_lossy(l)))?;
                    let t = self.top()?;
                    self.memo.insert(k, t);
                }
                b'q' => {
                    let k = self.u8()? as u64;
                    let t = self.top()?;
                    self.memo.insert(k, t);
                }
                b'r' => {
                    let k = self.u32()? as u64;
                    let t = self.top()?;
                    self.memo.insert(k, t);
                }
                0x94 => {
                    let k = self.memo.len() as u64;
                    let t = self.top()?;
                    self.memo.insert(k, t);
                }
                b'g' | b'h' | b'j' => {
                    let k = match op {
                        b'g' => {
                            let l = self.line()?;
                            String::from_utf8_lossy(l)
                                .trim()
                                .parse::<u64>()
                                .map_err(|_| {
                                    self.err("GET", "a memo index", String::from_utf8_lossy(l))
                                })?
                        }
                        b'h' => self.u8()? as u64,
                        _ => self.u32()? as u64,
                    };
                    let id = *self.memo.get(&k).ok_or_else(|| {
                        self.err("memo", format!("an object stored at index {k}"), "nothing")
                    })?;
                    self.stack.push(id);
                }
                b'c' => {
                    let m = String::from_utf8_lossy(self.line()?).into_owned();
                    let n = String::from_utf8_lossy(self.line()?).into_owned();
                    self.push(Obj::Global(m, n))
                }
                0x93 => {
                    let n = self.pop()?;
                    let m = self.pop()?;
                    let (m, n) = (
                        self.str_of(m).unwrap_or_default(),
                        self.str_of(n).unwrap_or_default(),
                    );
                    self.push(Obj::Global(m, n))
                }
                b'R' => {
                    let args = self.pop()?;
                    let callable = self.pop()?;
                    let o = self.call(callable, args)?;
                    self.push(o)
                }
                0x81 => {
                    let args = self.pop()?;
                    let cls = self.pop()?;
                    let o = self.call(cls, args)?;
                    self.push(o)
                }
                0x92 => {
                    let _kwargs = self.pop()?;
                    let args = self.pop()?;
                    let cls = self.pop()?;
                    let o = self.call(cls, args)?;
                    self.push(o)
                }
                b'b' => {
                    let state = self.pop()?;
                    let target = self.top()?;
                    self.build(target, state)?;
                }
                b'o' => {
                    let mut items = self.pop_mark()?;
                    if items.is_empty() {
                        return Err(self.err("OBJ", "a class after MARK", "nothing"));
                    }
                    let cls = items.remove(0);
                    let args = self.alloc(Obj::Tuple(items));
                    let o = self.call(cls, args)?;
                    self.push(o)
                }
                b'i' => {
                    let m = String::from_utf8_lossy(self.line()?).into_owned();
                    let n = String::from_utf8_lossy(self.line()?).into_owned();
                    let items = self.pop_mark()?;
                    let cls = self.alloc(Obj::Global(m, n));
                    let args = self.alloc(Obj::Tuple(items));
                    let o = self.call(cls, args)?;
                    self.push(o)
                }
                0x98 => {} // READONLY_BUFFER: no-op for a reader
                b'P' | b'Q' | 0x82..=0x84 | 0x97 => {
                    return Err(ParseError::new(op_at, "opcode", "a self-contained pickle", format!("opcode 0x{op:02x} (persistent id, extension registry or out-of-band buffer)")));
                }
                _ => {
                    return Err(ParseError::new(
                        op_at,
                        "opcode",
                        "a pickle opcode",
                        format!("byte 0x{op:02x}"),
                    ));
                }
            }
        }
    }

    fn extend(&mut self, list: Id, items: Vec<Id>) -> Result<(), ParseError> {
        match &mut self.arena[list] {
            Obj::List(v) | Obj::Set(v) => {
                v.extend(items);
                Ok(())
            }
            // list subclasses and the like: append into their state-less instance is ignored.
            Obj::Instance { .. } => Ok(()),
            _ => Err(self.err("APPEND", "a list on the stack", "another object")),
        }
    }

    fn set_items(&mut self, dict: Id, items: Vec<Id>) -> Result<(), ParseError> {
        let pairs: Vec<(Id, Id)> = items.chunks_exact(2).map(|c| (c[0], c[1])).collect();
        match &mut self.arena[dict] {
            Obj::Dict(v) => {
                v.extend(pairs);
                Ok(())
            }
            Obj::Instance { .. } => Ok(()),
            _ => Err(self.err("SETITEM", "a dict on the stack", "another object")),
        }
    }

    /// The callables data pickles use; everything else becomes an opaque instance.
    fn call(&mut self, callable: Id, args: Id) -> Result<Obj, ParseError> {
        let (module, name) = match &self.arena[callable] {
            Obj::Global(m, n) => (m.clone(), n.clone()),
            _ => {
                return Ok(Obj::Instance {
                    class: callable,
                    args,
                    state: None,
                })
            }
        };
        let a = self.tuple_items(args);
        let numpy_mod = matches!(
            module.as_str(),
            "numpy.core.multiarray" | "numpy._core.multiarray" | "numpy"
        );
        Ok(match (module.as_str(), name.as_str()) {
            (_, "_reconstruct") if numpy_mod => Obj::NdArray(NdArray {
                shape: Vec::new(),
                dtype: None,
                fortran_order: false,
                data: None,
            }),
            ("numpy", "dtype")
            | ("numpy.core.multiarray", "dtype")
            | ("numpy._core.multiarray", "dtype") => {
                let s = a.first().and_then(|&i| self.str_of(i)).unwrap_or_default();
                match Dtype::from_descr(&s) {
                    Some(d) => Obj::Dtype(d),
                    None => Obj::Instance {
                        class: callable,
                        args,
                        state: None,
                    },
                }
            }
            (_, "scalar") if numpy_mod => {
                // numpy scalar: (dtype, bytes)
                let dt = a.first().and_then(|&i| match &self.arena[i] {
                    Obj::Dtype(d) => Some(d.clone()),
                    _ => None,
                });
                let raw = a.get(1).and_then(|&i| match &self.arena[i] {
                    Obj::Bytes(b) => Some(b.clone()),
                    Obj::BytesRef(s, l) => Some(self.input[*s..*s + *l].to_vec()),
                    _ => None,
                });
                match (dt, raw) {
                    (Some(d), Some(r)) => match decode(&r, &d) {
                        Ok(v) if v.len() == 1 => {
                            if d.kind == 'f' {
                                Obj::Float(v[0])
                            } else {
                                Obj::Int(v[0] as i64)
                            }
                        }
                        _ => Obj::Instance {
                            class: callable,
                            args,
                            state: None,
                        },
                    },
                    _ => Obj::Instance {
                        class: callable,
                        args,
                        state: None,
                    },
                }
            }
            ("_codecs", "encode") => {
                // Python 3's protocol-2 spelling of bytes: encode(str, 'latin1').
                let s = a.first().and_then(|&i| self.str_of(i)).unwrap_or_default();
                let mut out = Vec::with_capacity(s.len());
                for c in s.chars() {
                    let c = c as u32;
                    if c > 255 {
                        return Err(self.err(
                            "_codecs.encode",
                            "latin-1 text",
                            format!("code point {c}"),
                        ));
                    }
                    out.push(c as u8);
                }
                Obj::Bytes(out)
            }
            ("collections", "OrderedDict") | ("__builtin__", "dict") | ("builtins", "dict") => {
                let mut pairs = Vec::new();
                if let Some(&first) = a.first() {
                    for item in self.tuple_items(first) {
                        let kv = self.tuple_items(item);
                        if kv.len() == 2 {
                            pairs.push((kv[0], kv[1]));
                        }
                    }
                }
                Obj::Dict(pairs)
            }
            ("__builtin__" | "builtins", "set" | "frozenset" | "list" | "tuple") => {
                let items = a.first().map(|&i| self.tuple_items(i)).unwrap_or_default();
                match name.as_str() {
                    "list" => Obj::List(items),
                    "tuple" => Obj::Tuple(items),
                    _ => Obj::Set(items),
                }
            }
            ("__builtin__" | "builtins", "bytearray" | "bytes") => {
                let raw = a.first().map(|&i| self.arena[i].clone());
                match raw {
                    Some(o @ (Obj::Bytes(_) | Obj::BytesRef(..))) => o,
                    _ => Obj::Bytes(Vec::new()),
                }
            }
            _ => Obj::Instance {
                class: callable,
                args,
                state: None,
            },
        })
    }

    fn build(&mut self, target: Id, state: Id) -> Result<(), ParseError> {
        match self.arena[target].clone() {
            Obj::NdArray(_) => {
                let s = self.tuple_items(state);
                // numpy state: (version, shape, dtype, is_fortran, data) or without version.
                let s = if s.len() == 5 { &s[1..] } else { &s[..] };
                if s.len() != 4 {
                    return Err(self.err(
                        "ndarray state",
                        "a tuple (version, shape, dtype, fortran, data)",
                        format!("{} items", s.len()),
                    ));
                }
                let shape: Option<Vec<usize>> = self
                    .tuple_items(s[0])
                    .iter()
                    .map(|&i| self.int_of(i).and_then(|v| usize::try_from(v).ok()))
                    .collect();
                let shape = shape.ok_or_else(|| {
                    self.err(
                        "ndarray shape",
                        "a tuple of non-negative ints",
                        "something else",
                    )
                })?;
                let dtype = match &self.arena[s[1]] {
                    Obj::Dtype(d) => Some(d.clone()),
                    _ => None,
                };
                let fortran = self.int_of(s[2]).unwrap_or(0) != 0;
                let data = match &self.arena[s[3]] {
                    Obj::Str(text) => {
                        // A Python 2 str decoded as text: its code points are the bytes.
                        let b: Vec<u8> = text.chars().map(|c| c as u32 as u8).collect();
                        self.alloc(Obj::Bytes(b))
                    }
                    _ => s[3],
                };
                self.arena[target] = Obj::NdArray(NdArray {
                    shape,
                    dtype,
                    fortran_order: fortran,
                    data: Some(data),
                });
            }
            Obj::Dtype(mut d) => {
                let s = self.tuple_items(state);
                if let Some(order) = s.get(1).and_then(|&i| self.str_of(i)) {
                    if order == ">" {
                        d.little_endian = false;
                    } else if order == "<" {
                        d.little_endian = true;
                    }
                }
                self.arena[target] = Obj::Dtype(d);
            }
            Obj::Dict(_) => {
                if let Obj::Dict(pairs) = self.arena[state].clone() {
                    if let Obj::Dict(v) = &mut self.arena[target] {
                        v.extend(pairs);
                    }
                }
            }
            Obj::Instance { class, args, .. } => {
                self.arena[target] = Obj::Instance {
                    class,
                    args,
                    state: Some(state),
                };
            }
            _ => {}
        }
        Ok(())
    }
}

fn long_from_le(b: &[u8]) -> Obj {
    if b.is_empty() {
        return Obj::Int(0);
    }
    if b.len() <= 8 {
        let neg = b[b.len() - 1] & 0x80 != 0;
        let mut a = if neg { [0xFFu8; 8] } else { [0u8; 8] };
        a[..b.len()].copy_from_slice(b);
        return Obj::Int(i64::from_le_bytes(a));
    }
    // Larger than i64: keep its magnitude approximately.
    let neg = b[b.len() - 1] & 0x80 != 0;
    let mut v = 0f64;
    for &byte in b.iter().rev() {
        let byte = if neg { !byte } else { byte };
        v = v * 256.0 + byte as f64;
    }
    Obj::Float(if neg { -(v + 1.0) } else { v })
}

/// Undo Python 2 `repr()` of a str, as protocol 0's STRING opcode writes it.
fn unquote_repr(l: &[u8]) -> Option<Vec<u8>> {
    let l = l.strip_suffix(b"\r").unwrap_or(l);
    if l.len() < 2 || l[0] != l[l.len() - 1] || !(l[0] == b'\'' || l[0] == b'"') {
        return None;
    }
    let body = &l[1..l.len() - 1];
    let mut out = Vec::with_capacity(body.len());
    let mut i = 0;
    while i < body.len() {
        if body[i] == b'\\' && i + 1 < body.len() {
            i += 1;
            match body[i] {
                b'n' => out.push(b'\n'),
                b't' => out.push(b'\t'),
                b'r' => out.push(b'\r'),
                b'x' => {
                    let h = std::str::from_utf8(body.get(i + 1..i + 3)?).ok()?;
                    out.push(u8::from_str_radix(h, 16).ok()?);
                    i += 2;
                }
                c => out.push(c),
            }
        } else {
            out.push(body[i]);
        }
        i += 1;
    }
    Some(out)
}

fn raw_unicode_escape(l: &[u8]) -> String {
    let mut out = String::new();
    let mut i = 0;
    while i < l.len() {
        if l[i] == b'\\' && i + 1 < l.len() && (l[i + 1] == b'u' || l[i + 1] == b'U') {
            let n = if l[i + 1] == b'u' { 4 } else { 8 };
            if let Some(c) = l
                .get(i + 2..i + 2 + n)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u32::from_str_radix(h, 16).ok())
                .and_then(char::from_u32)
            {
                out.push(c);
                i += 2 + n;
                continue;
            }
        }
        out.push(l[i] as char);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memo_shared_dict_sees_later_items() {
        // }q\x00(X\x01\x00\x00\x00aK\x01u.  ==  {'a': 1} built after PUT
        let p = b"\x80\x02}q\x00(X\x01\x00\x00\x00aq\x01K\x01u.";
        let pk = parse(p).unwrap();
        assert_eq!(pk.root().get("a").unwrap().as_f64(), Some(1.0));
    }

    #[test]
    fn truncation_anywhere_is_an_error() {
        let p = b"\x80\x02}q\x00(X\x01\x00\x00\x00aq\x01K\x01u.";
        for cut in 0..p.len() {
            assert!(parse(&p[..cut]).is_err());
        }
    }

    #[test]
    fn huge_declared_length_is_refused_before_allocation() {
        let p = b"\x80\x04\x8e\xff\xff\xff\xff\xff\xff\xff\x7f.";
        let e = parse(p).unwrap_err();
        assert!(e.found.contains("truncated"), "{e}");
    }

    #[test]
    fn fortran_order_is_converted() {
        // 2x3 array [[1,2,3],[4,5,6]] stored column-major: 1,4,2,5,3,6
        let v = fortran_to_c(&[1., 4., 2., 5., 3., 6.], &[2, 3]);
        assert_eq!(v, vec![1., 2., 3., 4., 5., 6.]);
    }
}
