//! Roles and what each allows.

use serde::{Deserialize, Serialize};

/// A user's role.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Sees status, runs, drills, approvals and the audit log.
    Viewer,
    /// A viewer who also backs up and drills (into scratch clusters).
    Operator,
    /// An operator who also restores into unprotected targets and asks for
    /// restores into protected ones.
    Restorer,
    /// A viewer who also approves requests (never their own).
    Approver,
    /// Everything, including users, tokens and break-glass.
    Admin,
}

/// Something a request needs to be allowed to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Permission {
    /// Read status, runs, the audit log.
    View,
    /// Start, pause and resume jobs (backups, drills).
    Operate,
    /// Restore, and ask for restores into protected targets.
    Restore,
    /// Approve another person's request.
    Approve,
    /// Manage users and tokens; break glass.
    Administer,
}

impl Role {
    /// Every role, lowest first.
    pub const ALL: [Role; 5] = [
        Role::Viewer,
        Role::Operator,
        Role::Restorer,
        Role::Approver,
        Role::Admin,
    ];

    /// Whether this role allows `p`.
    pub fn allows(self, p: Permission) -> bool {
        match p {
            Permission::View => true,
            Permission::Operate => matches!(self, Role::Operator | Role::Restorer | Role::Admin),
            Permission::Restore => matches!(self, Role::Restorer | Role::Admin),
            Permission::Approve => matches!(self, Role::Approver | Role::Admin),
            Permission::Administer => self == Role::Admin,
        }
    }

    /// Its name.
    pub fn name(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Restorer => "restorer",
            Role::Approver => "approver",
            Role::Admin => "admin",
        }
    }

    /// Parses a name.
    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.name() == s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_role_allows_exactly_its_share() {
        use Permission::*;
        let table = [
            (Role::Viewer, [true, false, false, false, false]),
            (Role::Operator, [true, true, false, false, false]),
            (Role::Restorer, [true, true, true, false, false]),
            (Role::Approver, [true, false, false, true, false]),
            (Role::Admin, [true, true, true, true, true]),
        ];
        for (role, want) in table {
            let got = [View, Operate, Restore, Approve, Administer].map(|p| role.allows(p));
            assert_eq!(got, want, "{role:?}");
            assert_eq!(Role::parse(role.name()), Some(role));
        }
        assert_eq!(Role::parse("root"), None);
    }
}
