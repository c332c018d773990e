//! Who may give whom which role. Every membership change goes through these functions.

use super::{Permission, Role};

/// Why a membership change is refused: each variant is a distinct rule, so the answer can tell
/// the actor which one they met.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MembershipChangeError {
    /// The actor lacks the permission the change needs.
    #[error("missing permission {0}")]
    MissingPermission(Permission),
    /// The role grants permissions the actor does not hold.
    #[error("cannot grant permissions you do not hold")]
    Escalation,
    /// Only owners may create, change or remove owners.
    #[error("only owners can create, change or remove owners")]
    OwnersOnly,
    /// The organization would be left without an owner.
    #[error("an organization must keep at least one owner")]
    LastOwner,
}

fn require(actor: &Role, permission: Permission) -> Result<(), MembershipChangeError> {
    if actor.permissions().contains(permission) {
        Ok(())
    } else {
        Err(MembershipChangeError::MissingPermission(permission))
    }
}

fn grantable(actor: &Role, role: &Role) -> Result<(), MembershipChangeError> {
    if role.is_owner() && !actor.is_owner() {
        return Err(MembershipChangeError::OwnersOnly);
    }
    if !role.permissions().is_subset_of(actor.permissions()) {
        return Err(MembershipChangeError::Escalation);
    }
    Ok(())
}

/// May `actor` invite someone as `role`?
///
/// # Errors
/// `MissingPermission(members:invite)`, `OwnersOnly`, `Escalation`.
pub fn authorize_invitation(actor: &Role, role: &Role) -> Result<(), MembershipChangeError> {
    require(actor, Permission::MembersInvite)?;
    grantable(actor, role)
}

/// May `actor` change a member from `current` to `new`? `owners` counts the organization's
/// owners now (the target included when they are one).
///
/// # Errors
/// `MissingPermission(members:manage)`, `OwnersOnly`, `Escalation`, `LastOwner`.
pub fn authorize_role_change(
    actor: &Role,
    current: &Role,
    new: &Role,
    owners: usize,
) -> Result<(), MembershipChangeError> {
    require(actor, Permission::MembersManage)?;
    if current.is_owner() && !actor.is_owner() {
        return Err(MembershipChangeError::OwnersOnly);
    }
    grantable(actor, new)?;
    if current.is_owner() && !new.is_owner() && owners <= 1 {
        return Err(MembershipChangeError::LastOwner);
    }
    Ok(())
}

/// May `actor` remove a member whose role is `target`? `is_self` when members leave on their
/// own (no permission needed); `owners` as for [`authorize_role_change`].
///
/// # Errors
/// `MissingPermission(members:manage)`, `OwnersOnly`, `LastOwner`.
pub fn authorize_removal(
    actor: &Role,
    target: &Role,
    is_self: bool,
    owners: usize,
) -> Result<(), MembershipChangeError> {
    if !is_self {
        require(actor, Permission::MembersManage)?;
        if target.is_owner() && !actor.is_owner() {
            return Err(MembershipChangeError::OwnersOnly);
        }
    }
    if target.is_owner() && owners <= 1 {
        return Err(MembershipChangeError::LastOwner);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tenancy::{BuiltinRole, PermissionSet, RoleName};

    fn b(role: BuiltinRole) -> Role {
        Role::Builtin(role)
    }

    fn custom(permissions: &[Permission]) -> Role {
        Role::Custom {
            name: RoleName::parse("custom").expect("valid"),
            permissions: permissions.iter().copied().collect(),
        }
    }

    use BuiltinRole::{Admin, Member, Owner, Viewer};
    use MembershipChangeError as E;

    #[test]
    fn invitations_by_each_builtin_role_for_each_builtin_role() {
        // actor → role invited → outcome
        let table: [(BuiltinRole, BuiltinRole, Result<(), E>); 16] = [
            (Owner, Owner, Ok(())),
            (Owner, Admin, Ok(())),
            (Owner, Member, Ok(())),
            (Owner, Viewer, Ok(())),
            (Admin, Owner, Err(E::OwnersOnly)),
            (Admin, Admin, Ok(())),
            (Admin, Member, Ok(())),
            (Admin, Viewer, Ok(())),
            (Member, Owner, Err(E::MissingPermission(Permission::MembersInvite))),
            (Member, Admin, Err(E::MissingPermission(Permission::MembersInvite))),
            (Member, Member, Err(E::MissingPermission(Permission::MembersInvite))),
            (Member, Viewer, Err(E::MissingPermission(Permission::MembersInvite))),
            (Viewer, Owner, Err(E::MissingPermission(Permission::MembersInvite))),
            (Viewer, Admin, Err(E::MissingPermission(Permission::MembersInvite))),
            (Viewer, Member, Err(E::MissingPermission(Permission::MembersInvite))),
            (Viewer, Viewer, Err(E::MissingPermission(Permission::MembersInvite))),
        ];
        for (actor, role, expected) in table {
            assert_eq!(authorize_invitation(&b(actor), &b(role)), expected, "{actor:?} invites {role:?}");
        }
    }

    #[test]
    fn nobody_grants_a_permission_they_do_not_hold() {
        let inviter = custom(&[Permission::MembersInvite, Permission::FilesRead]);
        assert_eq!(authorize_invitation(&inviter, &custom(&[Permission::FilesRead])), Ok(()));
        assert_eq!(authorize_invitation(&inviter, &custom(&[Permission::FilesWrite])), Err(E::Escalation));
        assert_eq!(
            authorize_invitation(&inviter, &b(Viewer)),
            Err(E::Escalation),
            "viewer has reads the inviter lacks"
        );
        let manager = custom(&[Permission::MembersManage, Permission::OrgRead]);
        assert_eq!(authorize_role_change(&manager, &b(Viewer), &b(Admin), 1), Err(E::Escalation));
        assert_eq!(
            authorize_role_change(&b(Admin), &b(Viewer), &custom(&[Permission::OrgDelete]), 1),
            Err(E::Escalation)
        );
    }

    #[test]
    fn only_owners_touch_owners() {
        assert_eq!(authorize_role_change(&b(Admin), &b(Owner), &b(Admin), 3), Err(E::OwnersOnly));
        assert_eq!(authorize_role_change(&b(Admin), &b(Member), &b(Owner), 3), Err(E::OwnersOnly));
        assert_eq!(authorize_removal(&b(Admin), &b(Owner), false, 3), Err(E::OwnersOnly));
        assert_eq!(authorize_role_change(&b(Owner), &b(Owner), &b(Admin), 2), Ok(()));
        assert_eq!(authorize_role_change(&b(Owner), &b(Member), &b(Owner), 1), Ok(()));
        assert_eq!(authorize_removal(&b(Owner), &b(Owner), false, 2), Ok(()));
    }

    #[test]
    fn the_last_owner_cannot_be_demoted_removed_or_leave() {
        assert_eq!(authorize_role_change(&b(Owner), &b(Owner), &b(Admin), 1), Err(E::LastOwner));
        assert_eq!(authorize_removal(&b(Owner), &b(Owner), false, 1), Err(E::LastOwner));
        assert_eq!(authorize_removal(&b(Owner), &b(Owner), true, 1), Err(E::LastOwner));
        assert_eq!(authorize_role_change(&b(Owner), &b(Owner), &b(Owner), 1), Ok(()), "no-op change is fine");
    }

    #[test]
    fn members_may_leave_without_permission_and_managers_remove_others() {
        for role in [Admin, Member, Viewer] {
            assert_eq!(authorize_removal(&b(role), &b(role), true, 1), Ok(()), "{role:?} leaves");
        }
        assert_eq!(authorize_removal(&b(Admin), &b(Member), false, 1), Ok(()));
        assert_eq!(
            authorize_removal(&b(Member), &b(Viewer), false, 1),
            Err(E::MissingPermission(Permission::MembersManage))
        );
        assert_eq!(
            authorize_removal(&custom(&[]), &b(Viewer), false, 1),
            Err(E::MissingPermission(Permission::MembersManage))
        );
    }

    #[test]
    fn every_builtin_actor_against_every_role_change_respects_the_invariants() {
        // Exhaustive: 4 actors × 4 current roles × 4 new roles × owner counts 1..=2.
        for actor in BuiltinRole::ALL {
            for current in BuiltinRole::ALL {
                for new in BuiltinRole::ALL {
                    for owners in 1..=2 {
                        let result = authorize_role_change(&b(actor), &b(current), &b(new), owners);
                        if result.is_ok() {
                            assert!(actor.permissions().contains(Permission::MembersManage));
                            assert!(new.permissions().is_subset_of(actor.permissions()));
                            assert!(actor == Owner || (current != Owner && new != Owner));
                            assert!(!(current == Owner && new != Owner && owners == 1));
                        }
                    }
                }
            }
        }
        let _ = PermissionSet::empty();
    }
}
