//! The secret value: AWS's JSON for database credentials, read into a [`DbSecret`], and the
//! pending version derived from the current one.

use coffer_crypto::SecretBytes;
use serde_json::{Map, Value};
use zeroize::Zeroize;

use super::{DbError, DbSecret, Engine, Strategy, TlsMode};

/// What the alternating-users rotation appends to the original user's name.
const CLONE_SUFFIX: &str = "_clone";

/// Reads a secret value: `engine`, `host`, `username` and `password` are required; `port`
/// (number or numeric string), `dbname`, `masterarn` and `ssl` are optional.
///
/// # Errors
/// [`DbError`] ([`DbErrorKind::InvalidSecret`](super::DbErrorKind::InvalidSecret)) naming the key that is missing or unusable.
pub fn parse_secret(json: &[u8]) -> Result<DbSecret, DbError> {
    let mut map = parse_object(json)?;
    let engine_name = required_str(&map, "engine")?.to_owned();
    let engine = engine_of(&engine_name)?;
    let host = required_str(&map, "host")?.to_owned();
    let port = port_of(&map, engine)?;
    let username = required_str(&map, "username")?.to_owned();
    check_name(&username)?;
    let password = take_password(&mut map)?;
    Ok(DbSecret {
        engine,
        engine_name,
        host,
        port,
        username,
        password,
        dbname: optional_str(&map, "dbname")?,
        master_arn: optional_str(&map, "masterarn")?,
        tls: tls_of(&map).unwrap_or(TlsMode::Preferred),
    })
}

/// Reads the superuser secret named by `user`'s `masterarn`. Only `username` and `password`
/// are required: a missing `engine`, `host` or `port` is taken from `user` (a master secret
/// holding only credentials, as RDS makes them), and so is `ssl`. The database connected to is
/// `user`'s `dbname` when it has one (as the PostgreSQL template does), else the master's.
///
/// # Errors
/// [`DbError`] ([`DbErrorKind::InvalidSecret`](super::DbErrorKind::InvalidSecret)) for a missing or unusable key or another engine family.
pub fn parse_master_secret(json: &[u8], user: &DbSecret) -> Result<DbSecret, DbError> {
    let mut map = parse_object(json)?;
    let (engine, engine_name) = match optional_str(&map, "engine")? {
        Some(name) => {
            let engine = engine_of(&name)?;
            if engine != user.engine {
                return Err(DbError::invalid_secret(format_args!(
                    "the master secret names engine '{name}' but the user secret '{}'",
                    user.engine_name
                )));
            }
            (engine, name)
        }
        None => (user.engine, user.engine_name.clone()),
    };
    let (host, port) = match optional_str(&map, "host")? {
        Some(host) => {
            let port = port_of(&map, engine)?;
            (host, port)
        }
        None => (user.host.clone(), user.port),
    };
    let username = required_str(&map, "username")?.to_owned();
    check_name(&username)?;
    let password = take_password(&mut map)?;
    let dbname = match &user.dbname {
        Some(db) => Some(db.clone()),
        None => optional_str(&map, "dbname")?,
    };
    Ok(DbSecret {
        engine,
        engine_name,
        host,
        port,
        username,
        password,
        dbname,
        master_arn: None,
        tls: tls_of(&map).unwrap_or(user.tls),
    })
}

/// The user name the alternating-users rotation sets next: `name_clone` for `name`, and `name`
/// for `name_clone` (the templates' `get_alt_username`).
///
/// # Errors
/// [`DbError`] ([`DbErrorKind::InvalidSecret`](super::DbErrorKind::InvalidSecret)) when the clone's name would exceed the engine's limit
/// (PostgreSQL: 63 bytes, which the server would silently truncate; MySQL/MariaDB: 80
/// characters, MariaDB's limit; MySQL 8 allows 32 and says so when creating the user).
pub fn alternate_username(engine: Engine, username: &str) -> Result<String, DbError> {
    if let Some(original) = username.strip_suffix(CLONE_SUFFIX)
        && !original.is_empty()
    {
        return Ok(original.to_owned());
    }
    let clone = format!("{username}{CLONE_SUFFIX}");
    let fits = match engine {
        Engine::Postgres => clone.len() <= 63,
        Engine::MySql => clone.chars().count() <= 80,
    };
    if !fits {
        let limit = match engine {
            Engine::Postgres => "63 bytes",
            Engine::MySql => "80 characters",
        };
        return Err(DbError::invalid_secret(format_args!(
            "cannot alternate user '{username}': with '{CLONE_SUFFIX}' appended the name would exceed {limit}"
        )));
    }
    Ok(clone)
}

/// The JSON of the pending version: the current value with `password` replaced by
/// `new_password` and, for alternating users, `username` toggled between `user` and
/// `user_clone`. Every other key is kept with its value.
///
/// # Errors
/// [`DbError`] ([`DbErrorKind::InvalidSecret`](super::DbErrorKind::InvalidSecret)) when the current value is not a usable database secret or the new
/// password is not UTF-8 text without NUL characters.
pub fn pending_value(
    current_json: &[u8],
    strategy: Strategy,
    new_password: &SecretBytes,
) -> Result<SecretBytes, DbError> {
    let current = parse_secret(current_json)?;
    let Some(new_password) = new_password.as_str() else {
        return Err(DbError::invalid_secret(
            "the new password is not UTF-8 text",
        ));
    };
    if new_password.contains('\0') {
        return Err(DbError::invalid_secret(
            "the new password contains a NUL character, which databases do not accept",
        ));
    }
    let mut map = parse_object(current_json)?;
    if let Some(Value::String(mut old)) = map.remove("password") {
        old.zeroize();
    }
    if strategy == Strategy::AlternatingUsers {
        let next = alternate_username(current.engine, &current.username)?;
        map.insert("username".into(), Value::String(next));
    }
    map.insert("password".into(), Value::String(new_password.to_owned()));
    // Room for the worst case (every character escaped as \u00XX), so the buffer holding the
    // password is never reallocated and left behind unzeroized.
    let mut out = Vec::with_capacity(current_json.len() + 6 * new_password.len() + 64);
    let written = serde_json::to_writer(&mut out, &map);
    if let Some(Value::String(mut copy)) = map.remove("password") {
        copy.zeroize();
    }
    let out = SecretBytes::new(out);
    written.map_err(|_| DbError::invalid_secret("the pending value could not be written"))?;
    Ok(out)
}

fn parse_object(json: &[u8]) -> Result<Map<String, Value>, DbError> {
    // serde_json's message names a line and column, never the text.
    match serde_json::from_slice::<Value>(json) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(DbError::invalid_secret(
            "the value is JSON but not an object",
        )),
        Err(e) => Err(DbError::invalid_secret(format_args!(
            "the value is not JSON ({e})"
        ))),
    }
}

fn engine_of(name: &str) -> Result<Engine, DbError> {
    Engine::from_name(name).ok_or_else(|| {
        DbError::invalid_secret(format_args!(
            "engine '{name}' is not one the built-in rotators handle (postgres, aurora-postgresql, mysql, mariadb, aurora-mysql)"
        ))
    })
}

fn required_str<'a>(map: &'a Map<String, Value>, key: &str) -> Result<&'a str, DbError> {
    match map.get(key) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s),
        Some(Value::String(_)) => Err(DbError::invalid_secret(format_args!("'{key}' is empty"))),
        Some(_) => Err(DbError::invalid_secret(format_args!(
            "'{key}' is not a string"
        ))),
        None => Err(DbError::invalid_secret(format_args!("'{key}' is missing"))),
    }
}

/// An optional string key; `null` and `""` count as absent.
fn optional_str(map: &Map<String, Value>, key: &str) -> Result<Option<String>, DbError> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(DbError::invalid_secret(format_args!(
            "'{key}' is not a string"
        ))),
    }
}

fn port_of(map: &Map<String, Value>, engine: Engine) -> Result<u16, DbError> {
    let port = match map.get("port") {
        None | Some(Value::Null) => return Ok(engine.default_port()),
        Some(Value::Number(n)) => n.as_u64().and_then(|p| u16::try_from(p).ok()),
        Some(Value::String(s)) => s.trim().parse::<u16>().ok(),
        Some(_) => None,
    };
    match port {
        Some(p) if p != 0 => Ok(p),
        _ => Err(DbError::invalid_secret("'port' is not a TCP port number")),
    }
}

/// `ssl` as the templates read it: a boolean, or the strings "true"/"false" in any case;
/// anything else (or nothing) means "try TLS, fall back to plain".
fn tls_of(map: &Map<String, Value>) -> Option<TlsMode> {
    match map.get("ssl")? {
        Value::Bool(true) => Some(TlsMode::Required),
        Value::Bool(false) => Some(TlsMode::Disabled),
        Value::String(s) if s.eq_ignore_ascii_case("true") => Some(TlsMode::Required),
        Value::String(s) if s.eq_ignore_ascii_case("false") => Some(TlsMode::Disabled),
        _ => Some(TlsMode::Preferred),
    }
}

fn check_name(username: &str) -> Result<(), DbError> {
    if username.contains('\0') {
        return Err(DbError::invalid_secret(
            "'username' contains a NUL character, which databases do not accept",
        ));
    }
    Ok(())
}

/// Moves the password out of the parsed JSON into a `SecretBytes` (no copy is left behind).
fn take_password(map: &mut Map<String, Value>) -> Result<SecretBytes, DbError> {
    match map.remove("password") {
        Some(Value::String(s)) => {
            let password = SecretBytes::from(s);
            if password.expose().contains(&0) {
                return Err(DbError::invalid_secret(
                    "'password' contains a NUL character, which databases do not accept",
                ));
            }
            Ok(password)
        }
        Some(mut other) => {
            scrub(&mut other);
            Err(DbError::invalid_secret("'password' is not a string"))
        }
        None => Err(DbError::invalid_secret("'password' is missing")),
    }
}

fn scrub(v: &mut Value) {
    match v {
        Value::String(s) => s.zeroize(),
        Value::Array(a) => a.iter_mut().for_each(scrub),
        Value::Object(o) => o.values_mut().for_each(scrub),
        _ => {}
    }
}
