//! Bootstrap tokens, as kubeadm makes them: `<id>.<secret>` with a
//! six-character id and a sixteen-character secret (`[a-z0-9]`), valid
//! until an expiry. A node presents one (as a bearer token) to ask for its
//! certificate and nothing else; it authenticates as
//! `system:bootstrap:<id>` in the group `system:bootstrappers`.
//!
//! The tokens live in one file, `<pki>/bootstrap-tokens`, which
//! `rudder-controlplane init` and `rudder-controlplane token ...` write and
//! the server reads on each use: a token made while the server runs (or
//! before it starts) works at once, a deleted one stops working at once.
//! The file holds the id, the SHA-256 of the secret (never the secret), the
//! expiry (Unix seconds) and a description, one token a line:
//! `id,sha256hex,expires,description`.

use std::{
    io::Read,
    path::{Path, PathBuf},
};

use sha2::{Digest, Sha256};
use time::{Duration, OffsetDateTime, format_description::well_known::Rfc3339};

use super::{AuthError, UserInfo};
use crate::pki::{self, PkiError};

/// The group every bootstrap token's user is in.
pub const BOOTSTRAPPERS_GROUP: &str = "system:bootstrappers";
/// The prefix of a bootstrap token's user name.
pub const BOOTSTRAP_USER_PREFIX: &str = "system:bootstrap:";
/// The file's name in the PKI directory.
pub const TOKENS_FILE: &str = "bootstrap-tokens";
/// How long a token made without `--ttl` stays valid (kubeadm's default).
pub const DEFAULT_TTL: Duration = Duration::hours(24);

const ID_LEN: usize = 6;
const SECRET_LEN: usize = 16;
const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";

/// A token's id and secret.
#[derive(Clone, PartialEq, Eq)]
pub struct BootstrapToken {
    /// The public part: names the token in `list` and in the user name.
    pub id: String,
    secret: String,
}

impl std::fmt::Debug for BootstrapToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BootstrapToken")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Display for BootstrapToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.id, self.secret)
    }
}

impl BootstrapToken {
    /// Parses `<id>.<secret>`; `None` when it does not have that shape
    /// (then it is not a bootstrap token at all).
    pub fn parse(text: &str) -> Option<Self> {
        let (id, secret) = text.split_once('.')?;
        let valid = |part: &str, len: usize| {
            part.len() == len && part.bytes().all(|b| ALPHABET.contains(&b))
        };
        (valid(id, ID_LEN) && valid(secret, SECRET_LEN)).then(|| Self {
            id: id.to_owned(),
            secret: secret.to_owned(),
        })
    }

    /// A new random token.
    ///
    /// # Errors
    /// When the system's random source cannot be read.
    pub fn generate() -> std::io::Result<Self> {
        let mut bytes = [0u8; ID_LEN + SECRET_LEN];
        std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
        // 36 symbols: rejection would be exact, the bias of `% 36` on a byte
        // (256 = 7*36 + 4) is under 2% per symbol and the secret keeps over
        // 80 bits; still, draw again for the 4 biased values.
        let mut text = String::with_capacity(bytes.len());
        let mut extra = [0u8; 1];
        for mut b in bytes {
            while b >= 252 {
                std::fs::File::open("/dev/urandom")?.read_exact(&mut extra)?;
                b = extra[0];
            }
            text.push(char::from(ALPHABET[usize::from(b) % ALPHABET.len()]));
        }
        let (id, secret) = text.split_at(ID_LEN);
        Ok(Self {
            id: id.to_owned(),
            secret: secret.to_owned(),
        })
    }

    fn secret_hash(&self) -> String {
        hex(&Sha256::digest(self.secret.as_bytes()))
    }
}

/// A token as the file knows it (no secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecord {
    /// The id.
    pub id: String,
    secret_sha256: String,
    /// When it stops working.
    pub expires: OffsetDateTime,
    /// What it is for.
    pub description: String,
}

impl TokenRecord {
    /// The expiry as RFC 3339.
    pub fn expires_rfc3339(&self) -> String {
        self.expires
            .format(&Rfc3339)
            .unwrap_or_else(|_| self.expires.unix_timestamp().to_string())
    }
}

/// Why the tokens file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TokensError {
    /// Reading or writing failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Writing failed.
    #[error(transparent)]
    Write(#[from] PkiError),
    /// A line is malformed.
    #[error("{path} line {line}: {reason}")]
    Line {
        /// The file.
        path: PathBuf,
        /// 1-based.
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// No token with this id.
    #[error("no bootstrap token with id {0:?}")]
    NotFound(String),
    /// A TTL that is zero or absurd.
    #[error("a token's TTL must be between 1 second and 10 years, not {0}")]
    BadTtl(String),
}

/// The bootstrap tokens of one PKI directory.
#[derive(Debug, Clone)]
pub struct BootstrapTokens {
    path: PathBuf,
}

impl BootstrapTokens {
    /// The tokens file in `pki_dir`.
    pub fn in_dir(pki_dir: &Path) -> Self {
        Self {
            path: pki_dir.join(TOKENS_FILE),
        }
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every token (expired ones too, until deleted).
    ///
    /// # Errors
    /// When the file exists but cannot be read or is malformed.
    pub fn list(&self) -> Result<Vec<TokenRecord>, TokensError> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => {
                return Err(TokensError::Io {
                    path: self.path.clone(),
                    source,
                });
            }
        };
        let mut records = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = |reason: &str| TokensError::Line {
                path: self.path.clone(),
                line: n + 1,
                reason: reason.to_owned(),
            };
            let mut fields = line.splitn(4, ',');
            let (Some(id), Some(hash), Some(expires)) =
                (fields.next(), fields.next(), fields.next())
            else {
                return Err(bad("expected id,sha256,expires[,description]"));
            };
            let expires = expires
                .parse::<i64>()
                .ok()
                .and_then(|secs| OffsetDateTime::from_unix_timestamp(secs).ok())
                .ok_or_else(|| bad("the expiry is not a Unix time"))?;
            if id.len() != ID_LEN || hash.len() != 64 {
                return Err(bad("not a token id and a SHA-256"));
            }
            records.push(TokenRecord {
                id: id.to_owned(),
                secret_sha256: hash.to_owned(),
                expires,
                description: fields.next().unwrap_or_default().to_owned(),
            });
        }
        Ok(records)
    }

    /// Makes a token valid for `ttl` and records it.
    ///
    /// # Errors
    /// When the TTL is out of range or the file cannot be written.
    pub fn create(&self, ttl: Duration, description: &str) -> Result<BootstrapToken, TokensError> {
        if ttl <= Duration::ZERO || ttl > Duration::days(3650) {
            return Err(TokensError::BadTtl(format!("{ttl}")));
        }
        let mut records = self.list()?;
        let token = loop {
            let token = BootstrapToken::generate().map_err(|source| TokensError::Io {
                path: "/dev/urandom".into(),
                source,
            })?;
            if !records.iter().any(|r| r.id == token.id) {
                break token;
            }
        };
        records.push(TokenRecord {
            id: token.id.clone(),
            secret_sha256: token.secret_hash(),
            expires: OffsetDateTime::now_utc() + ttl,
            // One line per token: a description cannot break the format.
            description: description.replace(['\n', '\r'], " "),
        });
        self.write(&records)?;
        Ok(token)
    }

    /// Removes the token with this id (or the id of a full token).
    ///
    /// # Errors
    /// When there is none or the file cannot be written.
    pub fn delete(&self, id_or_token: &str) -> Result<(), TokensError> {
        let id = id_or_token.split('.').next().unwrap_or_default();
        let mut records = self.list()?;
        let before = records.len();
        records.retain(|r| r.id != id);
        if records.len() == before {
            return Err(TokensError::NotFound(id.to_owned()));
        }
        self.write(&records)
    }

    fn write(&self, records: &[TokenRecord]) -> Result<(), TokensError> {
        let mut text = String::from(
            "# rudder bootstrap tokens: id,sha256(secret),expires(unix),description\n",
        );
        for r in records {
            text.push_str(&format!(
                "{},{},{},{}\n",
                r.id,
                r.secret_sha256,
                r.expires.unix_timestamp(),
                r.description
            ));
        }
        pki::write_private(&self.path, &text)?;
        Ok(())
    }

    /// Who `token` is, if it is a bootstrap token. `Ok(None)`: not shaped
    /// like one (another authenticator may know it).
    ///
    /// # Errors
    /// A bootstrap-shaped token that is unknown or expired, or a tokens
    /// file that cannot be read.
    pub fn authenticate(&self, token: &str) -> Result<Option<UserInfo>, AuthError> {
        let Some(token) = BootstrapToken::parse(token) else {
            return Ok(None);
        };
        let records = self.list().map_err(|err| {
            tracing::warn!(error = %err, "the bootstrap tokens cannot be read");
            AuthError::BadToken
        })?;
        let hash = token.secret_hash();
        let Some(record) = records
            .iter()
            .find(|r| r.id == token.id && r.secret_sha256 == hash)
        else {
            return Err(AuthError::BadToken);
        };
        if record.expires <= OffsetDateTime::now_utc() {
            return Err(AuthError::ExpiredToken(record.expires_rfc3339()));
        }
        Ok(Some(UserInfo {
            name: format!("{BOOTSTRAP_USER_PREFIX}{}", token.id),
            uid: String::new(),
            groups: vec![BOOTSTRAPPERS_GROUP.to_owned()],
        }))
    }
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}

/// Parses a TTL like `24h`, `30m`, `90s`, `7d` (or plain seconds).
///
/// # Errors
/// When it is not a positive number with one of those units.
pub fn parse_ttl(text: &str) -> Result<Duration, TokensError> {
    let bad = || TokensError::BadTtl(format!("{text:?} (use e.g. 24h, 30m, 90s, 7d)"));
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(at) => text.split_at(at),
        None => (text, "s"),
    };
    let n: i64 = number.parse().map_err(|_| bad())?;
    let ttl = match unit {
        "s" => Duration::seconds(n),
        "m" => Duration::minutes(n),
        "h" => Duration::hours(n),
        "d" => Duration::days(n),
        _ => return Err(bad()),
    };
    if ttl <= Duration::ZERO || ttl > Duration::days(3650) {
        return Err(bad());
    }
    Ok(ttl)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_have_kubeadms_shape_and_authenticate_until_deleted() {
        let dir = tempfile::tempdir().expect("tempdir");
        let tokens = BootstrapTokens::in_dir(dir.path());
        let token = tokens.create(DEFAULT_TTL, "test").expect("created");
        let text = token.to_string();
        assert_eq!(BootstrapToken::parse(&text), Some(token.clone()));
        assert_eq!(text.len(), 23);
        let user = tokens
            .authenticate(&text)
            .expect("valid")
            .expect("a bootstrap token");
        assert_eq!(user.name, format!("system:bootstrap:{}", token.id));
        assert_eq!(user.groups, [BOOTSTRAPPERS_GROUP]);
        // The file never holds the secret.
        let file = std::fs::read_to_string(tokens.path()).expect("file");
        assert!(!file.contains(&text[7..]), "{file}");
        // A wrong secret for a known id is refused.
        let wrong = format!("{}.{}", token.id, "0000000000000000");
        assert_eq!(tokens.authenticate(&wrong), Err(AuthError::BadToken));
        assert_eq!(tokens.authenticate("not-a-bootstrap-token"), Ok(None));
        tokens.delete(&token.id).expect("deleted");
        assert_eq!(tokens.authenticate(&text), Err(AuthError::BadToken));
        assert!(matches!(
            tokens.delete(&token.id),
            Err(TokensError::NotFound(_))
        ));
    }

    #[test]
    fn an_expired_token_says_so() {
        let dir = tempfile::tempdir().expect("tempdir");
        let tokens = BootstrapTokens::in_dir(dir.path());
        let token = tokens
            .create(Duration::seconds(1), "short")
            .expect("created");
        let mut records = tokens.list().expect("list");
        records[0].expires = OffsetDateTime::now_utc() - Duration::seconds(5);
        tokens.write(&records).expect("written");
        assert!(matches!(
            tokens.authenticate(&token.to_string()),
            Err(AuthError::ExpiredToken(_))
        ));
    }

    #[test]
    fn ttls_parse_with_units() {
        assert_eq!(parse_ttl("24h").expect("h"), Duration::hours(24));
        assert_eq!(parse_ttl("90").expect("s"), Duration::seconds(90));
        assert!(parse_ttl("0h").is_err());
        assert!(parse_ttl("1y").is_err());
        assert!(parse_ttl("-1h").is_err());
        assert!(tokens_file_shape_is_rejected_when_malformed());
    }

    fn tokens_file_shape_is_rejected_when_malformed() -> bool {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join(TOKENS_FILE), "abc\n").expect("write");
        BootstrapTokens::in_dir(dir.path()).list().is_err()
    }
}
