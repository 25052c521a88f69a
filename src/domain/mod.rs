//! The enrollment model both sides are read into, and the pure decisions made over it.
//!
//! Everything in `domain` is synchronous and free of I/O: `decide` is the cycle's one decision (role rules →
//! duplicates → plan → brake), built from `rules` (rewrites roles), `plan` (compares), `guard` (brakes) and `roles`
//! (resolves role names). The reconcile cycle reads the SIS and Canvas into these types at its edges.

pub mod decide;
pub mod fast;
pub mod guard;
pub mod openedx_row;
pub mod plan;
pub mod policy;
pub mod roles;
pub mod rules;
pub mod sis_row;

use std::fmt;

pub use policy::{RemovalPolicy, UserIdKind};

/// An interned identifier (SIS user id or login, SIS course id, SIS section id). Interning keeps a
/// million-enrollment snapshot small and makes the plan's hash maps cheap to key.
pub type Sym = lasso::Spur;

/// Interns and resolves the identifiers of one cycle. Hashed with foldhash, not SipHash: every identifier of a
/// cycle passes through here, and `fast` says why that hasher is fine for SIS and Canvas ids.
#[derive(Clone, serde::Serialize, serde::Deserialize)]
pub struct Ids {
    rodeo: lasso::Rodeo<Sym, fast::RandomState>,
}

impl Default for Ids {
    fn default() -> Self {
        Self {
            rodeo: lasso::Rodeo::with_hasher(fast::RandomState::default()),
        }
    }
}

impl Ids {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn intern(&mut self, s: &str) -> Sym {
        self.rodeo.get_or_intern(s)
    }
    pub fn get(&self, s: &str) -> Option<Sym> {
        self.rodeo.get(s)
    }
    pub fn resolve(&self, sym: Sym) -> &str {
        self.rodeo.resolve(&sym)
    }
}

/// A Canvas `role_id`. Matching is always by id, never by label (a renamed custom role keeps its id; facts §4).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct RoleId(pub u64);

impl fmt::Display for RoleId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A Canvas enrollment `workflow_state` as the list API reports it (facts §1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum EnrollmentState {
    Active,
    Invited,
    CreationPending,
    Inactive,
    Completed,
    Deleted,
    Rejected,
    /// A state this version does not know. Never removed, never taken as satisfying the SIS.
    Unknown,
}

impl EnrollmentState {
    pub fn parse(s: &str) -> Self {
        match s {
            "active" => Self::Active,
            "invited" => Self::Invited,
            "creation_pending" => Self::CreationPending,
            "inactive" => Self::Inactive,
            "completed" => Self::Completed,
            "deleted" => Self::Deleted,
            "rejected" => Self::Rejected,
            _ => Self::Unknown,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Invited => "invited",
            Self::CreationPending => "creation_pending",
            Self::Inactive => "inactive",
            Self::Completed => "completed",
            Self::Deleted => "deleted",
            Self::Rejected => "rejected",
            Self::Unknown => "unknown",
        }
    }

    /// States a listing must request so that every enrollment the plan compares is seen (facts §1, §10: the
    /// default list hides `completed`, and a re-POST would silently revive a concluded row). `deleted` and
    /// `rejected` are not needed: a row in those states is treated as absent, and the enroll that follows reuses it.
    pub const LISTED: [EnrollmentState; 5] = [
        Self::Active,
        Self::Invited,
        Self::CreationPending,
        Self::Inactive,
        Self::Completed,
    ];

    /// The `task` of Canvas's DELETE that moves an enrollment into this state (facts §1), if one does.
    pub fn canvas_task(self) -> Option<&'static str> {
        match self {
            Self::Completed => Some("conclude"),
            Self::Deleted => Some("delete"),
            Self::Inactive => Some("inactivate"),
            _ => None,
        }
    }

    /// The `status` of a SIS import's enrollments.csv row that puts an enrollment in this state (facts §8).
    pub fn sis_import_status(self) -> Option<&'static str> {
        match self {
            Self::Active => Some("active"),
            Self::Inactive => Some("inactive"),
            Self::Completed => Some("completed"),
            Self::Deleted => Some("deleted"),
            _ => None,
        }
    }

    /// Live states the SIS may take away: those that give the user access now or on acceptance. Concluded,
    /// inactive and deleted rows that the SIS does not list stay as they are (CONTRACT.md).
    pub fn is_removable(self) -> bool {
        matches!(self, Self::Active | Self::Invited | Self::CreationPending)
    }
}

impl fmt::Display for EnrollmentState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The state the SIS asks for (`status` column; NULL = active).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub enum DesiredState {
    // Order matters: when duplicate SIS rows disagree, the greatest wins (see `plan::resolve_duplicates`).
    Deleted,
    Completed,
    Inactive,
    /// Open edX's program status `pending` (never parsed from a Canvas SIS row).
    Pending,
    Active,
}

impl DesiredState {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "active" => Some(Self::Active),
            "inactive" => Some(Self::Inactive),
            "completed" => Some(Self::Completed),
            "deleted" => Some(Self::Deleted),
            _ => None,
        }
    }

    /// The Canvas workflow state that satisfies this status.
    pub fn canvas_state(self) -> EnrollmentState {
        match self {
            Self::Active => EnrollmentState::Active,
            Self::Inactive => EnrollmentState::Inactive,
            Self::Completed => EnrollmentState::Completed,
            Self::Deleted => EnrollmentState::Deleted,
            Self::Pending => EnrollmentState::Invited,
        }
    }
}

/// Whose words name states in plans, audit rows and explanations: the target's (CONTRACT v2 "a second target").
/// The plan compares [`EnrollmentState`]s; only their names differ.
///
/// Open edX's program statuses map onto the shared states as `reconcile.removal` does (`conclude` → `ended`,
/// `delete` → `canceled`, `inactivate` → `suspended`), with `enrolled` = active and `pending` = invited; a course
/// run enrollment (a row with a section, the run key) is `active` or `inactive`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Vocabulary {
    #[default]
    Canvas,
    OpenEdx,
}

impl Vocabulary {
    /// The system the vocabulary is of, for messages ("not in Canvas").
    pub fn system(self) -> &'static str {
        match self {
            Vocabulary::Canvas => "Canvas",
            Vocabulary::OpenEdx => "Open edX",
        }
    }

    /// The target's name of a state, at a place (the course itself, or a section).
    pub fn state_name(self, section: SectionKey, state: EnrollmentState) -> &'static str {
        self.name_at(matches!(section, SectionKey::Sis(_)), state)
    }

    /// The state a name of this vocabulary means at a place; [`EnrollmentState::Unknown`] for anything else.
    pub fn parse_state(self, section: SectionKey, name: &str) -> EnrollmentState {
        self.parse_at(matches!(section, SectionKey::Sis(_)), name)
    }

    /// The state a removal leaves an enrollment in at a place: the policy's, except that an Open edX run
    /// enrollment becomes `inactive` (course access is its status, facts §5.2). `None` under `keep`.
    pub fn removal_state(
        self,
        in_section: bool,
        removal: RemovalPolicy,
    ) -> Option<EnrollmentState> {
        match (self, in_section, removal.resulting_state()) {
            (Vocabulary::OpenEdx, true, Some(_)) => Some(EnrollmentState::Inactive),
            (_, _, state) => state,
        }
    }

    /// Whether the target still lists an enrollment in state `deleted` (Open edX's `canceled`; Canvas hides it,
    /// and enrolling again revives the row).
    pub fn lists_deleted(self) -> bool {
        self == Vocabulary::OpenEdx
    }

    /// Whether an invited state means the user was sent an invitation (Canvas), so that restoring it would
    /// notify them again; Open edX's `pending` is a plain status.
    pub fn invites(self) -> bool {
        self == Vocabulary::Canvas
    }

    /// [`Vocabulary::state_name`] where only whether the place is a section is known (a recorded change).
    pub fn name_at(self, in_section: bool, state: EnrollmentState) -> &'static str {
        match (self, in_section, state) {
            (Vocabulary::Canvas, _, s) | (Vocabulary::OpenEdx, true, s) => s.as_str(),
            (Vocabulary::OpenEdx, false, s) => match s {
                EnrollmentState::Active => "enrolled",
                EnrollmentState::Invited => "pending",
                EnrollmentState::Inactive => "suspended",
                EnrollmentState::Deleted => "canceled",
                EnrollmentState::Completed => "ended",
                other => other.as_str(),
            },
        }
    }

    /// [`Vocabulary::parse_state`] where only whether the place is a section is known.
    pub fn parse_at(self, in_section: bool, name: &str) -> EnrollmentState {
        match (self, in_section) {
            (Vocabulary::Canvas, _) => EnrollmentState::parse(name),
            (Vocabulary::OpenEdx, true) => match name {
                "active" => EnrollmentState::Active,
                "inactive" => EnrollmentState::Inactive,
                _ => EnrollmentState::Unknown,
            },
            (Vocabulary::OpenEdx, false) => match name {
                "enrolled" => EnrollmentState::Active,
                "pending" => EnrollmentState::Invited,
                "suspended" => EnrollmentState::Inactive,
                "canceled" => EnrollmentState::Deleted,
                "ended" => EnrollmentState::Completed,
                _ => EnrollmentState::Unknown,
            },
        }
    }
}

/// Which section of a course an enrollment is in, as the SIS can name it: a SIS section id, or the course's
/// default section (SIS `section_id` NULL). On the live side a section without a SIS id counts as the default
/// section, since Canvas creates the default section without one (README: "Sections").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum SectionKey {
    Sis(Sym),
    Default,
}

/// One enrollment the SIS wants (after role rules).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DesiredEnrollment {
    pub user: Sym,
    pub course: Sym,
    pub section: SectionKey,
    pub role: RoleId,
    pub state: DesiredState,
}

impl DesiredEnrollment {
    pub fn key(&self) -> EnrollmentKey {
        EnrollmentKey {
            user: self.user,
            course: self.course,
            section: self.section,
            role: self.role,
        }
    }
}

/// Canvas's identity of an enrollment: user + section + role (facts §1: one row per enrollment).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct EnrollmentKey {
    pub user: Sym,
    pub course: Sym,
    pub section: SectionKey,
    pub role: RoleId,
}

/// One enrollment as Canvas lists it, reduced to what the plan compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LiveEnrollment {
    pub id: u64,
    /// The user's SIS identity (`sis_user_id`, or lower-cased `login_id`), `None` for users without one.
    pub user: Option<Sym>,
    pub canvas_user_id: u64,
    /// The managed course it was listed under (SIS course id).
    pub course: Sym,
    pub canvas_course_id: u64,
    pub section: SectionKey,
    pub canvas_section_id: u64,
    pub role: RoleId,
    pub state: EnrollmentState,
    /// Set on observer rows Canvas creates for linked observers (facts §1); never removed for SIS silence.
    pub associated_user_id: Option<u64>,
}

impl LiveEnrollment {
    pub fn key(&self) -> Option<EnrollmentKey> {
        Some(EnrollmentKey {
            user: self.user?,
            course: self.course,
            section: self.section,
            role: self.role,
        })
    }
}

/// The four kinds of change (CONTRACT.md `audit_log.action`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub enum Action {
    Enroll,
    Remove,
    ChangeRole,
    ChangeState,
}

impl Action {
    pub const ALL: [Action; 4] = [
        Action::Enroll,
        Action::Remove,
        Action::ChangeRole,
        Action::ChangeState,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Enroll => "enroll",
            Action::Remove => "remove",
            Action::ChangeRole => "change_role",
            Action::ChangeState => "change_state",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
