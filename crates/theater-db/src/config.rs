//! `[interfaces.db]`: which database, SQLite (a file) or PostgreSQL (a server).

use std::path::PathBuf;
use std::str::FromStr;

use serde::Deserialize;

/// What `[interfaces.db]` holds.
///
/// ```toml
/// [interfaces.db]
/// file = "inventory.sqlite"   # SQLite (the default): optional, relative to the manifest;
///                             # default db/NAME.sqlite under the host's data directory
///
/// # or PostgreSQL:
/// url = "postgres://theater@127.0.0.1:5432/app"   # never with a password in it
/// password_env = "THEATER_PG_PASSWORD"            # optional: the variable holding it
/// password_file = "/run/secrets/theater-pg"       # optional: a file only its owner reads
/// password_secret = "PG_PASSWORD"                 # optional: a secret of [secrets]
/// schema = "inventory"                            # optional; default theater_NAME
/// # TLS: add ?sslmode=require to the url; the server's certificate is checked against
/// # Mozilla's roots and this file's (PEM, relative to the manifest)
/// ca_file = "db-ca.pem"
///
/// # or a PostgreSQL connection the host's configuration names ([databases.main] there
/// # holds url, password_* and ca_file; the manifest names it, and its schema if not the
/// # default):
/// connection = "main"
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DbConfig {
    /// The SQLite file, relative to the manifest.
    pub file: Option<PathBuf>,
    /// A PostgreSQL connection of the host's configuration (`[databases.NAME]`), by name:
    /// the manifest then holds no URL, and every host that may run the actor names the
    /// same server under that name.
    pub connection: Option<String>,
    /// The PostgreSQL server and database (`postgres://user@host:port/dbname`), whose user
    /// creates each actor's role and schema.
    pub url: Option<String>,
    /// The environment variable that holds the password of the URL's user.
    pub password_env: Option<String>,
    /// The file that holds it (its first line), readable by its owner only.
    pub password_file: Option<PathBuf>,
    /// The secret that holds it (a name of the host's or the manifest's `[secrets]`): read
    /// again for each set-up connection, so a rotated password needs no restart.
    pub password_secret: Option<String>,
    /// The actor's schema on the server (default `theater_<actor>`).
    pub schema: Option<String>,
    /// More certificate authorities to trust for TLS to the server (PEM), relative to the
    /// manifest.
    pub ca_file: Option<PathBuf>,
}

/// A database as a manifest names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Backend {
    /// An SQLite file (`None`: the default path under the data directory).
    Sqlite(Option<PathBuf>),
    /// A PostgreSQL connection of the host's configuration, by name.
    Named {
        /// The connection's name (`[databases.NAME]` of the host's configuration).
        connection: String,
        /// The actor's schema, if not the default.
        schema: Option<String>,
    },
    /// A PostgreSQL server.
    Postgres {
        /// The URL, without a password.
        url: String,
        /// Where the password comes from.
        password: PasswordSource,
        /// The actor's schema, if not the default.
        schema: Option<String>,
        /// More roots for TLS (as written: relative to the manifest).
        ca_file: Option<PathBuf>,
    },
}

/// Where the password of a PostgreSQL URL's user comes from: never the manifest itself.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum PasswordSource {
    /// No password (trust or peer authentication).
    None,
    /// An environment variable of the host.
    Env(String),
    /// A file (relative paths start at the manifest).
    File(PathBuf),
    /// A secret of the host's or the manifest's `[secrets]`, by name, and once the actor's
    /// secrets are known, where it comes from.
    Secret {
        /// The secret's name.
        name: String,
        /// Its source (`None` until resolved against the actor's secrets).
        source: Option<theater_wasm::secrets::Source>,
    },
}

impl PasswordSource {
    /// The password, read now; a clear error naming the variable or file if it cannot be.
    pub fn read(&self) -> Result<Option<String>, String> {
        match self {
            PasswordSource::None => Ok(None),
            PasswordSource::Env(var) => match std::env::var(var) {
                Ok(v) if !v.is_empty() => Ok(Some(v)),
                Ok(_) => Err(format!(
                    "the environment variable {var} (password_env) is empty"
                )),
                Err(_) => Err(format!(
                    "the environment variable {var} (password_env) is not set"
                )),
            },
            PasswordSource::Secret { name, source } => {
                let source = source
                    .as_ref()
                    .ok_or_else(|| format!("secret {name} (password_secret) is not declared"))?;
                let value = source.read(name).map_err(|e| e.to_string())?;
                let text = std::str::from_utf8(&value)
                    .map_err(|_| format!("secret {name} (password_secret) is not UTF-8 text"))?;
                Ok(Some(text.to_string()))
            }
            PasswordSource::File(path) => {
                theater_wasm::secrets::owner_only(path, "the password_file")?;
                let text = std::fs::read_to_string(path)
                    .map_err(|e| format!("the password_file {}: {e}", path.display()))?;
                let line = text.lines().next().unwrap_or("").trim_end_matches('\r');
                if line.is_empty() {
                    return Err(format!("the password_file {} is empty", path.display()));
                }
                Ok(Some(line.to_string()))
            }
        }
    }
}

impl DbConfig {
    /// Which database this section names, checked: an error names the field and what is
    /// wrong with it.
    pub fn backend(&self) -> Result<Backend, (&'static str, String)> {
        if let Some(schema) = &self.schema {
            check_schema(schema).map_err(|e| ("schema", e))?;
        }
        if let Some(connection) = &self.connection {
            check_connection_name(connection).map_err(|e| ("connection", e))?;
            for (field, set) in [
                ("file", self.file.is_some()),
                ("url", self.url.is_some()),
                ("password_env", self.password_env.is_some()),
                ("password_file", self.password_file.is_some()),
                ("password_secret", self.password_secret.is_some()),
                ("ca_file", self.ca_file.is_some()),
            ] {
                if set {
                    return Err((
                        field,
                        format!(
                            "`connection` names a database of the host's configuration, which holds its url, password and ca_file: remove {field} (or `connection`)"
                        ),
                    ));
                }
            }
            return Ok(Backend::Named {
                connection: connection.clone(),
                schema: self.schema.clone(),
            });
        }
        let Some(url) = &self.url else {
            for (field, set) in [
                ("password_env", self.password_env.is_some()),
                ("password_file", self.password_file.is_some()),
                ("password_secret", self.password_secret.is_some()),
                ("schema", self.schema.is_some()),
                ("ca_file", self.ca_file.is_some()),
            ] {
                if set {
                    return Err((
                        field,
                        format!(
                            "{field} is for PostgreSQL: give `url` (or `connection`) too, or remove it for SQLite"
                        ),
                    ));
                }
            }
            return Ok(Backend::Sqlite(self.file.clone()));
        };
        if self.file.is_some() {
            return Err((
                "file",
                "`file` (SQLite) and `url` (PostgreSQL) name two databases: keep one".into(),
            ));
        }
        let config = postgres_config(url).map_err(|e| ("url", e))?;
        if config.get_password().is_some() {
            return Err((
                "url",
                "the url holds a password, which must not be written here: give it in an environment variable (password_env), a file (password_file) or a secret (password_secret)".into(),
            ));
        }
        let once = |field| {
            Err((
                field,
                "give the password once: password_env, password_file or password_secret".into(),
            ))
        };
        let password = match (
            &self.password_env,
            &self.password_file,
            &self.password_secret,
        ) {
            (Some(var), None, None) if var.is_empty() => {
                return Err(("password_env", "an empty variable name".into()));
            }
            (Some(var), None, None) => PasswordSource::Env(var.clone()),
            (None, Some(file), None) => PasswordSource::File(file.clone()),
            (None, None, Some(name)) => {
                theater_wasm::secrets::check_name(name).map_err(|e| ("password_secret", e))?;
                PasswordSource::Secret {
                    name: name.clone(),
                    source: None,
                }
            }
            (None, None, None) => PasswordSource::None,
            // Two or three given: the field named is the last of them.
            (_, _, Some(_)) => return once("password_secret"),
            (_, _, None) => return once("password_file"),
        };
        if self.ca_file.is_some() && !tls(&config) {
            return Err((
                "ca_file",
                "ca_file is for TLS: add ?sslmode=require to the url".into(),
            ));
        }
        Ok(Backend::Postgres {
            url: url.clone(),
            password,
            schema: self.schema.clone(),
            ca_file: self.ca_file.clone(),
        })
    }
}

/// Checks that `schema` is one an actor may own.
fn check_schema(schema: &str) -> Result<(), String> {
    let plain = schema.len() <= 63
        && schema.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && schema
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !schema.starts_with("pg_")
        && schema != crate::postgres::HOST_SCHEMA;
    if plain {
        Ok(())
    } else {
        Err(format!(
            "{schema:?} is not a schema an actor may own: lower case letters, digits and _, at most 63, not pg_* nor theater_host"
        ))
    }
}

/// Checks that `name` may name a connection: 1 to 64 letters, digits, `_` or `-`, starting
/// with a letter.
pub fn check_connection_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not a connection name (1 to 64 letters, digits, `_` or `-`, starting with a letter)"
        ))
    }
}

/// A PostgreSQL connection of the host's configuration (`[databases.NAME]` of the file
/// given to `theater run --config`), which manifests name with `connection = "NAME"`.
///
/// ```toml
/// [databases.main]
/// url = "postgres://theater@db.internal:5432/app"   # never with a password in it
/// password_secret = "PG_PASSWORD"                   # or password_env, password_file
/// ca_file = "db-ca.pem"                             # relative to the host's config
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectionConfig {
    /// The server and database, as [`DbConfig::url`].
    pub url: String,
    /// As [`DbConfig::password_env`].
    pub password_env: Option<String>,
    /// As [`DbConfig::password_file`], relative to the host's configuration.
    pub password_file: Option<PathBuf>,
    /// As [`DbConfig::password_secret`]: a secret of the host's `[secrets]`.
    pub password_secret: Option<String>,
    /// As [`DbConfig::ca_file`], relative to the host's configuration.
    pub ca_file: Option<PathBuf>,
}

/// A checked PostgreSQL connection of the host's configuration, its paths absolute.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Connection {
    /// The URL, without a password.
    pub url: String,
    /// Where the password comes from (a file's path resolved).
    pub password: PasswordSource,
    /// More roots for TLS (resolved).
    pub ca_file: Option<PathBuf>,
}

impl ConnectionConfig {
    /// The connection, checked as a manifest's `url` is, with relative paths resolved
    /// against `base` (the configuration's directory): an error names the field.
    pub fn resolve(&self, base: &std::path::Path) -> Result<Connection, (&'static str, String)> {
        let as_manifest = DbConfig {
            url: Some(self.url.clone()),
            password_env: self.password_env.clone(),
            password_file: self.password_file.clone(),
            password_secret: self.password_secret.clone(),
            ca_file: self.ca_file.clone(),
            ..DbConfig::default()
        };
        let Backend::Postgres {
            url,
            password,
            ca_file,
            ..
        } = as_manifest.backend()?
        else {
            unreachable!("a url names PostgreSQL");
        };
        let password = match password {
            PasswordSource::File(f) => PasswordSource::File(base.join(f)),
            other => other,
        };
        Ok(Connection {
            url,
            password,
            ca_file: ca_file.map(|f| base.join(f)),
        })
    }
}

/// Whether connections to the server go over TLS: only with `sslmode=require` (and then
/// always with the server's certificate checked). The default, `prefer`, connects in the
/// clear: a TLS attempt whose certificate could not be checked would fail, not fall back.
pub(crate) fn tls(config: &tokio_postgres::Config) -> bool {
    config.get_ssl_mode() == tokio_postgres::config::SslMode::Require
}

/// The connection settings of `url`, checked for what this host supports.
pub(crate) fn postgres_config(url: &str) -> Result<tokio_postgres::Config, String> {
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return Err("not a PostgreSQL URL (postgres://user@host:port/dbname)".into());
    }
    let config = tokio_postgres::Config::from_str(url)
        .map_err(|e| format!("not a valid PostgreSQL URL: {e}"))?;
    if config.get_dbname().is_none() {
        return Err("the URL names no database (postgres://user@host:port/dbname)".into());
    }
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(toml: &str) -> DbConfig {
        toml::from_str(toml).unwrap_or_else(|e| panic!("{toml}: {e}"))
    }

    #[test]
    fn a_manifest_names_sqlite_or_postgres_never_a_password() {
        assert_eq!(config("").backend(), Ok(Backend::Sqlite(None)));
        let pg =
            config("url = \"postgres://theater@127.0.0.1:5432/app\"\npassword_env = \"PG_PW\"");
        assert_eq!(
            pg.backend(),
            Ok(Backend::Postgres {
                url: "postgres://theater@127.0.0.1:5432/app".into(),
                password: PasswordSource::Env("PG_PW".into()),
                schema: None,
                ca_file: None,
            })
        );
        let refused = [
            (
                "url = \"postgres://u:hunter2@127.0.0.1/app\"",
                "url",
                "password",
            ),
            ("url = \"mysql://u@h/app\"", "url", "not a PostgreSQL URL"),
            // A URL that does not parse is not quoted: it may hold a password.
            (
                "url = \"postgres://u:hunter2@h/app?sslmode=verify-full\"",
                "url",
                "not a valid PostgreSQL URL",
            ),
            (
                "password_secret = \"PG\"",
                "password_secret",
                "for PostgreSQL",
            ),
            ("url = \"postgres://u@h\"", "url", "names no database"),
            (
                "url = \"postgres://u@h/app\"\nca_file = \"ca.pem\"",
                "ca_file",
                "sslmode=require",
            ),
            (
                "file = \"x.db\"\nurl = \"postgres://u@h/app\"",
                "file",
                "keep one",
            ),
            ("password_env = \"X\"", "password_env", "for PostgreSQL"),
            (
                "url = \"postgres://u@h/app\"\nschema = \"Bad-Name\"",
                "schema",
                "not a schema",
            ),
            (
                "url = \"postgres://u@h/app\"\nschema = \"theater_host\"",
                "schema",
                "not a schema",
            ),
            (
                "url = \"postgres://u@h/app\"\npassword_env = \"A\"\npassword_file = \"b\"",
                "password_file",
                "once",
            ),
        ];
        for (toml, field, says) in refused {
            let (f, message) = config(toml).backend().unwrap_err();
            assert_eq!(f, field, "{toml}: {message}");
            assert!(message.contains(says), "{toml}: {message}");
            assert!(!message.contains("hunter2"), "{message}");
        }
    }

    #[test]
    fn a_manifest_may_name_a_connection_of_the_hosts_configuration_instead() {
        assert_eq!(
            config("connection = \"main\"\nschema = \"shop\"").backend(),
            Ok(Backend::Named {
                connection: "main".into(),
                schema: Some("shop".into()),
            })
        );
        for (toml, field) in [
            ("connection = \"main\"\nurl = \"postgres://u@h/app\"", "url"),
            ("connection = \"main\"\nfile = \"x.db\"", "file"),
            (
                "connection = \"main\"\npassword_env = \"X\"",
                "password_env",
            ),
            ("connection = \"main\"\nca_file = \"ca.pem\"", "ca_file"),
            ("connection = \"../main\"", "connection"),
            ("connection = \"\"", "connection"),
            ("connection = \"main\"\nschema = \"pg_x\"", "schema"),
        ] {
            let (f, message) = config(toml).backend().unwrap_err();
            assert_eq!(f, field, "{toml}: {message}");
        }
        // The host's side: checked as a manifest's url, paths from the configuration's
        // directory.
        let host: ConnectionConfig = toml::from_str(
            "url = \"postgres://u@h/app?sslmode=require\"\npassword_file = \"pw\"\nca_file = \"ca.pem\"",
        )
        .unwrap();
        let base = std::path::Path::new("/etc/theater");
        assert_eq!(
            host.resolve(base),
            Ok(Connection {
                url: "postgres://u@h/app?sslmode=require".into(),
                password: PasswordSource::File(base.join("pw")),
                ca_file: Some(base.join("ca.pem")),
            })
        );
        let bad: ConnectionConfig = toml::from_str("url = \"postgres://u:hunter2@h/app\"").unwrap();
        let (field, message) = bad.resolve(base).unwrap_err();
        assert_eq!(field, "url");
        assert!(!message.contains("hunter2"), "{message}");
        assert!(
            toml::from_str::<ConnectionConfig>("url = \"postgres://u@h/app\"\nschema = \"s\"")
                .is_err()
        );
    }

    #[test]
    fn a_password_comes_from_the_environment_or_a_private_file() {
        let missing = PasswordSource::Env("THEATER_TEST_NO_SUCH_VARIABLE_1234".into());
        assert!(
            missing
                .read()
                .unwrap_err()
                .contains("THEATER_TEST_NO_SUCH_VARIABLE_1234")
        );
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pw");
        std::fs::write(&file, "hunter2\n").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
            let e = PasswordSource::File(file.clone()).read().unwrap_err();
            assert!(e.contains("chmod 600") && !e.contains("hunter2"), "{e}");
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        assert_eq!(
            PasswordSource::File(file).read().unwrap(),
            Some("hunter2".to_string())
        );
    }
}
