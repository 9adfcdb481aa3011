//! libpq's `require_auth` (PostgreSQL 16 on): the authentication methods a client accepts from
//! the server, parsed as `pqConnectOptions2()` parses them.

use std::fmt;

use super::ConnInfoError;

/// An authentication method a server can ask for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AuthMethod {
    /// A cleartext password (`password`).
    Password,
    /// An MD5-hashed password (`md5`).
    Md5,
    /// GSSAPI (`gss`; pgwal does not implement it).
    Gss,
    /// SSPI (`sspi`; pgwal does not implement it).
    Sspi,
    /// SASL with SCRAM-SHA-256 or SCRAM-SHA-256-PLUS (`scram-sha-256`).
    ScramSha256,
    /// SASL with OAUTHBEARER (`oauth`, libpq 18 on; pgwal does not implement it).
    OAuth,
}

impl AuthMethod {
    const ALL: [AuthMethod; 6] = [
        AuthMethod::Password,
        AuthMethod::Md5,
        AuthMethod::Gss,
        AuthMethod::Sspi,
        AuthMethod::ScramSha256,
        AuthMethod::OAuth,
    ];

    fn bit(self) -> u8 {
        1 << self as u8
    }

    fn from_keyword(s: &str) -> Option<AuthMethod> {
        Some(match s {
            "password" => AuthMethod::Password,
            "md5" => AuthMethod::Md5,
            "gss" => AuthMethod::Gss,
            "sspi" => AuthMethod::Sspi,
            "scram-sha-256" => AuthMethod::ScramSha256,
            "oauth" => AuthMethod::OAuth,
            _ => return None,
        })
    }
}

/// The parsed `require_auth` setting: which methods the server may ask for, and whether it must
/// ask for one at all.
///
/// A list of methods (`password`, `md5`, `gss`, `sspi`, `scram-sha-256`, `oauth`, `none`)
/// allows those only; a list of negated ones (`!md5,!password`) allows all others. `none`
/// allows a server that asks for no authentication (trust); `!none` forbids it. Mixing both
/// kinds, naming a method twice or an unknown one is an error, with libpq's words.
///
/// ```
/// use pgwal::conninfo::{AuthMethod, RequireAuth};
///
/// let r = RequireAuth::parse("scram-sha-256").unwrap();
/// assert!(r.allows(AuthMethod::ScramSha256) && !r.allows(AuthMethod::Md5));
/// assert!(r.auth_required());
/// let r = RequireAuth::parse("!password,!md5").unwrap();
/// assert!(r.allows(AuthMethod::ScramSha256) && !r.auth_required());
/// assert_eq!(
///     RequireAuth::parse("md5,!password").unwrap_err().to_string(),
///     "negative require_auth method \"!password\" cannot be mixed with non-negative methods"
/// );
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct RequireAuth {
    text: String,
    allowed: u8,
    required: bool,
}

impl RequireAuth {
    /// Parses a `require_auth` value. An empty value allows no method and requires none (as
    /// libpq 16–19 treat a keyword set to ""): only a server that asks for nothing is accepted.
    pub fn parse(text: &str) -> Result<RequireAuth, ConnInfoError> {
        let mut r = RequireAuth {
            text: text.to_owned(),
            allowed: 0,
            required: false,
        };
        if text.is_empty() {
            return Ok(r);
        }
        r.required = true;
        let mut negated = false;
        let mut seen: Vec<&str> = Vec::new();
        for (i, part) in text.split(',').enumerate() {
            let method = match part.strip_prefix('!') {
                Some(m) => {
                    if i == 0 {
                        // A permissive set, subtracted from.
                        negated = true;
                        r.required = false;
                        r.allowed = AuthMethod::ALL.iter().fold(0, |a, m| a | m.bit());
                    } else if !negated {
                        return Err(ConnInfoError::RequireAuthMixed {
                            method: part.to_owned(),
                            negative: true,
                        });
                    }
                    m
                }
                None if negated => {
                    return Err(ConnInfoError::RequireAuthMixed {
                        method: part.to_owned(),
                        negative: false,
                    })
                }
                None => part,
            };
            if seen.contains(&method) {
                return Err(ConnInfoError::RequireAuthDuplicate(part.to_owned()));
            }
            seen.push(method);
            if method == "none" {
                r.required = negated;
                continue;
            }
            let Some(m) = AuthMethod::from_keyword(method) else {
                return Err(ConnInfoError::InvalidValue {
                    option: "require_auth",
                    value: method.to_owned(),
                });
            };
            if negated {
                r.allowed &= !m.bit();
            } else {
                r.allowed |= m.bit();
            }
        }
        Ok(r)
    }

    /// Whether the server may ask for `method`.
    pub fn allows(&self, method: AuthMethod) -> bool {
        self.allowed & method.bit() != 0
    }

    /// Whether the server may ask for SASL at all (SCRAM or OAuth allowed).
    pub fn allows_sasl(&self) -> bool {
        self.allows(AuthMethod::ScramSha256) || self.allows(AuthMethod::OAuth)
    }

    /// Whether the server must authenticate the client (`none` not allowed).
    pub fn auth_required(&self) -> bool {
        self.required
    }

    /// The value as given, as errors quote it.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl fmt::Debug for RequireAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RequireAuth({:?})", self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_as_libpq_19_reads_them() {
        let ok = |s: &str| RequireAuth::parse(s).unwrap();
        let r = ok("password,md5");
        assert!(r.allows(AuthMethod::Password) && r.allows(AuthMethod::Md5));
        assert!(!r.allows_sasl() && r.auth_required());
        let r = ok("scram-sha-256,none");
        assert!(r.allows(AuthMethod::ScramSha256) && !r.auth_required());
        let r = ok("!none");
        assert!(AuthMethod::ALL.iter().all(|&m| r.allows(m)) && r.auth_required());
        let r = ok("!md5,!scram-sha-256");
        assert!(!r.allows(AuthMethod::ScramSha256) && r.allows_sasl());
        assert!(!r.auth_required());
        let r = ok("oauth");
        assert!(r.allows_sasl() && !r.allows(AuthMethod::ScramSha256));
        let r = ok("");
        assert!(!r.allows_sasl() && !r.auth_required());
        // libpq's words for each refusal.
        let bad = |s: &str| RequireAuth::parse(s).unwrap_err().to_string();
        assert_eq!(
            bad("!md5,password"),
            "require_auth method \"password\" cannot be mixed with negative methods"
        );
        assert_eq!(
            bad("md5,md5"),
            "require_auth method \"md5\" is specified more than once"
        );
        assert_eq!(
            bad("!md5,!md5"),
            "require_auth method \"!md5\" is specified more than once"
        );
        assert_eq!(
            bad("none,none"),
            "require_auth method \"none\" is specified more than once"
        );
        assert_eq!(bad("MD5"), "invalid require_auth value: \"MD5\"");
        assert_eq!(bad(" md5"), "invalid require_auth value: \" md5\"");
        assert_eq!(bad("md5,"), "invalid require_auth value: \"\"");
    }
}
