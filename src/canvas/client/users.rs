//! Users, sections, the account and its roles: the reads that check the token and resolve what a SIS id names.

use super::{CanvasClient, encode_account};
use crate::canvas::error::CanvasError;
use crate::canvas::model::{Account, Role, User};
use crate::canvas::path::sis_segment;

/// Who is enrolled: by SIS identity (per `sis.user_id_kind`) or by Canvas id.
#[derive(Debug, Clone, Copy)]
pub enum UserRef<'a> {
    Sis(&'a str),
    Canvas(u64),
}

impl CanvasClient {
    pub(super) fn user_segment(&self, user: UserRef<'_>) -> String {
        match user {
            UserRef::Sis(id) => sis_segment(self.opts.user_id_kind.canvas_prefix(), id),
            UserRef::Canvas(id) => id.to_string(),
        }
    }

    pub(super) fn user_param(&self, user: UserRef<'_>) -> String {
        match user {
            UserRef::Sis(id) => format!("{}:{id}", self.opts.user_id_kind.canvas_prefix()),
            UserRef::Canvas(id) => id.to_string(),
        }
    }

    /// `GET /users/self`: is the token accepted?
    pub async fn get_self(&self) -> Result<User, CanvasError> {
        let url = self.api_url("users/self")?;
        self.get_json(url).await
    }

    /// `GET /accounts/:id`: can the token read the account?
    pub async fn get_account(&self, account_id: &str) -> Result<Account, CanvasError> {
        let url = self.api_url(&format!("accounts/{}", encode_account(account_id)))?;
        self.get_json(url).await
    }

    /// Every course role of the account, active and inactive, with those inherited from parent accounts (facts §4:
    /// built-ins are included when `active` is requested).
    pub async fn list_roles(&self, account_id: &str) -> Result<Vec<Role>, CanvasError> {
        let mut url = self.api_url(&format!("accounts/{}/roles", encode_account(account_id)))?;
        url.query_pairs_mut()
            .append_pair("state[]", "active")
            .append_pair("state[]", "inactive")
            .append_pair("show_inherited", "true")
            .append_pair("per_page", &self.opts.per_page.to_string());
        self.list_all(url).await
    }

    /// `GET /users/:id`; `Ok(None)` when Canvas has no such user.
    pub async fn get_user(&self, user: UserRef<'_>) -> Result<Option<User>, CanvasError> {
        let url = self.api_url(&format!("users/{}", self.user_segment(user)))?;
        match self.get_json(url).await {
            Ok(u) => Ok(Some(u)),
            Err(CanvasError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `GET /sections/sis_section_id:X`: whether Canvas has a section with this SIS id.
    pub async fn section_exists(&self, sis_section_id: &str) -> Result<bool, CanvasError> {
        let url = self.api_url(&format!(
            "sections/{}",
            sis_segment("sis_section_id", sis_section_id)
        ))?;
        match self.get_json::<serde_json::Value>(url).await {
            Ok(_) => Ok(true),
            Err(CanvasError::NotFound { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }
}
