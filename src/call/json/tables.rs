//! The replies' JSON, written straight from their protobuf bytes.
//!
//! prost-reflect's way (decode into a `DynamicMessage`, then serialize it) builds a tree
//! of maps, strings and boxed values for every reply, and cost more than the rest of a
//! Hello call. [`Tables`] indexes the same descriptors once (per message: each field's
//! JSON key, kind and shape) and then walks a reply's bytes once, writing the same JSON:
//! lowerCamelCase names, 64-bit integers as strings, enums by name, bytes in base64, maps
//! as objects, `Any` with `@type`, `Timestamp` and `Duration` as strings, fields at their
//! default value left out.
//!
//! The same tables read requests ([`Tables::read`], in `read`): JSON straight into
//! protobuf, for the messages and kinds requests use; the rest falls back on
//! prost-reflect too.
//!
//! It covers what the server's own encoder writes. Anything else (a singular field seen
//! twice, fields out of order, a repeated field split in two, unknown fields, the other
//! well-known types) makes [`Tables::write`] return `None`, and the caller falls back on
//! prost-reflect: the same JSON, slower. A test holds the two to the same output.

mod read;

pub(crate) use read::Read;

use std::{collections::HashMap, io::Write as _};

use base64::Engine as _;
use prost::encoding::{WireType, decode_varint};
use prost_reflect::{DescriptorPool, Kind, MessageDescriptor};

/// Nesting deeper than the JSON limit is left to prost-reflect (which refuses it).
const MAX_DEPTH: u32 = super::MAX_DEPTH as u32;
/// Messages with larger field numbers are left to prost-reflect (the table is by number).
const MAX_FIELD: u32 = 1024;

/// The JSON facts of every message in a descriptor pool.
#[derive(Debug)]
pub(crate) struct Tables {
    messages: Vec<Message>,
    enums: Vec<Enum>,
    /// Message index by full name (for `Any`).
    by_name: HashMap<String, usize>,
}

#[derive(Debug)]
struct Message {
    form: Form,
    /// By field number.
    fields: Vec<Option<Field>>,
    /// Field numbers by JSON name and by proto name (both are read).
    by_name: HashMap<Box<str>, u32>,
}

/// How a message is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Form {
    Object,
    Any,
    Timestamp,
    Duration,
    /// A well-known type this tables leaves to prost-reflect.
    Other,
}

#[derive(Debug)]
struct Field {
    /// `"jsonName":`
    key: Box<[u8]>,
    /// The protobuf key of one value (field number and wire type), encoded.
    tag: Box<[u8]>,
    kind: FieldKind,
    shape: Shape,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    /// A singular field; `presence`: written even at its default value.
    Single {
        presence: bool,
    },
    List,
    Map,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FieldKind {
    Double,
    Float,
    Int32,
    Sint32,
    Uint32,
    Fixed32,
    Sfixed32,
    Int64,
    Sint64,
    Uint64,
    Fixed64,
    Sfixed64,
    Bool,
    String,
    Bytes,
    Enum(usize),
    Message(usize),
}

/// An enum's values, by number: each name quoted.
#[derive(Debug)]
struct Enum {
    values: Vec<(i32, Box<[u8]>)>,
    by_name: HashMap<Box<str>, i32>,
}

impl Tables {
    /// Indexes every message and enum of `pool`.
    pub(crate) fn new(pool: &DescriptorPool) -> Self {
        let by_name: HashMap<String, usize> = pool
            .all_messages()
            .enumerate()
            .map(|(i, m)| (m.full_name().to_owned(), i))
            .collect();
        let enum_index: HashMap<String, usize> = pool
            .all_enums()
            .enumerate()
            .map(|(i, e)| (e.full_name().to_owned(), i))
            .collect();
        let enums = pool
            .all_enums()
            .map(|e| {
                let mut values: Vec<(i32, Box<[u8]>)> = e
                    .values()
                    .map(|v| (v.number(), format!("\"{}\"", v.name()).into_bytes().into()))
                    .collect();
                values.sort_by_key(|(n, _)| *n);
                values.dedup_by_key(|(n, _)| *n);
                let by_name = e.values().map(|v| (v.name().into(), v.number())).collect();
                Enum { values, by_name }
            })
            .collect();
        let messages = pool
            .all_messages()
            .map(|m| Self::message_table(&m, &by_name, &enum_index))
            .collect();
        Tables {
            messages,
            enums,
            by_name,
        }
    }

    fn message_table(
        desc: &MessageDescriptor,
        messages: &HashMap<String, usize>,
        enums: &HashMap<String, usize>,
    ) -> Message {
        let form = match desc.full_name() {
            "google.protobuf.Any" => Form::Any,
            "google.protobuf.Timestamp" => Form::Timestamp,
            "google.protobuf.Duration" => Form::Duration,
            name if name.starts_with("google.protobuf.") => Form::Other,
            _ => Form::Object,
        };
        let mut fields: Vec<Option<Field>> = Vec::new();
        let mut by_name = HashMap::new();
        for field in desc.fields() {
            let kind = match field.kind() {
                Kind::Double => FieldKind::Double,
                Kind::Float => FieldKind::Float,
                Kind::Int32 => FieldKind::Int32,
                Kind::Sint32 => FieldKind::Sint32,
                Kind::Uint32 => FieldKind::Uint32,
                Kind::Fixed32 => FieldKind::Fixed32,
                Kind::Sfixed32 => FieldKind::Sfixed32,
                Kind::Int64 => FieldKind::Int64,
                Kind::Sint64 => FieldKind::Sint64,
                Kind::Uint64 => FieldKind::Uint64,
                Kind::Fixed64 => FieldKind::Fixed64,
                Kind::Sfixed64 => FieldKind::Sfixed64,
                Kind::Bool => FieldKind::Bool,
                Kind::String => FieldKind::String,
                Kind::Bytes => FieldKind::Bytes,
                Kind::Enum(e) => match enums.get(e.full_name()) {
                    Some(&i) => FieldKind::Enum(i),
                    None => return Message::other(),
                },
                Kind::Message(m) => match messages.get(m.full_name()) {
                    Some(&i) => FieldKind::Message(i),
                    None => return Message::other(),
                },
            };
            let shape = if field.is_map() {
                Shape::Map
            } else if field.is_list() {
                Shape::List
            } else {
                Shape::Single {
                    presence: field.supports_presence(),
                }
            };
            let number = field.number();
            if number > MAX_FIELD {
                return Message::other();
            }
            let number = number as usize;
            if fields.len() <= number {
                fields.resize_with(number + 1, || None);
            }
            by_name.insert(field.json_name().into(), number as u32);
            by_name.insert(field.name().into(), number as u32);
            let mut tag = Vec::new();
            prost::encoding::encode_key(number as u32, kind.wire(), &mut tag);
            fields[number] = Some(Field {
                key: format!("\"{}\":", field.json_name()).into_bytes().into(),
                tag: tag.into(),
                kind,
                shape,
            });
        }
        Message {
            form,
            fields,
            by_name,
        }
    }

    /// The index of the message `desc`, if indexed.
    pub(crate) fn index_of(&self, desc: &MessageDescriptor) -> Option<usize> {
        self.by_name.get(desc.full_name()).copied()
    }

    /// Appends the JSON of the protobuf message `bytes` (of the message at `index`) to
    /// `out`; `None` (with `out` in any state) when this tables does not cover it.
    pub(crate) fn write(&self, index: usize, bytes: &[u8], out: &mut Vec<u8>) -> Option<()> {
        self.message(index, bytes, out, 0)
    }

    /// One message: a well-known type's own form, or an object of its fields.
    fn message(&self, index: usize, bytes: &[u8], out: &mut Vec<u8>, depth: u32) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        match self.messages.get(index)?.form {
            Form::Object => {
                out.push(b'{');
                self.fields(index, bytes, out, true, depth)?;
                out.push(b'}');
                Some(())
            }
            Form::Any => self.any(bytes, out, depth),
            Form::Timestamp => timestamp(bytes, out),
            Form::Duration => duration(bytes, out),
            Form::Other => None,
        }
    }

    /// The fields of a message as `"name":value` pairs (after a comma unless `first`).
    fn fields(
        &self,
        index: usize,
        mut bytes: &[u8],
        out: &mut Vec<u8>,
        mut first: bool,
        depth: u32,
    ) -> Option<()> {
        let table = self.messages.get(index)?;
        // The field last seen, and the bracket that closes it if it is an open list or map.
        let mut last: Option<(u32, Option<u8>)> = None;
        while !bytes.is_empty() {
            let (number, wire) = key(&mut bytes)?;
            let value = field_bytes(&mut bytes, wire)?;
            let field = table.fields.get(number as usize)?.as_ref()?;
            let mut continuing = false;
            if let Some((previous, open)) = last {
                if previous > number {
                    return None;
                }
                if previous == number {
                    // Only a list or map goes on; prost-reflect merges a singular field
                    // seen twice.
                    open?;
                    out.push(b',');
                    continuing = true;
                } else if let Some(close) = open {
                    out.push(close);
                }
            }
            if !continuing {
                let skip = match field.shape {
                    Shape::Single { presence } => !presence && is_default(field.kind, value),
                    // An empty packed list writes nothing, as prost-reflect.
                    Shape::List | Shape::Map => {
                        wire == WireType::LengthDelimited
                            && value.is_empty()
                            && field.kind.packable()
                    }
                };
                if skip {
                    last = Some((number, None));
                    continue;
                }
                if !std::mem::take(&mut first) {
                    out.push(b',');
                }
                out.extend_from_slice(&field.key);
                let open = match field.shape {
                    Shape::Map => {
                        out.push(b'{');
                        Some(b'}')
                    }
                    Shape::List => {
                        out.push(b'[');
                        Some(b']')
                    }
                    Shape::Single { .. } => None,
                };
                last = Some((number, open));
            }
            match field.shape {
                Shape::Map => self.map_entry(field.kind, value, out, depth)?,
                Shape::List if wire == WireType::LengthDelimited && field.kind.packable() => {
                    self.packed(field.kind, value, out, depth)?
                }
                _ => self.single(field.kind, wire, value, out, depth)?,
            }
        }
        if let Some((_, Some(close))) = last {
            out.push(close);
        }
        Some(())
    }

    /// The elements of a packed repeated scalar field.
    fn packed(
        &self,
        kind: FieldKind,
        mut value: &[u8],
        out: &mut Vec<u8>,
        depth: u32,
    ) -> Option<()> {
        let wire = kind.wire();
        let mut first = true;
        while !value.is_empty() {
            if !std::mem::take(&mut first) {
                out.push(b',');
            }
            let element = field_bytes(&mut value, wire)?;
            self.single(kind, wire, element, out, depth)?;
        }
        Some(())
    }

    /// One value of kind `kind`.
    fn single(
        &self,
        kind: FieldKind,
        wire: WireType,
        value: &[u8],
        out: &mut Vec<u8>,
        depth: u32,
    ) -> Option<()> {
        if wire != kind.wire() {
            return None;
        }
        let varint = || decode_varint(&mut &value[..]).ok();
        let fixed64 = || value.try_into().ok().map(u64::from_le_bytes);
        let fixed32 = || value.try_into().ok().map(u32::from_le_bytes);
        let mut number = itoa::Buffer::new();
        // Truncating casts: protobuf's own rules for reading a varint as a 32-bit type.
        match kind {
            FieldKind::Double => float(f64::from_bits(fixed64()?), out),
            FieldKind::Float => float(f64::from(f32::from_bits(fixed32()?)), out),
            // 32-bit integers are numbers, 64-bit ones strings.
            FieldKind::Int32 => out.extend_from_slice(number.format(varint()? as i32).as_bytes()),
            FieldKind::Sint32 => {
                out.extend_from_slice(number.format(zigzag(varint()?) as i32).as_bytes())
            }
            FieldKind::Uint32 => out.extend_from_slice(number.format(varint()? as u32).as_bytes()),
            FieldKind::Fixed32 => out.extend_from_slice(number.format(fixed32()?).as_bytes()),
            FieldKind::Sfixed32 => {
                out.extend_from_slice(number.format(fixed32()? as i32).as_bytes())
            }
            FieldKind::Int64 => quoted(number.format(varint()? as i64), out),
            FieldKind::Sint64 => quoted(number.format(zigzag(varint()?)), out),
            FieldKind::Uint64 => quoted(number.format(varint()?), out),
            FieldKind::Fixed64 => quoted(number.format(fixed64()?), out),
            FieldKind::Sfixed64 => quoted(number.format(fixed64()? as i64), out),
            FieldKind::Bool => {
                out.extend_from_slice(if varint()? != 0 { b"true" } else { b"false" })
            }
            FieldKind::String => string(std::str::from_utf8(value).ok()?, out),
            FieldKind::Bytes => {
                out.push(b'"');
                let encoded = base64::engine::general_purpose::STANDARD.encode(value);
                out.extend_from_slice(encoded.as_bytes());
                out.push(b'"');
            }
            FieldKind::Enum(index) => {
                let n = varint()? as i32;
                let values = &self.enums.get(index)?.values;
                match values.binary_search_by_key(&n, |(v, _)| *v) {
                    Ok(i) => out.extend_from_slice(&values[i].1),
                    Err(_) => out.extend_from_slice(number.format(n).as_bytes()),
                }
            }
            FieldKind::Message(index) => self.message(index, value, out, depth + 1)?,
        }
        Some(())
    }

    /// One map entry as `"key":value` (the entry's fields 1 and 2; absent: the default).
    fn map_entry(
        &self,
        kind: FieldKind,
        mut entry: &[u8],
        out: &mut Vec<u8>,
        depth: u32,
    ) -> Option<()> {
        let FieldKind::Message(index) = kind else {
            return None;
        };
        let table = self.messages.get(index)?;
        let key_kind = table.fields.get(1)?.as_ref()?.kind;
        let value_kind = table.fields.get(2)?.as_ref()?.kind;
        let (mut key_bytes, mut value_bytes) = (None, None);
        while !entry.is_empty() {
            let (number, wire) = key(&mut entry)?;
            let value = field_bytes(&mut entry, wire)?;
            match number {
                1 => key_bytes = Some((wire, value)),
                2 => value_bytes = Some((wire, value)),
                _ => return None,
            }
        }
        match (key_bytes, key_kind) {
            (None, FieldKind::String) => out.extend_from_slice(b"\"\""),
            (Some((WireType::LengthDelimited, value)), FieldKind::String) => {
                string(std::str::from_utf8(value).ok()?, out)
            }
            (Some((wire, value)), kind) => {
                // Other keys (integers, booleans) are written as strings.
                let start = out.len();
                self.single(kind, wire, value, out, depth)?;
                if out.get(start) != Some(&b'"') {
                    out.insert(start, b'"');
                    out.push(b'"');
                }
            }
            (None, _) => return None,
        }
        out.push(b':');
        match (value_bytes, value_kind) {
            (Some((wire, value)), kind) => self.single(kind, wire, value, out, depth),
            (None, FieldKind::Message(index)) => self.message(index, &[], out, depth + 1),
            (None, FieldKind::String) => {
                out.extend_from_slice(b"\"\"");
                Some(())
            }
            (None, _) => None,
        }
    }

    /// `google.protobuf.Any`: `{"@type": url, ...the packed message's fields}`, or
    /// `"value"` for a packed well-known type.
    fn any(&self, mut bytes: &[u8], out: &mut Vec<u8>, depth: u32) -> Option<()> {
        let (mut url, mut packed) = ("", &[][..]);
        let mut seen = 0;
        while !bytes.is_empty() {
            let (number, wire) = key(&mut bytes)?;
            let value = field_bytes(&mut bytes, wire)?;
            match (number, wire) {
                (1, WireType::LengthDelimited) if seen < 1 => {
                    url = std::str::from_utf8(value).ok()?
                }
                (2, WireType::LengthDelimited) if seen < 2 => packed = value,
                _ => return None,
            }
            seen = number;
        }
        let name = url.rsplit_once('/').map(|(_, name)| name)?;
        let index = *self.by_name.get(name)?;
        out.extend_from_slice(b"{\"@type\":");
        string(url, out);
        if self.messages.get(index)?.form == Form::Object {
            self.fields(index, packed, out, false, depth + 1)?;
        } else {
            out.extend_from_slice(b",\"value\":");
            self.message(index, packed, out, depth + 1)?;
        }
        out.push(b'}');
        Some(())
    }
}

impl Message {
    /// A message left to prost-reflect.
    fn other() -> Message {
        Message {
            form: Form::Other,
            fields: Vec::new(),
            by_name: HashMap::new(),
        }
    }
}

impl FieldKind {
    /// The wire type of one value.
    fn wire(self) -> WireType {
        match self {
            FieldKind::Double | FieldKind::Fixed64 | FieldKind::Sfixed64 => WireType::SixtyFourBit,
            FieldKind::Float | FieldKind::Fixed32 | FieldKind::Sfixed32 => WireType::ThirtyTwoBit,
            FieldKind::String | FieldKind::Bytes | FieldKind::Message(_) => {
                WireType::LengthDelimited
            }
            _ => WireType::Varint,
        }
    }

    /// Whether a list of it may be packed.
    fn packable(self) -> bool {
        self.wire() != WireType::LengthDelimited
    }
}

fn key(bytes: &mut &[u8]) -> Option<(u32, WireType)> {
    let key = decode_varint(bytes).ok()?;
    let wire = WireType::try_from(key & 7).ok()?;
    let number = u32::try_from(key >> 3).ok().filter(|&n| n > 0)?;
    Some((number, wire))
}

/// Takes the value of a field with wire type `wire` off the front of `bytes`.
fn field_bytes<'a>(bytes: &mut &'a [u8], wire: WireType) -> Option<&'a [u8]> {
    let len = match wire {
        WireType::Varint => {
            let start = *bytes;
            decode_varint(bytes).ok()?;
            return Some(&start[..start.len() - bytes.len()]);
        }
        WireType::SixtyFourBit => 8,
        WireType::ThirtyTwoBit => 4,
        WireType::LengthDelimited => usize::try_from(decode_varint(bytes).ok()?).ok()?,
        WireType::StartGroup | WireType::EndGroup => return None,
    };
    let (value, rest) = bytes.split_at_checked(len)?;
    *bytes = rest;
    Some(value)
}

/// Whether a value is its type's default (0, false, "", empty bytes, the first enum
/// value; a message cannot be one: messages have presence).
fn is_default(kind: FieldKind, value: &[u8]) -> bool {
    match kind {
        // -0.0 is the default too (prost-reflect compares with ==).
        FieldKind::Double => value.try_into().is_ok_and(|v| f64::from_le_bytes(v) == 0.0),
        FieldKind::Float => value.try_into().is_ok_and(|v| f32::from_le_bytes(v) == 0.0),
        FieldKind::Message(_) => false,
        _ => value.iter().all(|&b| b == 0),
    }
}

fn zigzag(n: u64) -> i64 {
    ((n >> 1) as i64) ^ -((n & 1) as i64)
}

fn quoted(text: &str, out: &mut Vec<u8>) {
    out.push(b'"');
    out.extend_from_slice(text.as_bytes());
    out.push(b'"');
}

/// A float as JSON: a number, or "NaN", "Infinity", "-Infinity".
fn float(value: f64, out: &mut Vec<u8>) {
    if value.is_nan() {
        out.extend_from_slice(b"\"NaN\"");
    } else if value.is_infinite() {
        out.extend_from_slice(if value > 0.0 {
            b"\"Infinity\""
        } else {
            b"\"-Infinity\""
        });
    } else {
        // serde_json writes the shortest form that reads back the same.
        let _ = serde_json::to_writer(&mut *out, &value);
    }
}

/// A JSON string, escaped as serde_json escapes.
fn string(text: &str, out: &mut Vec<u8>) {
    let _ = serde_json::to_writer(&mut *out, text);
}

/// The seconds and nanos of a `Timestamp` or `Duration` (fields 1 and 2, in order).
fn seconds_nanos(mut bytes: &[u8]) -> Option<(i64, i32)> {
    let (mut seconds, mut nanos) = (0i64, 0i32);
    let mut seen = 0;
    while !bytes.is_empty() {
        let (number, wire) = key(&mut bytes)?;
        if wire != WireType::Varint || number <= seen {
            return None;
        }
        let value = decode_varint(&mut bytes).ok()?;
        match number {
            1 => seconds = value as i64,
            2 => nanos = value as i32,
            _ => return None,
        }
        seen = number;
    }
    Some((seconds, nanos))
}

/// RFC 3339 in UTC, with 0, 3, 6 or 9 fractional digits (prost-types' form, which
/// prost-reflect writes); years 1970 to 9999 here, earlier ones left to prost-reflect.
fn timestamp(bytes: &[u8], out: &mut Vec<u8>) -> Option<()> {
    let (seconds, nanos) = seconds_nanos(bytes)?;
    if !(0..=253_402_300_799).contains(&seconds) || !(0..1_000_000_000).contains(&nanos) {
        return None;
    }
    let (days, time) = (seconds / 86_400, seconds % 86_400);
    let (year, month, day) = civil(days);
    out.push(b'"');
    digits(out, year as u32, 4);
    out.push(b'-');
    digits(out, month, 2);
    out.push(b'-');
    digits(out, day, 2);
    out.push(b'T');
    digits(out, (time / 3600) as u32, 2);
    out.push(b':');
    digits(out, (time / 60 % 60) as u32, 2);
    out.push(b':');
    digits(out, (time % 60) as u32, 2);
    let nanos = nanos as u32;
    if nanos != 0 {
        out.push(b'.');
        if nanos % 1_000_000 == 0 {
            digits(out, nanos / 1_000_000, 3);
        } else if nanos % 1_000 == 0 {
            digits(out, nanos / 1_000, 6);
        } else {
            digits(out, nanos, 9);
        }
    }
    out.extend_from_slice(b"Z\"");
    Some(())
}

/// `n` in decimal, zero-padded to `width` digits.
fn digits(out: &mut Vec<u8>, n: u32, width: usize) {
    let mut buf = itoa::Buffer::new();
    let text = buf.format(n);
    out.extend(std::iter::repeat_n(b'0', width.saturating_sub(text.len())));
    out.extend_from_slice(text.as_bytes());
}

/// The civil date of `days` after 1970-01-01 (Howard Hinnant's `civil_from_days`).
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// A duration in seconds with an `s` suffix, in prost-types' form.
fn duration(bytes: &[u8], out: &mut Vec<u8>) -> Option<()> {
    let (seconds, nanos) = seconds_nanos(bytes)?;
    if seconds.unsigned_abs() > 315_576_000_000 || nanos.unsigned_abs() > 999_999_999 {
        return None;
    }
    write!(out, "\"{}\"", prost_types::Duration { seconds, nanos }).ok()
}
