//! Who may do what through the daemon: users with roles, their passwords
//! (Argon2id) and API tokens (stored hashed, revocable), kept in the
//! daemon's state directory; and the limit on wrong passwords.

pub mod protect;
pub mod ratelimit;
pub mod requests;
pub mod roles;
pub mod users;

pub use roles::{Permission, Role};
pub use users::{AccessError, Authenticated, TokenInfo, UserInfo, UserStore};
