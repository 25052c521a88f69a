//! Roles (canvas-api-facts.md §4): resolving a role by id or name the way the Enrollments API does,
//! and the Roles API listing.

use super::errors::ApiError;
use super::model::{Role, RoleState};
use super::store::Store;

impl Store {
    /// `Account#get_role_by_id`: a built-in role, or a non-deleted role of the account chain
    /// (a sibling sub-account's role is not valid, §4).
    pub(crate) fn role_by_id_for_account(&self, account_id: u64, raw_id: &str) -> Option<&Role> {
        let id: u64 = raw_id.trim().parse().ok()?;
        let role = self.roles.get(&id)?;
        if role.workflow_state == RoleState::Deleted {
            return None;
        }
        if role.is_built_in() || self.account_chain(account_id).contains(&role.account_id) {
            Some(role)
        } else {
            None
        }
    }

    /// `Account#get_course_role_by_name`: the built-in role named after a type first, then the
    /// nearest non-deleted custom course role with exactly that (case-sensitive) name (§4).
    pub(crate) fn course_role_by_name(&self, account_id: u64, name: &str) -> Option<&Role> {
        if let Some(role) = self
            .roles
            .values()
            .find(|r| r.is_built_in() && r.name == name)
        {
            return Some(role);
        }
        self.account_chain(account_id)
            .into_iter()
            .find_map(|account| {
                self.roles.values().find(|r| {
                    r.account_id == account
                        && r.name == name
                        && !r.is_built_in()
                        && r.workflow_state != RoleState::Deleted
                        && r.course_type().is_some()
                })
            })
    }

    /// `GET /accounts/:id/roles`: `states` are the requested `state[]` values (default active);
    /// built-ins only when `active` is requested; `show_inherited` adds parent accounts' roles.
    pub(crate) fn list_roles(
        &self,
        account_id: u64,
        states: &[String],
        show_inherited: bool,
    ) -> Vec<&Role> {
        let wanted: Vec<RoleState> = states
            .iter()
            .filter_map(|s| match s.as_str() {
                "active" => Some(RoleState::Active),
                "inactive" => Some(RoleState::Inactive),
                _ => None,
            })
            .collect();
        let accounts = if show_inherited {
            self.account_chain(account_id)
        } else {
            vec![account_id]
        };
        let mut roles: Vec<&Role> = Vec::new();
        if wanted.contains(&RoleState::Active) {
            roles.extend(self.roles.values().filter(|r| r.is_built_in()));
        }
        // Parents' roles first, then the account's own, each in id order.
        for account in accounts.iter().rev() {
            roles.extend(self.roles.values().filter(|r| {
                !r.is_built_in() && r.account_id == *account && wanted.contains(&r.workflow_state)
            }));
        }
        roles
    }

    /// `GET /accounts/:account_id/roles/:id`.
    pub(crate) fn show_role(&self, account_id: u64, raw_id: &str) -> Result<&Role, ApiError> {
        self.role_by_id_for_account(account_id, raw_id)
            .ok_or(ApiError::NotFound)
    }
}
