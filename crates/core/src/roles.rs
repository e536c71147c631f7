//! Roles and permissions: the one table that says who may do what.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A staff member's role. Each user has exactly one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Admin,
    Physician,
    Nurse,
    FrontDesk,
    Auditor,
}

/// Something a session may be allowed to do. Every gated operation names exactly one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Permission {
    /// Add users, change roles, disable users, reset other users' passwords.
    ManageUsers,
    /// See the list of users and their roles.
    ViewUsers,
    /// Rotate the data key, replace the recovery key.
    ManageKeys,
    /// Read out the raw data key for standard SQLCipher tools.
    ExportKey,
}

impl Role {
    pub const ALL: [Role; 5] = [
        Role::Admin,
        Role::Physician,
        Role::Nurse,
        Role::FrontDesk,
        Role::Auditor,
    ];

    /// The role-to-permission matrix. This is the only place it is written down.
    pub fn permissions(self) -> &'static [Permission] {
        use Permission::*;
        match self {
            Role::Admin => &[ManageUsers, ViewUsers, ManageKeys, ExportKey],
            Role::Auditor => &[ViewUsers],
            Role::Physician | Role::Nurse | Role::FrontDesk => &[],
        }
    }

    pub fn allows(self, permission: Permission) -> bool {
        self.permissions().contains(&permission)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Physician => "physician",
            Role::Nurse => "nurse",
            Role::FrontDesk => "front_desk",
            Role::Auditor => "auditor",
        }
    }

    /// How the role reads in a sentence.
    pub fn label(self) -> &'static str {
        match self {
            Role::Admin => "Administrator",
            Role::Physician => "Physician",
            Role::Nurse => "Nurse",
            Role::FrontDesk => "Front desk",
            Role::Auditor => "Auditor",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = crate::CoreError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s.trim().to_ascii_lowercase().replace('-', "_"))
            .ok_or_else(|| {
                crate::CoreError::InvalidInput(format!(
                    "Unknown role \"{}\". Roles are: admin, physician, nurse, front_desk, auditor.",
                    s.chars().take(40).collect::<String>()
                ))
            })
    }
}

impl Permission {
    /// Says what was refused, for the message a denied user reads.
    pub fn describe(self) -> &'static str {
        match self {
            Permission::ManageUsers => "manage users",
            Permission::ViewUsers => "see the list of users",
            Permission::ManageKeys => "change the vault's keys",
            Permission::ExportKey => "export the database key",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_parse_from_their_names() {
        for role in Role::ALL {
            assert_eq!(role.as_str().parse::<Role>().expect("parses"), role);
        }
        assert_eq!(
            "Front-Desk".parse::<Role>().expect("parses"),
            Role::FrontDesk
        );
        assert!("superuser".parse::<Role>().is_err());
    }

    #[test]
    fn only_admins_manage_users_and_keys() {
        for role in Role::ALL {
            assert_eq!(role.allows(Permission::ManageUsers), role == Role::Admin);
            assert_eq!(role.allows(Permission::ExportKey), role == Role::Admin);
        }
    }
}
