//! Field types of the request bodies, with AgentFlow's quirks written once: null counts as
//! absent where AgentFlow allows it, an empty string as missing, and every wrong type is
//! answered as "`field` must be a string, not a number" rather than serde's wording.
//!
//! Each type reads the field's JSON value and checks its kind; the message (without the
//! field name, which [`super::json`] adds from the path) is the error.

use crate::envelope::json_kind;
use serde::de::{Deserialize, Deserializer, Error};
use serde_json::{Map, Value};
use std::time::Duration;

fn wrong<E: Error>(expected: &str, got: &Value) -> E {
    E::custom(format!("must be {expected}, not {}", json_kind(got)))
}

/// A required, non-empty string: missing, null and `""` are all "is required".
#[derive(Debug, Clone)]
pub struct Name(pub String);

impl<'de> Deserialize<'de> for Name {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Value::deserialize(d)? {
            Value::String(s) if !s.is_empty() => Ok(Name(s)),
            Value::Null | Value::String(_) => Err(D::Error::custom("is required")),
            other => Err(wrong("a string", &other)),
        }
    }
}

/// An optional string (as `Option<Text>`; null is absent). An empty string is kept; routes
/// that treat it as absent use [`non_empty`].
#[derive(Debug, Clone)]
pub struct Text(pub String);

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Value::deserialize(d)? {
            Value::String(s) => Ok(Text(s)),
            other => Err(wrong("a string", &other)),
        }
    }
}

/// The string of an optional field, with `""` counted as absent.
pub fn non_empty(field: &Option<Text>) -> Option<String> {
    field.as_ref().filter(|t| !t.0.is_empty()).map(|t| t.0.clone())
}

/// An optional object (with `#[serde(default)]`): absent and null are an empty object.
#[derive(Debug, Clone, Default)]
pub struct Object(pub Map<String, Value>);

impl<'de> Deserialize<'de> for Object {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Value::deserialize(d)? {
            Value::Object(map) => Ok(Object(map)),
            Value::Null => Ok(Object::default()),
            other => Err(wrong("an object", &other)),
        }
    }
}

/// A tool's parameters (with `#[serde(default)]`): absent is an empty object, but null and
/// every other non-object are refused, as AgentFlow does.
#[derive(Debug, Clone, Default)]
pub struct Params(pub crate::sandbox::Params);

impl<'de> Deserialize<'de> for Params {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Value::deserialize(d)? {
            Value::Object(map) => Ok(Params(map)),
            other => Err(wrong("an object", &other)),
        }
    }
}

/// An optional deadline in seconds (with `#[serde(default)]`): null and 0 are none; a
/// longer one than any limit is cut (see [`crate::config::seconds`]). Converted once, here.
#[derive(Debug, Clone, Copy, Default)]
pub struct Seconds(pub Option<Duration>);

impl<'de> Deserialize<'de> for Seconds {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Value::deserialize(d)? {
            Value::Null => Ok(Seconds(None)),
            Value::Number(n) => match n.as_f64() {
                Some(0.0) => Ok(Seconds(None)),
                Some(s) if s > 0.0 && s.is_finite() => Ok(Seconds(Some(crate::config::seconds(s)))),
                _ => Err(D::Error::custom("must be a non-negative number of seconds")),
            },
            other => Err(wrong("a number of seconds", &other)),
        }
    }
}

/// An optional boolean (as `Option<Flag>`; null is absent).
#[derive(Debug, Clone, Copy)]
pub struct Flag(pub bool);

impl<'de> Deserialize<'de> for Flag {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Value::deserialize(d)? {
            Value::Bool(b) => Ok(Flag(b)),
            other => Err(wrong("a boolean", &other)),
        }
    }
}

/// The value of an optional boolean, or `default`.
pub fn flag(field: Option<Flag>, default: bool) -> bool {
    field.map_or(default, |f| f.0)
}

/// An optional list of strings (as `Option<Names>`; null is absent).
#[derive(Debug, Clone)]
pub struct Names(pub Vec<String>);

impl<'de> Deserialize<'de> for Names {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Value::deserialize(d)? {
            Value::Array(items) => items
                .into_iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s),
                    _ => Err(D::Error::custom("must be a list of strings")),
                })
                .collect::<Result<_, _>>()
                .map(Names),
            other => Err(wrong("a list of strings", &other)),
        }
    }
}
