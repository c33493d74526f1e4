//! Requests in JSON, read straight into protobuf with the same tables.
//!
//! One serde pass over the JSON writes each value's protobuf as it is read: no tree of
//! dynamic values, and the checks prost-reflect does not make (a key given twice, nesting
//! deeper than the limit) are made on the way. It reads what requests use: scalars,
//! strings, enums (by name or number), nested messages and lists of them. A map, a
//! `bytes` field or a well-known type makes [`Tables::read`] answer
//! [`Read::Unsupported`], and the caller falls back on prost-reflect.

use std::{cell::Cell, fmt};

use prost::encoding::{encode_varint, encoded_len_varint};
use serde::de::{DeserializeSeed, Error as _, MapAccess, SeqAccess, Visitor};

use super::{super::Key, Field, FieldKind, Form, MAX_DEPTH, Shape, Tables};

/// Why a JSON request was not read.
#[derive(Debug)]
pub(crate) enum Read {
    /// The JSON is not a valid message of its type (the reason).
    Invalid(String),
    /// It uses what this reader leaves to prost-reflect.
    Unsupported,
}

impl Tables {
    /// Appends the protobuf encoding of the JSON message `json` (of the message at
    /// `index`) to `out`.
    pub(crate) fn read(&self, index: usize, json: &[u8], out: &mut Vec<u8>) -> Result<(), Read> {
        let ctx = Ctx {
            tables: self,
            unsupported: Cell::new(false),
        };
        let mut de = serde_json::Deserializer::from_slice(json);
        let read = MessageSeed {
            ctx: &ctx,
            index,
            out,
            depth: 0,
        }
        .deserialize(&mut de)
        .and_then(|()| de.end());
        match read {
            Ok(()) => Ok(()),
            Err(_) if ctx.unsupported.get() => Err(Read::Unsupported),
            Err(err) => Err(Read::Invalid(err.to_string())),
        }
    }
}

struct Ctx<'t> {
    tables: &'t Tables,
    /// Set when the reader gives up on something it does not cover.
    unsupported: Cell<bool>,
}

impl Ctx<'_> {
    fn unsupported<E: serde::de::Error>(&self) -> E {
        self.unsupported.set(true);
        E::custom("left to prost-reflect")
    }
}

/// A message's JSON object, written as its fields' protobuf into `out`.
struct MessageSeed<'a, 't> {
    ctx: &'a Ctx<'t>,
    index: usize,
    out: &'a mut Vec<u8>,
    depth: u32,
}

impl<'de> DeserializeSeed<'de> for MessageSeed<'_, '_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, de: D) -> Result<(), D::Error> {
        de.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for MessageSeed<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        if self.depth > MAX_DEPTH {
            return Err(A::Error::custom(format_args!(
                "nested deeper than {MAX_DEPTH} levels"
            )));
        }
        let Some(table) = self.ctx.tables.messages.get(self.index) else {
            return Err(self.ctx.unsupported());
        };
        if table.form != Form::Object {
            return Err(self.ctx.unsupported());
        }
        // Field numbers seen, to refuse a field given twice (under either name).
        let mut seen: Vec<u32> = Vec::new();
        while let Some(Key(key)) = map.next_key::<Key<'de>>()? {
            let Some(&number) = table.by_name.get(&*key) else {
                return Err(A::Error::custom(format_args!(
                    "unrecognized field name '{key}'"
                )));
            };
            if seen.contains(&number) {
                return Err(A::Error::custom(format_args!("duplicate key {key:?}")));
            }
            seen.push(number);
            let Some(field) = table.fields.get(number as usize).and_then(Option::as_ref) else {
                return Err(self.ctx.unsupported());
            };
            map.next_value_seed(FieldSeed {
                ctx: self.ctx,
                field,
                out: &mut *self.out,
                depth: self.depth,
            })?;
        }
        Ok(())
    }
}

/// One field's JSON value: a value, or a list of them.
struct FieldSeed<'a, 't> {
    ctx: &'a Ctx<'t>,
    field: &'a Field,
    out: &'a mut Vec<u8>,
    depth: u32,
}

impl<'de> DeserializeSeed<'de> for FieldSeed<'_, '_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, de: D) -> Result<(), D::Error> {
        match self.field.shape {
            Shape::Map => Err(self.ctx.unsupported()),
            Shape::List => de.deserialize_any(ListVisitor(self)),
            Shape::Single { .. } => de.deserialize_any(ValueVisitor(self)),
        }
    }
}

/// A list field: `null` or an array of values (each written as the field, unpacked,
/// which every protobuf reader takes for packed fields too).
struct ListVisitor<'a, 't>(FieldSeed<'a, 't>);

impl<'de> Visitor<'de> for ListVisitor<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON array")
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let FieldSeed {
            ctx,
            field,
            out,
            depth,
        } = self.0;
        while seq
            .next_element_seed(Element(FieldSeed {
                ctx,
                field,
                out: &mut *out,
                depth,
            }))?
            .is_some()
        {}
        Ok(())
    }
}

/// One element of a list.
struct Element<'a, 't>(FieldSeed<'a, 't>);

impl<'de> DeserializeSeed<'de> for Element<'_, '_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, de: D) -> Result<(), D::Error> {
        de.deserialize_any(ValueVisitor(self.0))
    }
}

/// A single value, written with its field's key.
struct ValueVisitor<'a, 't>(FieldSeed<'a, 't>);

impl ValueVisitor<'_, '_> {
    /// Writes the field's key, then `value` as a varint.
    fn varint(self, value: u64) {
        self.0.out.extend_from_slice(&self.0.field.tag);
        encode_varint(value, self.0.out);
    }

    /// Writes the field's key, then `bytes` as they are (fixed-width values).
    fn fixed(self, bytes: &[u8]) {
        self.0.out.extend_from_slice(&self.0.field.tag);
        self.0.out.extend_from_slice(bytes);
    }

    /// A number (from a JSON number or string) as the field's kind.
    fn number<E: serde::de::Error>(self, n: Number) -> Result<(), E> {
        let kind = self.0.field.kind;
        let out_of_range = || E::custom(format_args!("{n} is out of range for {kind:?}"));
        match kind {
            FieldKind::Int32 | FieldKind::Enum(_) => {
                let v = n.integer::<E>()?;
                let v = i32::try_from(v).map_err(|_| out_of_range())?;
                self.varint(v as i64 as u64);
            }
            FieldKind::Sint32 => {
                let v = i32::try_from(n.integer::<E>()?).map_err(|_| out_of_range())?;
                self.varint(((v << 1) ^ (v >> 31)) as u32 as u64);
            }
            FieldKind::Sfixed32 => {
                let v = i32::try_from(n.integer::<E>()?).map_err(|_| out_of_range())?;
                self.fixed(&v.to_le_bytes());
            }
            FieldKind::Uint32 => {
                let v = u32::try_from(n.integer::<E>()?).map_err(|_| out_of_range())?;
                self.varint(u64::from(v));
            }
            FieldKind::Fixed32 => {
                let v = u32::try_from(n.integer::<E>()?).map_err(|_| out_of_range())?;
                self.fixed(&v.to_le_bytes());
            }
            FieldKind::Int64 => {
                let v = i64::try_from(n.integer::<E>()?).map_err(|_| out_of_range())?;
                self.varint(v as u64);
            }
            FieldKind::Sint64 => {
                let v = i64::try_from(n.integer::<E>()?).map_err(|_| out_of_range())?;
                self.varint(((v << 1) ^ (v >> 63)) as u64);
            }
            FieldKind::Sfixed64 => {
                let v = i64::try_from(n.integer::<E>()?).map_err(|_| out_of_range())?;
                self.fixed(&v.to_le_bytes());
            }
            FieldKind::Uint64 => {
                let v = u64::try_from(n.integer::<E>()?).map_err(|_| out_of_range())?;
                self.varint(v);
            }
            FieldKind::Fixed64 => {
                let v = u64::try_from(n.integer::<E>()?).map_err(|_| out_of_range())?;
                self.fixed(&v.to_le_bytes());
            }
            FieldKind::Double => self.fixed(&n.float().to_le_bytes()),
            FieldKind::Float => {
                let v = n.float();
                if v.is_finite() && (v as f32).is_infinite() {
                    return Err(out_of_range());
                }
                self.fixed(&(v as f32).to_le_bytes());
            }
            _ => {
                return Err(E::custom(format_args!(
                    "a number where {kind:?} was expected"
                )));
            }
        }
        Ok(())
    }
}

/// A JSON number, or a number written as a string.
#[derive(Debug, Clone, Copy)]
enum Number {
    Int(i128),
    Float(f64),
}

impl fmt::Display for Number {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            Number::Int(v) => write!(f, "{v}"),
            Number::Float(v) => write!(f, "{v}"),
        }
    }
}

impl Number {
    /// An integer's value; a float only if it is one exactly.
    fn integer<E: serde::de::Error>(self) -> Result<i128, E> {
        match self {
            Number::Int(v) => Ok(v),
            Number::Float(v) if v.fract() == 0.0 && v.abs() < 1.8e19 => Ok(v as i128),
            Number::Float(v) => Err(E::custom(format_args!("{v} is not an integer"))),
        }
    }

    fn float(self) -> f64 {
        match self {
            Number::Int(v) => v as f64,
            Number::Float(v) => v,
        }
    }

    /// A number written as a string: an integer, a float, or NaN/Infinity/-Infinity.
    fn parse(text: &str) -> Option<Number> {
        if let Ok(v) = text.parse::<i128>() {
            return Some(Number::Int(v));
        }
        match text {
            "NaN" => Some(Number::Float(f64::NAN)),
            "Infinity" => Some(Number::Float(f64::INFINITY)),
            "-Infinity" => Some(Number::Float(f64::NEG_INFINITY)),
            _ => text
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite())
                .map(Number::Float),
        }
    }
}

impl<'de> Visitor<'de> for ValueVisitor<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "a value of kind {:?}", self.0.field.kind)
    }

    /// `null`: the default value, nothing written.
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<(), E> {
        if self.0.field.kind != FieldKind::Bool {
            return Err(E::invalid_type(serde::de::Unexpected::Bool(v), &self));
        }
        self.varint(u64::from(v));
        Ok(())
    }

    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<(), E> {
        self.number(Number::Int(i128::from(v)))
    }

    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<(), E> {
        self.number(Number::Int(i128::from(v)))
    }

    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<(), E> {
        self.number(Number::Float(v))
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<(), E> {
        match self.0.field.kind {
            FieldKind::String => {
                self.0.out.extend_from_slice(&self.0.field.tag);
                encode_varint(v.len() as u64, self.0.out);
                self.0.out.extend_from_slice(v.as_bytes());
                Ok(())
            }
            FieldKind::Bytes | FieldKind::Message(_) => Err(self.0.ctx.unsupported()),
            FieldKind::Enum(index) => {
                let number = self
                    .0
                    .ctx
                    .tables
                    .enums
                    .get(index)
                    .and_then(|e| e.by_name.get(v).copied())
                    .ok_or_else(|| E::custom(format_args!("unknown enum value {v:?}")))?;
                self.varint(number as i64 as u64);
                Ok(())
            }
            FieldKind::Bool => Err(E::invalid_type(serde::de::Unexpected::Str(v), &self)),
            _ => match Number::parse(v) {
                Some(n) => self.number(n),
                None => Err(E::custom(format_args!("{v:?} is not a number"))),
            },
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<(), A::Error> {
        let FieldKind::Message(index) = self.0.field.kind else {
            return Err(A::Error::invalid_type(serde::de::Unexpected::Map, &self));
        };
        let mut inner = Vec::new();
        MessageSeed {
            ctx: self.0.ctx,
            index,
            out: &mut inner,
            depth: self.0.depth + 1,
        }
        .visit_map(map)?;
        let out = &mut *self.0.out;
        out.reserve(self.0.field.tag.len() + encoded_len_varint(inner.len() as u64) + inner.len());
        out.extend_from_slice(&self.0.field.tag);
        encode_varint(inner.len() as u64, out);
        out.extend_from_slice(&inner);
        Ok(())
    }
}
