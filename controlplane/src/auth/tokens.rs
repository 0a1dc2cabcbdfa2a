//! Static bearer tokens, in kube-apiserver's `--token-auth-file` format:
//! one `token,user,uid[,"group1,group2"]` line per token (CSV; `#` lines
//! and blank lines ignored).

use std::{collections::HashMap, path::Path};

use super::UserInfo;

/// Why a token file was refused.
#[derive(Debug, thiserror::Error)]
pub enum TokenFileError {
    /// The file could not be read.
    #[error("reading the token file {path}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A line is not `token,user,uid[,groups]`.
    #[error("token file {path} line {line}: {reason}")]
    Line {
        /// The file.
        path: String,
        /// 1-based line number.
        line: usize,
        /// What is wrong (never the token itself).
        reason: String,
    },
}

/// The tokens of a token file and who each one is.
#[derive(Default, Clone)]
pub struct StaticTokens {
    users: HashMap<String, UserInfo>,
}

impl std::fmt::Debug for StaticTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Tokens are secrets: say how many, never which.
        f.debug_struct("StaticTokens")
            .field("tokens", &self.users.len())
            .finish()
    }
}

impl StaticTokens {
    /// Reads a token file.
    ///
    /// # Errors
    /// When it cannot be read or a line is malformed.
    pub fn load(path: &Path) -> Result<Self, TokenFileError> {
        let text = std::fs::read_to_string(path).map_err(|source| TokenFileError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text).map_err(|(line, reason)| TokenFileError::Line {
            path: path.display().to_string(),
            line,
            reason,
        })
    }

    /// Parses a token file's text; a bad line's number and what is wrong.
    ///
    /// # Errors
    /// The first malformed line.
    pub fn parse(text: &str) -> Result<Self, (usize, String)> {
        let mut users = HashMap::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let fields = split_csv(line).map_err(|reason| (n + 1, reason))?;
            let [token, user, uid, rest @ ..] = fields.as_slice() else {
                return Err((n + 1, "expected token,user,uid[,\"groups\"]".into()));
            };
            if token.is_empty() || user.is_empty() {
                return Err((n + 1, "the token and the user must not be empty".into()));
            }
            let groups = match rest {
                [] => Vec::new(),
                [groups] => groups
                    .split(',')
                    .map(str::trim)
                    .filter(|g| !g.is_empty())
                    .map(str::to_owned)
                    .collect(),
                _ => {
                    return Err((
                        n + 1,
                        "more than four fields (quote the groups: \"a,b\")".into(),
                    ));
                }
            };
            let info = UserInfo {
                name: user.clone(),
                uid: uid.clone(),
                groups,
            };
            if users.insert(token.clone(), info).is_some() {
                return Err((n + 1, "this token is given twice".into()));
            }
        }
        Ok(Self { users })
    }

    /// Who `token` is, if it is one of the file's.
    pub fn user(&self, token: &str) -> Option<&UserInfo> {
        self.users.get(token)
    }
}

/// Splits one CSV line: commas separate, double quotes group (`""` is a
/// quote inside quotes).
fn split_csv(line: &str) -> Result<Vec<String>, String> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut chars = line.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            ('"', true) => quoted = false,
            ('"', false) if field.is_empty() => quoted = true,
            (',', false) => fields.push(std::mem::take(&mut field)),
            (c, _) => field.push(c),
        }
    }
    if quoted {
        return Err("a quote is not closed".into());
    }
    fields.push(field);
    Ok(fields.into_iter().map(|f| f.trim().to_owned()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kube_apiserver_token_lines_parse() {
        let tokens =
            StaticTokens::parse("# comment\nabc123,alice,1001,\"dev,ops\"\n\ndef456,bob,1002\n")
                .expect("parses");
        let alice = tokens.user("abc123").expect("alice");
        assert_eq!(alice.name, "alice");
        assert_eq!(alice.groups, ["dev", "ops"]);
        assert_eq!(
            tokens.user("def456").expect("bob").groups,
            Vec::<String>::new()
        );
        assert!(tokens.user("nope").is_none());
    }

    #[test]
    fn malformed_lines_are_named_without_the_token() {
        let err = StaticTokens::parse("ok,u,1\nsecret-only\n").expect_err("refused");
        assert_eq!(err.0, 2);
        assert!(!err.1.contains("secret"), "{}", err.1);
        assert!(StaticTokens::parse("t,u,1,\"a").is_err());
        assert!(StaticTokens::parse("t,u,1\nt,v,2").is_err());
    }
}
