//! Finding the line of a key after the fact. yaml_serde keeps no positions in its
//! `Value`, but every error it raises carries the position of the event being read.
//! So to locate `apps[2].script` we parse the text again with a visitor that walks
//! down that path and fails on purpose at the key: the error's location is the
//! key's. Only used on the error path.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::error::Seg;

/// 1-based (line, column) of the last key in `path` (or of the value, when the path
/// ends with a list index). None if the path is not in the text.
pub(crate) fn locate(text: &str, path: &[Seg]) -> Option<(usize, usize)> {
    let de = yaml_serde::Deserializer::from_str(text);
    let probe = Probe { path };
    match probe.deserialize(de) {
        Err(e) if e.to_string().contains(MARKER) => e.location().map(|l| (l.line(), l.column())),
        _ => None,
    }
}

const MARKER: &str = "drover-locate-probe";

/// The error raised when the target is reached.
fn found<E: de::Error>() -> E {
    E::custom(MARKER)
}

struct Probe<'p> {
    path: &'p [Seg],
}

impl<'de> DeserializeSeed<'de> for Probe<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Probe<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("anything")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let Some((Seg::Key(want), rest)) = self.path.split_first() else {
            return Err(found());
        };
        while let Some(hit) = map.next_key_seed(KeyProbe {
            want,
            last: rest.is_empty(),
        })? {
            if hit {
                map.next_value_seed(Probe { path: rest })?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let Some((Seg::Index(want), rest)) = self.path.split_first() else {
            return Err(found());
        };
        for _ in 0..*want {
            if seq.next_element::<IgnoredAny>()?.is_none() {
                return Ok(());
            }
        }
        seq.next_element_seed(Probe { path: rest })?;
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(())
    }

    // A scalar: the target if the path ends here, else the path is not in the text.
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        self.scalar()
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        self.scalar()
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        self.scalar()
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        self.scalar()
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        self.scalar()
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.scalar()
    }
    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        self.scalar()
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        self.deserialize(d)
    }
    fn visit_enum<A: de::EnumAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        Err(found())
    }
}

impl Probe<'_> {
    fn scalar<E: de::Error>(&self) -> Result<(), E> {
        if self.path.is_empty() {
            Err(found())
        } else {
            Ok(())
        }
    }
}

/// Reads one map key: Ok(true) if it is the one wanted; fails (locating it) when it
/// is the wanted key and the last step of the path.
struct KeyProbe<'p> {
    want: &'p str,
    last: bool,
}

impl<'de> DeserializeSeed<'de> for KeyProbe<'_> {
    type Value = bool;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_any(self)
    }
}

impl KeyProbe<'_> {
    fn check<E: de::Error>(&self, key: &str) -> Result<bool, E> {
        match (key == self.want, self.last) {
            (true, true) => Err(found()),
            (hit, _) => Ok(hit),
        }
    }
}

impl<'de> Visitor<'de> for KeyProbe<'_> {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a key")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<bool, E> {
        self.check(v)
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<bool, E> {
        self.check(&v.to_string())
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<bool, E> {
        self.check(&v.to_string())
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<bool, E> {
        self.check(&v.to_string())
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<bool, E> {
        self.check(&v.to_string())
    }
    fn visit_unit<E: de::Error>(self) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_none<E: de::Error>(self) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<bool, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(false)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<bool, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(false)
    }
    fn visit_enum<A: de::EnumAccess<'de>>(self, data: A) -> Result<bool, A::Error> {
        // A tagged key (`!tag key:`): read the tag and the node under it, or the
        // stream is left one event behind.
        use serde::de::VariantAccess;
        let (_, node) = data.variant::<IgnoredAny>()?;
        node.newtype_variant::<IgnoredAny>()?;
        Ok(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(s: &str) -> Seg {
        Seg::Key(s.into())
    }

    #[test]
    fn finds_keys_and_items() {
        let text = "apps:\n  - name: a\n    script: a.js\n  - name: b\n    env:\n      PORT: 1\n    script: b.js\n";
        assert_eq!(locate(text, &[k("apps")]), Some((1, 1)));
        assert_eq!(
            locate(text, &[k("apps"), Seg::Index(0), k("script")]).map(|l| l.0),
            Some(3)
        );
        assert_eq!(
            locate(text, &[k("apps"), Seg::Index(1)]).map(|l| l.0),
            Some(4)
        );
        assert_eq!(
            locate(text, &[k("apps"), Seg::Index(1), k("script")]).map(|l| l.0),
            Some(7)
        );
        assert_eq!(
            locate(text, &[k("apps"), Seg::Index(1), k("env"), k("PORT")]),
            Some((6, 7))
        );
        assert_eq!(locate(text, &[k("apps"), Seg::Index(2)]), None);
        assert_eq!(locate(text, &[k("apps"), Seg::Index(0), k("nope")]), None);
    }

    #[test]
    fn finds_in_json() {
        let text = "{\n  \"apps\": [\n    {\n      \"name\": \"a\",\n      \"instances\": \"lots\"\n    }\n  ]\n}\n";
        assert_eq!(
            locate(text, &[k("apps"), Seg::Index(0), k("instances")]).map(|l| l.0),
            Some(5)
        );
    }
}
