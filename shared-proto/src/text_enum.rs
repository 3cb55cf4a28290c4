//! Enums with a stable text form, for state that is stored or sent as a word
//! (`pending`, `internet`, `daily`, …) but handled in Rust as a type.

/// Declares an enum whose variants each have one stable text form, with `as_str`,
/// `ALL`, `Display`, `FromStr` and serde implementations that all use that form, so
/// the word is written in one place only.
///
/// ```
/// shared_proto::text_enum! {
///     /// How often.
///     pub enum Every { Day => "daily", Week => "weekly" }
/// }
/// assert_eq!("weekly".parse::<Every>(), Ok(Every::Week));
/// assert_eq!(Every::Day.to_string(), "daily");
/// ```
#[macro_export]
macro_rules! text_enum {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident => $text:literal ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        $vis enum $name {
            $( $(#[$vmeta])* $variant ),+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The stable text form.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $( $name::$variant => $text ),+
                }
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = $crate::text_enum::UnknownWord;

            fn from_str(text: &str) -> Result<Self, Self::Err> {
                $name::ALL
                    .iter()
                    .copied()
                    .find(|value| value.as_str() == text)
                    .ok_or_else(|| $crate::text_enum::UnknownWord::new(
                        text,
                        $name::ALL.iter().map(|value| value.as_str()),
                    ))
            }
        }

        impl ::serde::Serialize for $name {
            fn serialize<S: ::serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> ::serde::Deserialize<'de> for $name {
            fn deserialize<D: ::serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = <::std::borrow::Cow<'de, str> as ::serde::Deserialize>::deserialize(deserializer)?;
                text.parse().map_err(::serde::de::Error::custom)
            }
        }
    };
}

/// A word that is none of an enum's text forms; its message lists the accepted ones.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{word:?} is not one of: {accepted}")]
pub struct UnknownWord {
    word: String,
    accepted: String,
}

impl UnknownWord {
    #[doc(hidden)]
    pub fn new<'a>(word: &str, accepted: impl Iterator<Item = &'a str>) -> Self {
        Self {
            word: word.chars().take(40).collect(),
            accepted: accepted.collect::<Vec<_>>().join(", "),
        }
    }
}

#[cfg(test)]
mod tests {
    crate::text_enum! {
        enum Mode { Off => "off", Daily => "daily" }
    }

    #[test]
    fn text_forms_round_trip_through_every_interface() {
        for mode in Mode::ALL {
            assert_eq!(mode.as_str().parse::<Mode>(), Ok(*mode));
            let json = serde_json::to_string(mode).unwrap_or_default();
            assert_eq!(json, format!("\"{mode}\""));
            assert_eq!(serde_json::from_str::<Mode>(&json).ok(), Some(*mode));
        }
        let err = "weekly".parse::<Mode>().err().map(|e| e.to_string());
        assert_eq!(err.as_deref(), Some("\"weekly\" is not one of: off, daily"));
        assert!(serde_json::from_str::<Mode>("\"Daily\"").is_err());
    }
}
