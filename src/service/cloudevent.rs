//! CloudEvents envelopes and the `google.protobuf.Any` / `Timestamp` helpers they need.
//!
//! pilota generates `Any` and `Timestamp` as plain structs with no pack/unpack or time
//! conversions; this module is the one place that provides them. Hello and Background
//! wrap their payloads with [`envelope`].

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use pilota::{
    AHashMap, Bytes, FastStr,
    pb::{EncodeLengthContext, Message},
};
use volo_gen::{
    basic::service::v1::{BackgroundResponseEvent, HelloResponseEvent},
    cloudevents::v1::{
        CloudEvent,
        cloud_event::{CloudEventAttributeValue, Data, cloud_event_attribute_value::Attr},
    },
    google::protobuf::{Any, Timestamp},
};

/// The CloudEvents spec version we write (the reference writes `v1.0`, which the spec forbids).
pub const SPEC_VERSION: &str = "1.0";

/// Prefix of every `Any.type_url` we write and accept.
pub const TYPE_URL_PREFIX: &str = "type.googleapis.com/";

/// A generated message that can travel inside an `Any`.
pub trait TypeName: Message + Default {
    /// Fully qualified protobuf name, e.g. `basic.service.v1.HelloResponseEvent`.
    const FULL_NAME: &'static str;
    /// `type.googleapis.com/<FULL_NAME>`.
    const TYPE_URL: &'static str;
}

macro_rules! type_name {
    ($ty:ty, $name:literal) => {
        impl TypeName for $ty {
            const FULL_NAME: &'static str = $name;
            const TYPE_URL: &'static str = concat!("type.googleapis.com/", $name);
        }
    };
}

type_name!(HelloResponseEvent, "basic.service.v1.HelloResponseEvent");
type_name!(
    BackgroundResponseEvent,
    "basic.service.v1.BackgroundResponseEvent"
);

/// Why an `Any` could not be unpacked.
#[derive(Debug, thiserror::Error)]
pub enum AnyError {
    #[error("Any holds {found:?}, expected {expected:?}")]
    TypeMismatch {
        expected: &'static str,
        found: FastStr,
    },
    #[error("Any payload is not a valid {name}")]
    Decode {
        name: &'static str,
        #[source]
        source: pilota::pb::DecodeError,
    },
}

/// Packs `msg` into an `Any` with the standard type URL.
pub fn pack<M: TypeName>(msg: &M) -> Any {
    let value = msg.encode_to_vec(&mut EncodeLengthContext::default());
    pack_encoded::<M>(Bytes::from(value))
}

/// Wraps bytes that already hold an encoded `M` (see the Background snapshot encoder).
pub fn pack_encoded<M: TypeName>(value: Bytes) -> Any {
    Any {
        type_url: FastStr::from_static_str(M::TYPE_URL),
        value,
    }
}

/// Unpacks an `M` from `any`, checking the type URL first.
pub fn unpack<M: TypeName>(any: &Any) -> Result<M, AnyError> {
    if any.type_url != M::TYPE_URL {
        return Err(AnyError::TypeMismatch {
            expected: M::TYPE_URL,
            found: any.type_url.clone(),
        });
    }
    M::decode(any.value.clone()).map_err(|source| AnyError::Decode {
        name: M::FULL_NAME,
        source,
    })
}

/// A protobuf `Timestamp` for `time` (times before 1970 are normalised as protobuf requires).
pub fn timestamp(time: SystemTime) -> Timestamp {
    match time.duration_since(UNIX_EPOCH) {
        Ok(d) => Timestamp {
            seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
            nanos: i32::try_from(d.subsec_nanos()).unwrap_or(0),
        },
        Err(before) => {
            let d = before.duration();
            let (secs, nanos) = (d.as_secs() as i64, d.subsec_nanos() as i32);
            if nanos == 0 {
                Timestamp {
                    seconds: -secs,
                    nanos: 0,
                }
            } else {
                Timestamp {
                    seconds: -secs - 1,
                    nanos: 1_000_000_000 - nanos,
                }
            }
        }
    }
}

/// The `SystemTime` a `Timestamp` names, or `None` if it is out of range or malformed.
pub fn system_time(ts: &Timestamp) -> Option<SystemTime> {
    let nanos = u32::try_from(ts.nanos)
        .ok()
        .filter(|n| *n < 1_000_000_000)?;
    if ts.seconds >= 0 {
        UNIX_EPOCH.checked_add(Duration::new(ts.seconds as u64, nanos))
    } else {
        UNIX_EPOCH
            .checked_sub(Duration::from_secs(ts.seconds.unsigned_abs()))?
            .checked_add(Duration::from_nanos(u64::from(nanos)))
    }
}

/// A CloudEvent with a fresh UUID v4 id, spec version 1.0, a `time` attribute and `data`.
pub fn envelope(
    source: &'static str,
    event_type: &'static str,
    data: Any,
    time: Timestamp,
) -> CloudEvent {
    let mut attributes = AHashMap::with_capacity(1);
    attributes.insert(
        FastStr::from_static_str("time"),
        CloudEventAttributeValue {
            attr: Some(Attr::CeTimestamp(time)),
        },
    );
    CloudEvent {
        id: new_id().to_string(),
        source: source.to_owned(),
        spec_version: SPEC_VERSION.to_owned(),
        r#type: event_type.to_owned(),
        attributes,
        data: Some(Data::ProtoData(data)),
    }
}

/// A fresh UUID v4 as text.
pub fn new_id() -> FastStr {
    let mut buf = uuid::Uuid::encode_buffer();
    FastStr::new(uuid::Uuid::new_v4().hyphenated().encode_lower(&mut buf))
}

/// The `time` attribute of `event`, if present and a timestamp.
pub fn event_time(event: &CloudEvent) -> Option<&Timestamp> {
    match event.attributes.get("time")?.attr.as_ref()? {
        Attr::CeTimestamp(ts) => Some(ts),
        _ => None,
    }
}

/// The `proto_data` of `event`, if that is what it carries.
pub fn proto_data(event: &CloudEvent) -> Option<&Any> {
    match event.data.as_ref()? {
        Data::ProtoData(any) => Some(any),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pack_then_unpack_round_trips() {
        let msg = HelloResponseEvent {
            greeting: "Hello, 世界".into(),
        };
        let any = pack(&msg);
        assert_eq!(
            any.type_url,
            "type.googleapis.com/basic.service.v1.HelloResponseEvent"
        );
        assert_eq!(unpack::<HelloResponseEvent>(&any).unwrap(), msg);
    }

    #[test]
    fn unpack_refuses_another_type() {
        let any = pack(&HelloResponseEvent::default());
        let err = unpack::<BackgroundResponseEvent>(&any).unwrap_err();
        assert!(matches!(err, AnyError::TypeMismatch { .. }), "{err}");
    }

    #[test]
    fn unpack_reports_corrupt_payloads() {
        let any = Any {
            type_url: HelloResponseEvent::TYPE_URL.into(),
            value: Bytes::from_static(&[0x0a, 0xff]),
        };
        assert!(matches!(
            unpack::<HelloResponseEvent>(&any),
            Err(AnyError::Decode { .. })
        ));
    }

    #[test]
    fn type_names_match_the_generated_descriptors() {
        // Guards the hand-written names against a rename in idl/.
        let hello = HelloResponseEvent::get_descriptor_proto().unwrap();
        assert_eq!(
            HelloResponseEvent::FULL_NAME,
            format!("basic.service.v1.{}", hello.name())
        );
        let bg = BackgroundResponseEvent::get_descriptor_proto().unwrap();
        assert_eq!(
            BackgroundResponseEvent::FULL_NAME,
            format!("basic.service.v1.{}", bg.name())
        );
    }

    #[test]
    fn timestamps_round_trip_on_both_sides_of_the_epoch() {
        for t in [
            UNIX_EPOCH + Duration::new(1_700_000_000, 123_456_789),
            UNIX_EPOCH,
            UNIX_EPOCH - Duration::new(5, 250_000_000),
        ] {
            let ts = timestamp(t);
            assert!((0..1_000_000_000).contains(&ts.nanos));
            assert_eq!(system_time(&ts), Some(t));
        }
        assert_eq!(
            timestamp(UNIX_EPOCH - Duration::new(5, 250_000_000)),
            Timestamp {
                seconds: -6,
                nanos: 750_000_000
            }
        );
        assert_eq!(
            system_time(&Timestamp {
                seconds: 0,
                nanos: -1
            }),
            None
        );
    }

    #[test]
    fn envelope_carries_the_required_attributes() {
        let time = timestamp(SystemTime::now());
        let event = envelope(
            "src",
            "kind",
            pack(&HelloResponseEvent::default()),
            time.clone(),
        );
        assert_eq!(event.spec_version, "1.0");
        assert_eq!(event.source, "src");
        assert_eq!(event.r#type, "kind");
        assert_eq!(
            uuid::Uuid::parse_str(&event.id).unwrap().get_version_num(),
            4
        );
        assert_eq!(event_time(&event), Some(&time));
        assert!(proto_data(&event).is_some());
    }
}
