//! Organizations, roles and permissions: the permission model, decided here and nowhere else.

mod permission;
mod role;
mod rules;

pub use permission::{Permission, PermissionSet, UnknownPermission};
pub use role::{BuiltinRole, Role, RoleName, RoleNameError};
pub use rules::{MembershipChangeError, authorize_invitation, authorize_removal, authorize_role_change};
