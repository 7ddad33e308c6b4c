//! The user store: `users.json` in the daemon's state directory (mode
//! 0600, replaced atomically), holding each user's role and Argon2id
//! password hash, and each API token's BLAKE3 hash. A token is
//! shown once, when it is created: `lbt_<id>_<secret>`.

use std::path::{Path, PathBuf};

use argon2::{Algorithm, Argon2, Params, Version};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::roles::Role;

/// Argon2id memory for user passwords, in KiB (OWASP's 19 MiB).
const PASSWORD_MEMORY_KIB: u32 = 19 * 1024;
/// Argon2id passes for user passwords.
const PASSWORD_ITERATIONS: u32 = 2;
/// The shortest password accepted.
pub const MIN_PASSWORD_LEN: usize = 10;

/// What can go wrong with users and tokens.
#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    /// The store could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The store is not valid JSON.
    #[error("{path} is damaged: {detail}")]
    Damaged {
        /// The file.
        path: PathBuf,
        /// What the parser said.
        detail: String,
    },
    /// No such user.
    #[error("no user {0:?} (`lifeboat user list` shows them)")]
    UnknownUser(String),
    /// The name is taken.
    #[error("user {0:?} exists already (`lifeboat user passwd` changes a password)")]
    UserExists(String),
    /// The name has characters that would be confusing in logs.
    #[error("user names are 1 to 64 letters, digits, '.', '_', '-' or '@': {0:?} is not")]
    BadName(String),
    /// The password is too short.
    #[error("passwords need at least {MIN_PASSWORD_LEN} characters")]
    WeakPassword,
    /// No such token.
    #[error("no token {0:?} (`lifeboat token list` shows them)")]
    UnknownToken(String),
    /// The token is not one this store issued.
    #[error("the token is not valid")]
    TokenInvalid,
    /// The token was revoked.
    #[error("the token was revoked")]
    TokenRevoked,
    /// Hashing failed.
    #[error("password hashing failed: {0}")]
    Hash(String),
}

impl AccessError {
    /// Whether this is the caller's mistake (bad usage) rather than a failure.
    pub fn is_usage(&self) -> bool {
        !matches!(
            self,
            AccessError::Io { .. } | AccessError::Damaged { .. } | AccessError::Hash(_)
        )
    }
}

type Result<T> = std::result::Result<T, AccessError>;

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct StoreFile {
    #[serde(default)]
    users: Vec<StoredUser>,
    #[serde(default)]
    tokens: Vec<StoredToken>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct StoredUser {
    name: String,
    role: Role,
    /// Argon2id salt and hash, hex.
    salt: String,
    hash: String,
    memory_kib: u32,
    iterations: u32,
    created: DateTime<Utc>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct StoredToken {
    id: String,
    user: String,
    #[serde(default)]
    label: Option<String>,
    /// BLAKE3 of the secret, hex (a token is 256 random bits: no KDF needed).
    hash: String,
    created: DateTime<Utc>,
    #[serde(default)]
    revoked: Option<DateTime<Utc>>,
}

/// A user as listed.
#[derive(Clone, Debug, Serialize)]
pub struct UserInfo {
    /// The name.
    pub name: String,
    /// The role.
    pub role: Role,
    /// When the user was added.
    pub created: DateTime<Utc>,
    /// Tokens not revoked.
    pub tokens: usize,
}

/// A token as listed (never its secret).
#[derive(Clone, Debug, Serialize)]
pub struct TokenInfo {
    /// Its id (the part after `lbt_`).
    pub id: String,
    /// Whose it is.
    pub user: String,
    /// What it is for.
    pub label: Option<String>,
    /// When it was made.
    pub created: DateTime<Utc>,
    /// When it was revoked.
    pub revoked: Option<DateTime<Utc>>,
}

/// Who a password or token belongs to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Authenticated {
    /// The user.
    pub name: String,
    /// Their role.
    pub role: Role,
}

/// The user store of one state directory.
#[derive(Clone, Debug)]
pub struct UserStore {
    path: PathBuf,
}

fn random_hex(bytes: usize) -> Result<String> {
    let mut b = vec![0u8; bytes];
    getrandom::fill(&mut b).map_err(|e| AccessError::Hash(e.to_string()))?;
    Ok(hex::encode(b))
}

fn argon2id(password: &str, salt: &[u8], memory_kib: u32, iterations: u32) -> Result<[u8; 32]> {
    let params = Params::new(memory_kib, iterations, 1, Some(32))
        .map_err(|e| AccessError::Hash(e.to_string()))?;
    let mut out = [0u8; 32];
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password_into(password.as_bytes(), salt, &mut out)
        .map_err(|e| AccessError::Hash(e.to_string()))?;
    Ok(out)
}

fn hex_decode(s: &str) -> Option<Vec<u8>> {
    hex::decode(s).ok()
}

fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'))
}

/// Reads a JSON file of the state directory; `None` when it does not exist.
pub(crate) fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Option<T>> {
    match std::fs::read(path) {
        Ok(b) => serde_json::from_slice(&b)
            .map(Some)
            .map_err(|e| AccessError::Damaged {
                path: path.to_path_buf(),
                detail: e.to_string(),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(AccessError::Io {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Replaces a JSON file of the state directory atomically, readable by its
/// owner only.
pub(crate) fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;
    let io = |source: std::io::Error| AccessError::Io {
        path: path.to_path_buf(),
        source,
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io)?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(io)?;
    tmp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(0o600))
        .map_err(io)?;
    let json = serde_json::to_vec_pretty(value).map_err(|e| AccessError::Damaged {
        path: path.to_path_buf(),
        detail: e.to_string(),
    })?;
    tmp.write_all(&json).map_err(io)?;
    tmp.as_file().sync_all().map_err(io)?;
    tmp.persist(path).map_err(|e| io(e.error))?;
    Ok(())
}

impl UserStore {
    /// The store in `state_dir` (created on the first write).
    pub fn new(state_dir: &Path) -> Self {
        UserStore {
            path: state_dir.join("users.json"),
        }
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn load(&self) -> Result<StoreFile> {
        Ok(read_json(&self.path)?.unwrap_or_default())
    }

    fn save(&self, f: &StoreFile) -> Result<()> {
        write_json(&self.path, f)
    }

    /// Whether any user exists (without users the API is open to whoever
    /// can reach its address).
    pub fn has_users(&self) -> Result<bool> {
        Ok(!self.load()?.users.is_empty())
    }

    /// Adds a user.
    pub fn add_user(&self, name: &str, role: Role, password: &str) -> Result<()> {
        if !valid_name(name) {
            return Err(AccessError::BadName(name.into()));
        }
        let mut f = self.load()?;
        if f.users.iter().any(|u| u.name == name) {
            return Err(AccessError::UserExists(name.into()));
        }
        let user = hashed(name, role, password)?;
        f.users.push(user);
        self.save(&f)
    }

    /// Removes a user and revokes their tokens.
    pub fn remove_user(&self, name: &str) -> Result<()> {
        let mut f = self.load()?;
        let before = f.users.len();
        f.users.retain(|u| u.name != name);
        if f.users.len() == before {
            return Err(AccessError::UnknownUser(name.into()));
        }
        let now = Utc::now();
        for t in f.tokens.iter_mut().filter(|t| t.user == name) {
            t.revoked.get_or_insert(now);
        }
        self.save(&f)
    }

    /// Sets a user's password.
    pub fn set_password(&self, name: &str, password: &str) -> Result<()> {
        let mut f = self.load()?;
        let u = f
            .users
            .iter_mut()
            .find(|u| u.name == name)
            .ok_or_else(|| AccessError::UnknownUser(name.into()))?;
        let fresh = hashed(name, u.role, password)?;
        *u = StoredUser {
            created: u.created,
            ..fresh
        };
        self.save(&f)
    }

    /// Every user.
    pub fn users(&self) -> Result<Vec<UserInfo>> {
        let f = self.load()?;
        Ok(f.users
            .iter()
            .map(|u| UserInfo {
                name: u.name.clone(),
                role: u.role,
                created: u.created,
                tokens: f
                    .tokens
                    .iter()
                    .filter(|t| t.user == u.name && t.revoked.is_none())
                    .count(),
            })
            .collect())
    }

    /// The user `name` if `password` is theirs. Takes as long for an
    /// unknown name as for a wrong password.
    pub fn check_password(&self, name: &str, password: &str) -> Result<Option<Authenticated>> {
        let f = self.load()?;
        let Some(u) = f.users.iter().find(|u| u.name == name) else {
            argon2id(
                password,
                b"lifeboat-no-such-user",
                PASSWORD_MEMORY_KIB,
                PASSWORD_ITERATIONS,
            )?;
            return Ok(None);
        };
        let salt = hex_decode(&u.salt).unwrap_or_default();
        let got = argon2id(password, &salt, u.memory_kib, u.iterations)?;
        let want = hex_decode(&u.hash).unwrap_or_default();
        Ok(same(&got, &want).then(|| Authenticated {
            name: u.name.clone(),
            role: u.role,
        }))
    }

    /// Makes a token for `user`; returns it listed, and the token itself
    /// (shown once: only its hash is kept).
    pub fn create_token(&self, user: &str, label: Option<&str>) -> Result<(TokenInfo, String)> {
        let mut f = self.load()?;
        if !f.users.iter().any(|u| u.name == user) {
            return Err(AccessError::UnknownUser(user.into()));
        }
        let id = random_hex(8)?;
        let secret = random_hex(32)?;
        let stored = StoredToken {
            id: id.clone(),
            user: user.into(),
            label: label.map(String::from),
            hash: blake3::hash(secret.as_bytes()).to_hex().to_string(),
            created: Utc::now(),
            revoked: None,
        };
        let info = token_info(&stored);
        f.tokens.push(stored);
        self.save(&f)?;
        Ok((info, format!("lbt_{id}_{secret}")))
    }

    /// Every token, revoked ones included.
    pub fn tokens(&self) -> Result<Vec<TokenInfo>> {
        Ok(self.load()?.tokens.iter().map(token_info).collect())
    }

    /// Revokes the token whose id starts with `id` (at least 4 characters).
    pub fn revoke_token(&self, id: &str) -> Result<TokenInfo> {
        let mut f = self.load()?;
        let matching: Vec<usize> = f
            .tokens
            .iter()
            .enumerate()
            .filter(|(_, t)| id.len() >= 4 && t.id.starts_with(id))
            .map(|(i, _)| i)
            .collect();
        let [i] = matching[..] else {
            return Err(AccessError::UnknownToken(id.into()));
        };
        f.tokens[i].revoked.get_or_insert(Utc::now());
        let info = token_info(&f.tokens[i]);
        self.save(&f)?;
        Ok(info)
    }

    /// Whose `token` is.
    pub fn check_token(&self, token: &str) -> Result<Authenticated> {
        let mut parts = token.trim().splitn(3, '_');
        let (Some("lbt"), Some(id), Some(secret)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(AccessError::TokenInvalid);
        };
        let f = self.load()?;
        let Some(t) = f.tokens.iter().find(|t| t.id == id) else {
            return Err(AccessError::TokenInvalid);
        };
        let got = blake3::hash(secret.as_bytes()).to_hex().to_string();
        if !same(got.as_bytes(), t.hash.as_bytes()) {
            return Err(AccessError::TokenInvalid);
        }
        if t.revoked.is_some() {
            return Err(AccessError::TokenRevoked);
        }
        let u = f
            .users
            .iter()
            .find(|u| u.name == t.user)
            .ok_or(AccessError::TokenRevoked)?;
        Ok(Authenticated {
            name: u.name.clone(),
            role: u.role,
        })
    }
}

fn hashed(name: &str, role: Role, password: &str) -> Result<StoredUser> {
    if password.chars().count() < MIN_PASSWORD_LEN {
        return Err(AccessError::WeakPassword);
    }
    let salt = random_hex(16)?;
    let salt_bytes = hex_decode(&salt).unwrap_or_default();
    let hash = argon2id(
        password,
        &salt_bytes,
        PASSWORD_MEMORY_KIB,
        PASSWORD_ITERATIONS,
    )?;
    Ok(StoredUser {
        name: name.into(),
        role,
        salt,
        hash: hex::encode(hash),
        memory_kib: PASSWORD_MEMORY_KIB,
        iterations: PASSWORD_ITERATIONS,
        created: Utc::now(),
    })
}

fn token_info(t: &StoredToken) -> TokenInfo {
    TokenInfo {
        id: t.id.clone(),
        user: t.user.clone(),
        label: t.label.clone(),
        created: t.created,
        revoked: t.revoked,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn passwords_and_tokens_check_and_revoked_tokens_do_not() {
        let dir = tempfile::tempdir().unwrap();
        let s = UserStore::new(dir.path());
        assert!(!s.has_users().unwrap());
        s.add_user("ann", Role::Approver, "a long passphrase")
            .unwrap();
        assert!(matches!(
            s.add_user("ann", Role::Viewer, "another long one"),
            Err(AccessError::UserExists(_))
        ));
        assert!(matches!(
            s.add_user("bob", Role::Viewer, "short"),
            Err(AccessError::WeakPassword)
        ));
        assert!(matches!(
            s.add_user("bad name", Role::Viewer, "a long passphrase"),
            Err(AccessError::BadName(_))
        ));
        let ann = s
            .check_password("ann", "a long passphrase")
            .unwrap()
            .unwrap();
        assert_eq!(ann.role, Role::Approver);
        assert!(
            s.check_password("ann", "a wrong passphrase")
                .unwrap()
                .is_none()
        );
        assert!(
            s.check_password("nobody", "a long passphrase")
                .unwrap()
                .is_none()
        );
        // The file holds no password and is private.
        let text = std::fs::read_to_string(s.path()).unwrap();
        assert!(!text.contains("a long passphrase"));
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(s.path()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);

        let (info, token) = s.create_token("ann", Some("ci")).unwrap();
        assert!(!text.contains(&token));
        assert_eq!(s.check_token(&token).unwrap().name, "ann");
        assert!(matches!(
            s.check_token(&format!("{token}x")),
            Err(AccessError::TokenInvalid)
        ));
        s.revoke_token(&info.id[..6]).unwrap();
        assert!(matches!(
            s.check_token(&token),
            Err(AccessError::TokenRevoked)
        ));

        s.set_password("ann", "a new long passphrase").unwrap();
        assert!(
            s.check_password("ann", "a long passphrase")
                .unwrap()
                .is_none()
        );
        assert!(
            s.check_password("ann", "a new long passphrase")
                .unwrap()
                .is_some()
        );
        let (_, t2) = s.create_token("ann", None).unwrap();
        s.remove_user("ann").unwrap();
        assert!(s.check_token(&t2).is_err());
        assert!(!s.has_users().unwrap());
    }
}
