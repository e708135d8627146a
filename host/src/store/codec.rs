//! Values as each database keeps them. The shared statements (`sql/`)
//! bind and read these newtypes, and each encodes per backend, so one
//! statement text serves both:
//!
//! | newtype | PostgreSQL | SQLite |
//! | --- | --- | --- |
//! | [`Id`] (a UUID) | `uuid` | hyphenated text |
//! | [`Token`] (a lease token) | `uuid` | 32 hex digits |
//! | [`At`] (a time) | `timestamptz` | microseconds since the epoch |
//! | [`Json`] (JSON text) | `jsonb` | text |
//! | [`List`] (a list bound as one value) | an array | a JSON array, read with `json_each` |
//! | [`Nat`] (a non-negative integer read back) | `int2`/`int4`/`int8` | integer |
//!
//! Reading is checked: a value out of its type's range is a decode error
//! ([`super::StoreError::Failed`]), never clamped.

use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::postgres::{PgArgumentBuffer, PgHasArrayType, PgTypeInfo, PgValueFormat, PgValueRef};
use sqlx::sqlite::{SqliteArgumentValue, SqliteTypeInfo, SqliteValueRef};
use sqlx::{Decode, Encode, Postgres, Sqlite, Type, ValueRef};
use uuid::Uuid;

use crate::model::Timestamp;

/// A UUID: a job, a run, a schedule's tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Id(pub Uuid);

/// A lease token (SQLite keeps it in its simple form: `randomblob` makes it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Token(pub Uuid);

/// A time, kept to the microsecond by both databases.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct At(pub Timestamp);

/// JSON as text (inputs, results, settings); PostgreSQL keeps it as `jsonb`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Json(pub String);

/// A list bound as one parameter: `= ANY($n)` on PostgreSQL, `IN (SELECT
/// value FROM json_each($n))` on SQLite (see each dialect's `any`).
#[derive(Debug, Clone, Copy)]
pub struct List<'a, T>(pub &'a [T]);

/// A stored non-negative integer, read into the type the model uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Nat<T>(pub T);

impl From<Uuid> for Id {
    fn from(id: Uuid) -> Id {
        Id(id)
    }
}

impl From<Timestamp> for At {
    fn from(t: Timestamp) -> At {
        At(t)
    }
}

fn uuid_text(text: &str) -> Result<Uuid, BoxDynError> {
    Ok(Uuid::parse_str(text)?)
}

// PostgreSQL: `Id`, `Token` and `At` are the types sqlx already speaks.
macro_rules! postgres_as {
    ($newtype:ident, $inner:ty) => {
        impl Type<Postgres> for $newtype {
            fn type_info() -> PgTypeInfo {
                <$inner as Type<Postgres>>::type_info()
            }
        }
        impl PgHasArrayType for $newtype {
            fn array_type_info() -> PgTypeInfo {
                <$inner as PgHasArrayType>::array_type_info()
            }
        }
        impl Encode<'_, Postgres> for $newtype {
            fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
                <$inner as Encode<Postgres>>::encode_by_ref(&self.0, buf)
            }
        }
        impl<'r> Decode<'r, Postgres> for $newtype {
            fn decode(value: PgValueRef<'r>) -> Result<$newtype, BoxDynError> {
                <$inner as Decode<Postgres>>::decode(value).map($newtype)
            }
        }
    };
}

postgres_as!(Id, Uuid);
postgres_as!(Token, Uuid);
postgres_as!(At, Timestamp);

/// The first byte of `jsonb` in PostgreSQL's binary format: its version.
const JSONB_VERSION: u8 = 1;

impl Type<Postgres> for Json {
    fn type_info() -> PgTypeInfo {
        PgTypeInfo::with_name("jsonb")
    }
    fn compatible(ty: &PgTypeInfo) -> bool {
        // Text too: a listing without bodies selects `''` in their place.
        [
            PgTypeInfo::with_name("jsonb"),
            PgTypeInfo::with_name("json"),
            <String as Type<Postgres>>::type_info(),
        ]
        .contains(ty)
            || <String as Type<Postgres>>::compatible(ty)
    }
}
impl PgHasArrayType for Json {
    fn array_type_info() -> PgTypeInfo {
        PgTypeInfo::with_name("_jsonb")
    }
}
impl Encode<'_, Postgres> for Json {
    fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
        buf.push(JSONB_VERSION);
        buf.extend_from_slice(self.0.as_bytes());
        Ok(IsNull::No)
    }
}
impl<'r> Decode<'r, Postgres> for Json {
    fn decode(value: PgValueRef<'r>) -> Result<Json, BoxDynError> {
        let is_jsonb = *value.type_info() == PgTypeInfo::with_name("jsonb");
        let mut bytes = value.as_bytes()?;
        if is_jsonb && value.format() == PgValueFormat::Binary {
            match bytes.split_first() {
                Some((&JSONB_VERSION, rest)) => bytes = rest,
                _ => return Err("jsonb of an unknown version".into()),
            }
        }
        Ok(Json(std::str::from_utf8(bytes)?.to_owned()))
    }
}

impl<T> Type<Postgres> for List<'_, T>
where
    T: PgHasArrayType,
{
    fn type_info() -> PgTypeInfo {
        T::array_type_info()
    }
}
impl<T> Encode<'_, Postgres> for List<'_, T>
where
    T: PgHasArrayType + for<'e> Encode<'e, Postgres> + Type<Postgres>,
{
    fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
        <&[T] as Encode<Postgres>>::encode_by_ref(&self.0, buf)
    }
}

impl<T> Type<Postgres> for Nat<T> {
    fn type_info() -> PgTypeInfo {
        <i64 as Type<Postgres>>::type_info()
    }
    fn compatible(ty: &PgTypeInfo) -> bool {
        <i16 as Type<Postgres>>::compatible(ty)
            || <i32 as Type<Postgres>>::compatible(ty)
            || <i64 as Type<Postgres>>::compatible(ty)
    }
}
impl<'r, T: TryFrom<i64>> Decode<'r, Postgres> for Nat<T> {
    fn decode(value: PgValueRef<'r>) -> Result<Nat<T>, BoxDynError> {
        let ty = value.type_info().into_owned();
        let n: i64 = if ty == <i16 as Type<Postgres>>::type_info() {
            <i16 as Decode<Postgres>>::decode(value)?.into()
        } else if ty == <i32 as Type<Postgres>>::type_info() {
            <i32 as Decode<Postgres>>::decode(value)?.into()
        } else {
            <i64 as Decode<Postgres>>::decode(value)?
        };
        nat(n)
    }
}

fn nat<T: TryFrom<i64>>(n: i64) -> Result<Nat<T>, BoxDynError> {
    T::try_from(n)
        .map(Nat)
        .map_err(|_| format!("stored integer {n} is out of range").into())
}

// SQLite: text, integers and JSON text.

fn text<'q>(value: String) -> SqliteArgumentValue<'q> {
    SqliteArgumentValue::Text(std::borrow::Cow::Owned(value))
}

impl Type<Sqlite> for Id {
    fn type_info() -> SqliteTypeInfo {
        <String as Type<Sqlite>>::type_info()
    }
}
impl<'q> Encode<'q, Sqlite> for Id {
    fn encode_by_ref(
        &self,
        args: &mut Vec<SqliteArgumentValue<'q>>,
    ) -> Result<IsNull, BoxDynError> {
        args.push(text(self.0.hyphenated().to_string()));
        Ok(IsNull::No)
    }
}
impl<'r> Decode<'r, Sqlite> for Id {
    fn decode(value: SqliteValueRef<'r>) -> Result<Id, BoxDynError> {
        uuid_text(<&str as Decode<Sqlite>>::decode(value)?).map(Id)
    }
}

impl Type<Sqlite> for Token {
    fn type_info() -> SqliteTypeInfo {
        <String as Type<Sqlite>>::type_info()
    }
}
impl<'q> Encode<'q, Sqlite> for Token {
    fn encode_by_ref(
        &self,
        args: &mut Vec<SqliteArgumentValue<'q>>,
    ) -> Result<IsNull, BoxDynError> {
        args.push(text(self.0.simple().to_string()));
        Ok(IsNull::No)
    }
}
impl<'r> Decode<'r, Sqlite> for Token {
    fn decode(value: SqliteValueRef<'r>) -> Result<Token, BoxDynError> {
        uuid_text(<&str as Decode<Sqlite>>::decode(value)?).map(Token)
    }
}

impl Type<Sqlite> for At {
    fn type_info() -> SqliteTypeInfo {
        <i64 as Type<Sqlite>>::type_info()
    }
}
impl<'q> Encode<'q, Sqlite> for At {
    fn encode_by_ref(
        &self,
        args: &mut Vec<SqliteArgumentValue<'q>>,
    ) -> Result<IsNull, BoxDynError> {
        args.push(SqliteArgumentValue::Int64(self.0.timestamp_micros()));
        Ok(IsNull::No)
    }
}
impl<'r> Decode<'r, Sqlite> for At {
    fn decode(value: SqliteValueRef<'r>) -> Result<At, BoxDynError> {
        let micros = <i64 as Decode<Sqlite>>::decode(value)?;
        Timestamp::from_timestamp_micros(micros)
            .map(At)
            .ok_or_else(|| format!("stored time {micros} is out of range").into())
    }
}

impl Type<Sqlite> for Json {
    fn type_info() -> SqliteTypeInfo {
        <String as Type<Sqlite>>::type_info()
    }
}
impl<'q> Encode<'q, Sqlite> for Json {
    fn encode_by_ref(
        &self,
        args: &mut Vec<SqliteArgumentValue<'q>>,
    ) -> Result<IsNull, BoxDynError> {
        args.push(text(self.0.clone()));
        Ok(IsNull::No)
    }
}
impl<'r> Decode<'r, Sqlite> for Json {
    fn decode(value: SqliteValueRef<'r>) -> Result<Json, BoxDynError> {
        <String as Decode<Sqlite>>::decode(value).map(Json)
    }
}

impl<T> Type<Sqlite> for List<'_, T> {
    fn type_info() -> SqliteTypeInfo {
        <String as Type<Sqlite>>::type_info()
    }
}
impl<'q, T: serde::Serialize> Encode<'q, Sqlite> for List<'_, T> {
    fn encode_by_ref(
        &self,
        args: &mut Vec<SqliteArgumentValue<'q>>,
    ) -> Result<IsNull, BoxDynError> {
        args.push(text(serde_json::to_string(self.0)?));
        Ok(IsNull::No)
    }
}

impl<T> Type<Sqlite> for Nat<T> {
    fn type_info() -> SqliteTypeInfo {
        <i64 as Type<Sqlite>>::type_info()
    }
}
impl<'r, T: TryFrom<i64>> Decode<'r, Sqlite> for Nat<T> {
    fn decode(value: SqliteValueRef<'r>) -> Result<Nat<T>, BoxDynError> {
        nat(<i64 as Decode<Sqlite>>::decode(value)?)
    }
}

/// Ids in a [`List`] serialize as the text SQLite keeps.
impl serde::Serialize for Id {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

/// Tokens in a batch of rows serialize in their simple form (32 hex
/// digits), as SQLite keeps them; PostgreSQL reads either form.
impl serde::Serialize for Token {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.0.simple())
    }
}

/// A count or limit as the databases store it (`BIGINT`); values past
/// `i64::MAX` (no real limit is) are kept as the largest.
pub fn big(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}
