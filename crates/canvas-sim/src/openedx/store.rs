//! The simulated LMS: program enrollments, program-course enrollments, the plain course enrollments they drive
//! (facts §5.2), course staff roles, OAuth applications and issued tokens, the catalog cache (programs and their
//! curricula) and a clock tests can move. The write rules are `write.rs`, a further `impl OpenEdxStore`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use sha1::{Digest, Sha1};

use super::replica::{Replica, ReplicaLag};
use super::seed::{OpenEdxSeed, OpenEdxSeedError, SeedClient, SeedLmsUser, SeedProgramEnrollment};

/// Program enrollment statuses (facts §5.1, [R6]).
pub const PROGRAM_STATUSES: [&str; 5] = ["enrolled", "pending", "suspended", "canceled", "ended"];
/// Program-course enrollment statuses (facts §5.2).
pub const COURSE_STATUSES: [&str; 2] = ["active", "inactive"];
/// Mode of the course enrollments program learners get (facts §5.2).
pub const MASTERS: &str = "masters";
/// What retired external keys start with (facts §6.6).
pub const RETIRED_KEY_PREFIX: &str = "retired_external_key_";

#[derive(Debug, Clone, PartialEq)]
pub struct ProgramEnrollment {
    pub id: u64,
    pub program_uuid: String,
    /// Lowercase, hyphenated.
    pub curriculum_uuid: String,
    /// As first written (the casing of the creating request, facts §6.5).
    pub external_user_key: String,
    pub status: String,
    /// The linked LMS user; `None` = waiting (facts §6.1).
    pub username: Option<String>,
    pub created: DateTime<Utc>,
    /// The waiting-expiry clock (facts §6.4): any program-level PATCH/PUT resets it.
    pub modified: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ProgramCourseEnrollment {
    pub id: u64,
    pub program_enrollment_id: u64,
    pub course_key: String,
    pub status: String,
}

/// A plain LMS course enrollment (`student_courseenrollment`).
#[derive(Debug, Clone, PartialEq)]
pub struct CourseEnrollment {
    pub mode: String,
    pub is_active: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Program {
    pub uuid: String,
    pub authoring_org: Option<String>,
    pub curricula: Vec<Curriculum>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Curriculum {
    pub uuid: String,
    pub is_active: bool,
    pub course_runs: Vec<String>,
}

impl Program {
    /// The runs "in" the program: those of its FIRST active curriculum (facts §3.1).
    pub fn course_runs(&self) -> &[String] {
        self.curricula
            .iter()
            .find(|c| c.is_active)
            .map_or(&[], |c| c.course_runs.as_slice())
    }
}

/// The replicated part of the LMS database: what a lagging read replica may show older. Change it through the
/// methods, which keep the key index (external keys are matched case-insensitively, facts §6.5).
#[derive(Debug, Clone, Default)]
pub struct Tables {
    pub(crate) program_enrollments: BTreeMap<u64, ProgramEnrollment>,
    pub(crate) course_enrollments: BTreeMap<u64, ProgramCourseEnrollment>,
    /// PCE ids with a pending `staff` CourseAccessRoleAssignment (waiting learners, facts §3.5).
    pub(crate) role_assignments: BTreeSet<u64>,
    /// Lowercased external key → program enrollment ids (every program).
    by_key: HashMap<String, BTreeSet<u64>>,
    /// Program enrollment id → its PCE ids.
    by_program_enrollment: HashMap<u64, BTreeSet<u64>>,
}

/// The case-insensitive form of an external key (Python's `str.lower()`, as CaseInsensitiveDict uses).
pub(crate) fn key_fold(key: &str) -> String {
    key.to_lowercase()
}

impl Tables {
    pub fn program_enrollments(&self) -> impl Iterator<Item = &ProgramEnrollment> {
        self.program_enrollments.values()
    }

    pub fn course_enrollments(&self) -> impl Iterator<Item = &ProgramCourseEnrollment> {
        self.course_enrollments.values()
    }

    /// Program enrollments whose key equals `key` case-insensitively, any program, in id order.
    pub fn enrollments_with_key<'a>(
        &'a self,
        key: &str,
    ) -> impl Iterator<Item = &'a ProgramEnrollment> + 'a {
        self.by_key
            .get(&key_fold(key))
            .into_iter()
            .flatten()
            .filter_map(|id| self.program_enrollments.get(id))
    }

    /// The program's enrollments whose key equals `key` case-insensitively, in id order.
    pub fn program_enrollments_by_key<'a>(
        &'a self,
        program_uuid: &str,
        key: &str,
    ) -> impl Iterator<Item = &'a ProgramEnrollment> + 'a {
        let program_uuid = program_uuid.to_string();
        self.enrollments_with_key(key)
            .filter(move |e| e.program_uuid == program_uuid)
    }

    /// The course enrollments hanging off one program enrollment, in id order.
    pub fn course_enrollments_of(
        &self,
        program_enrollment_id: u64,
    ) -> impl Iterator<Item = &ProgramCourseEnrollment> {
        self.by_program_enrollment
            .get(&program_enrollment_id)
            .into_iter()
            .flatten()
            .filter_map(|id| self.course_enrollments.get(id))
    }

    pub(crate) fn insert_program_enrollment(&mut self, pe: ProgramEnrollment) {
        self.by_key
            .entry(key_fold(&pe.external_user_key))
            .or_default()
            .insert(pe.id);
        self.program_enrollments.insert(pe.id, pe);
    }

    pub(crate) fn rekey_program_enrollment(&mut self, id: u64, new_key: String) {
        let Some(pe) = self.program_enrollments.get_mut(&id) else {
            return;
        };
        if let Some(ids) = self.by_key.get_mut(&key_fold(&pe.external_user_key)) {
            ids.remove(&id);
        }
        self.by_key
            .entry(key_fold(&new_key))
            .or_default()
            .insert(id);
        pe.external_user_key = new_key;
    }

    /// Deletes a program enrollment with its course enrollments and role assignments (the FK cascade).
    pub(crate) fn remove_program_enrollment(&mut self, id: u64) {
        if let Some(pe) = self.program_enrollments.remove(&id)
            && let Some(ids) = self.by_key.get_mut(&key_fold(&pe.external_user_key))
        {
            ids.remove(&id);
        }
        for pce in self.by_program_enrollment.remove(&id).into_iter().flatten() {
            self.course_enrollments.remove(&pce);
            self.role_assignments.remove(&pce);
        }
    }

    pub(crate) fn insert_course_enrollment(&mut self, pce: ProgramCourseEnrollment) {
        self.by_program_enrollment
            .entry(pce.program_enrollment_id)
            .or_default()
            .insert(pce.id);
        self.course_enrollments.insert(pce.id, pce);
    }
}

/// An issued access token.
#[derive(Debug, Clone)]
pub(crate) struct IssuedToken {
    pub client_id: String,
    pub jwt: bool,
    pub restricted: bool,
    pub expires_at: DateTime<Utc>,
}

/// Settings a running simulator's store reads (set from `OpenEdxOptions`).
#[derive(Debug, Clone)]
pub(crate) struct StoreSettings {
    pub jwt_expires_in: chrono::Duration,
    pub waiting_expiry: Option<chrono::Duration>,
    pub retirement_salt: String,
}

#[derive(Debug)]
pub struct OpenEdxStore {
    pub(crate) tables: Tables,
    pub(crate) next_id: u64,
    pub(crate) users: BTreeMap<String, SeedLmsUser>,
    pub(crate) clients: BTreeMap<String, SeedClient>,
    pub(crate) programs: BTreeMap<String, Program>,
    /// Course runs the LMS has outside every curriculum.
    pub(crate) extra_courses: BTreeSet<String>,
    /// (slug, organization).
    pub(crate) saml_providers: Vec<(String, String)>,
    /// (username, course key) → enrollment.
    pub(crate) lms_enrollments: BTreeMap<(String, String), CourseEnrollment>,
    /// (username, course key) holding CourseStaffRole.
    pub(crate) staff_roles: BTreeSet<(String, String)>,
    pub(crate) tokens: HashMap<String, IssuedToken>,
    pub(crate) replica: Replica,
    pub(crate) settings: StoreSettings,
    clock_offset: chrono::Duration,
}

fn invalid(message: String) -> OpenEdxSeedError {
    OpenEdxSeedError::Invalid(message)
}

impl OpenEdxStore {
    pub(crate) fn from_seed(
        seed: &OpenEdxSeed,
        settings: StoreSettings,
        lag: ReplicaLag,
    ) -> Result<OpenEdxStore, OpenEdxSeedError> {
        let mut store = OpenEdxStore {
            tables: Tables::default(),
            next_id: 1,
            users: BTreeMap::new(),
            clients: BTreeMap::new(),
            programs: BTreeMap::new(),
            extra_courses: seed.courses.iter().cloned().collect(),
            saml_providers: seed
                .saml_providers
                .iter()
                .map(|p| (p.slug.clone(), p.organization.clone()))
                .collect(),
            lms_enrollments: BTreeMap::new(),
            staff_roles: BTreeSet::new(),
            tokens: HashMap::new(),
            replica: Replica::new(lag),
            settings,
            clock_offset: chrono::Duration::zero(),
        };
        for user in &seed.users {
            if store
                .users
                .insert(user.username.clone(), user.clone())
                .is_some()
            {
                return Err(invalid(format!("user {} is listed twice", user.username)));
            }
        }
        if seed.oauth_clients.is_empty() {
            // Without clients the simulator would be unusable: the default one, owned by a staff service user.
            let owner = super::DEFAULT_OWNER;
            store
                .users
                .entry(owner.to_string())
                .or_insert_with(|| SeedLmsUser::new(owner).staff());
            store.clients.insert(
                super::DEFAULT_CLIENT_ID.to_string(),
                SeedClient::new(
                    super::DEFAULT_CLIENT_ID,
                    super::DEFAULT_CLIENT_SECRET,
                    owner,
                ),
            );
        }
        for client in &seed.oauth_clients {
            store
                .clients
                .insert(client.client_id.clone(), client.clone());
        }
        for program in &seed.programs {
            let curricula = program
                .curricula
                .iter()
                .map(|c| Curriculum {
                    uuid: normalize_uuid(&c.uuid).unwrap_or_else(|| c.uuid.clone()),
                    is_active: c.is_active,
                    course_runs: c.course_runs.clone(),
                })
                .collect();
            let program = Program {
                uuid: program.uuid.clone(),
                authoring_org: program.authoring_org.clone(),
                curricula,
            };
            if store
                .programs
                .insert(program.uuid.clone(), program)
                .is_some()
            {
                return Err(invalid("a program uuid is listed twice".to_string()));
            }
        }
        for ce in &seed.course_enrollments {
            store.lms_enrollments.insert(
                (ce.username.clone(), ce.course_key.clone()),
                CourseEnrollment {
                    mode: ce.mode.clone(),
                    is_active: ce.is_active,
                },
            );
        }
        let now = store.now();
        for pe in &seed.program_enrollments {
            if !store.programs.contains_key(&pe.program_uuid) {
                return Err(invalid(format!(
                    "program enrollment {} names unknown program {}",
                    pe.student_key, pe.program_uuid
                )));
            }
            if !PROGRAM_STATUSES.contains(&pe.status.as_str()) {
                return Err(invalid(format!(
                    "program enrollment {} has status {:?}, not one of {PROGRAM_STATUSES:?}",
                    pe.student_key, pe.status
                )));
            }
            if let Some(username) = &pe.username
                && !store.users.contains_key(username)
            {
                return Err(invalid(format!(
                    "program enrollment {} names unknown user {username}",
                    pe.student_key
                )));
            }
            let curriculum_uuid = normalize_uuid(&pe.curriculum_uuid).ok_or_else(|| {
                invalid(format!(
                    "program enrollment {}: curriculum_uuid {:?} is not a UUID",
                    pe.student_key, pe.curriculum_uuid
                ))
            })?;
            store.insert_seeded(pe.clone(), curriculum_uuid, now);
        }
        for pce in &seed.program_course_enrollments {
            if !COURSE_STATUSES.contains(&pce.status.as_str()) {
                return Err(invalid(format!(
                    "program course enrollment {} has status {:?}, not one of {COURSE_STATUSES:?}",
                    pce.student_key, pce.status
                )));
            }
            let Some(pe) = store
                .tables
                .program_enrollments_by_key(&pce.program_uuid, &pce.student_key)
                .last()
                .cloned()
            else {
                return Err(invalid(format!(
                    "program course enrollment {} in {} has no program enrollment",
                    pce.student_key, pce.program_uuid
                )));
            };
            let id = store.allocate_id();
            store
                .tables
                .insert_course_enrollment(ProgramCourseEnrollment {
                    id,
                    program_enrollment_id: pe.id,
                    course_key: pce.course_key.clone(),
                    status: pce.status.clone(),
                });
            if let Some(username) = &pe.username {
                store.enroll_in_masters_track(username, &pce.course_key, &pce.status);
                if pce.course_staff {
                    store
                        .staff_roles
                        .insert((username.clone(), pce.course_key.clone()));
                }
            } else if pce.course_staff {
                store.tables.role_assignments.insert(id);
            }
        }
        Ok(store)
    }

    pub(crate) fn allocate_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// The simulated wall clock: real time plus whatever [`OpenEdxStore::advance_clock`] added.
    pub fn now(&self) -> DateTime<Utc> {
        Utc::now() + self.clock_offset
    }

    /// Moves the clock forward (token expiry, the 60-day waiting expiry).
    pub fn advance_clock(&mut self, by: std::time::Duration) {
        self.clock_offset += chrono::Duration::from_std(by).unwrap_or(chrono::Duration::MAX);
    }

    /// Replaces the read-replica lag (pending writes stay pending under the new rule).
    pub fn set_replica_lag(&mut self, lag: ReplicaLag) {
        self.replica.set_lag(lag);
    }

    /// The primary's tables (what writes see; reads may see an older copy, see `replica.rs`).
    pub fn tables(&self) -> &Tables {
        &self.tables
    }

    /// The older copy a GET sees now if the read replica lags, counting the read against the lag; `None` = the
    /// primary's tables.
    pub(crate) fn replica_snapshot(&mut self) -> Option<Arc<Tables>> {
        self.replica.read()
    }

    /// The program's enrollment for this key (case-insensitive; the newest when there are several).
    pub fn program_enrollment(&self, program_uuid: &str, key: &str) -> Option<&ProgramEnrollment> {
        self.tables
            .program_enrollments_by_key(program_uuid, key)
            .last()
    }

    /// Every enrollment of a program, in id order.
    pub fn program_enrollments(&self, program_uuid: &str) -> Vec<ProgramEnrollment> {
        self.tables
            .program_enrollments
            .values()
            .filter(|e| e.program_uuid == program_uuid)
            .cloned()
            .collect()
    }

    /// The course enrollment of a learner (case-insensitive key) in a program and run.
    pub fn program_course_enrollment(
        &self,
        program_uuid: &str,
        course_key: &str,
        key: &str,
    ) -> Option<&ProgramCourseEnrollment> {
        self.tables
            .program_enrollments_by_key(program_uuid, key)
            .flat_map(|pe| self.tables.course_enrollments_of(pe.id))
            .filter(|pce| pce.course_key == course_key)
            .last()
    }

    /// The plain LMS enrollment a linked learner has in a run.
    pub fn lms_enrollment(&self, username: &str, course_key: &str) -> Option<&CourseEnrollment> {
        self.lms_enrollments
            .get(&(username.to_string(), course_key.to_string()))
    }

    /// Whether this program-course enrollment reads back `course_staff: true` (facts §3.5).
    pub fn is_course_staff(&self, pce: &ProgramCourseEnrollment) -> bool {
        self.course_staff_in(&self.tables, pce)
    }

    pub(crate) fn course_staff_in(&self, tables: &Tables, pce: &ProgramCourseEnrollment) -> bool {
        match tables
            .program_enrollments
            .get(&pce.program_enrollment_id)
            .and_then(|pe| pe.username.as_ref())
        {
            Some(username) => self
                .staff_roles
                .contains(&(username.clone(), pce.course_key.clone())),
            None => tables.role_assignments.contains(&pce.id),
        }
    }

    pub fn user(&self, username: &str) -> Option<&SeedLmsUser> {
        self.users.get(username)
    }

    /// Adds (or replaces) an LMS user.
    pub fn add_user(&mut self, user: SeedLmsUser) {
        self.users.insert(user.username.clone(), user);
    }

    /// A program enrollment made outside the API under test (by hand, by another script), as the seed makes them.
    pub fn add_program_enrollment(&mut self, pe: SeedProgramEnrollment) {
        let curriculum_uuid =
            normalize_uuid(&pe.curriculum_uuid).unwrap_or_else(|| pe.curriculum_uuid.clone());
        let now = self.now();
        self.insert_seeded(pe, curriculum_uuid, now);
    }

    fn insert_seeded(
        &mut self,
        pe: SeedProgramEnrollment,
        curriculum_uuid: String,
        now: DateTime<Utc>,
    ) {
        let id = self.allocate_id();
        self.tables.insert_program_enrollment(ProgramEnrollment {
            id,
            program_uuid: pe.program_uuid,
            curriculum_uuid,
            external_user_key: pe.student_key,
            status: pe.status,
            username: pe.username,
            created: now,
            modified: pe.modified.unwrap_or(now),
        });
    }

    /// Whether the LMS knows this run (in some curriculum, or listed in the seed's `courses`).
    pub fn course_exists(&self, course_key: &str) -> bool {
        self.extra_courses.contains(course_key)
            || self
                .programs
                .values()
                .flat_map(|p| &p.curricula)
                .any(|c| c.course_runs.iter().any(|r| r == course_key))
    }

    /// `enroll_in_masters_track` (facts §5.2): the course enrollment a linked PCE gets.
    pub(crate) fn enroll_in_masters_track(
        &mut self,
        username: &str,
        course_key: &str,
        status: &str,
    ) {
        let entry = self
            .lms_enrollments
            .entry((username.to_string(), course_key.to_string()))
            .or_insert(CourseEnrollment {
                mode: MASTERS.to_string(),
                is_active: false,
            });
        if entry.is_active {
            if entry.mode == "audit" || entry.mode == "honor" {
                entry.mode = MASTERS.to_string();
            }
            // Another active mode (e.g. verified) is left as is: Open edX logs an error and links it.
        } else {
            // `CourseEnrollment.enroll(mode='masters', check_access=False)`, reactivating an inactive one.
            entry.mode = MASTERS.to_string();
            entry.is_active = true;
        }
        if entry.mode == MASTERS && status == "inactive" {
            entry.is_active = false;
        }
    }

    /// `expire_waiting_enrollments --expiration_days N` (facts §6.4): deletes every waiting program enrollment not
    /// modified for `after`, with its course enrollments and role assignments. Returns how many were deleted.
    pub fn expire_waiting_enrollments(&mut self, after: std::time::Duration) -> usize {
        let cutoff =
            self.now() - chrono::Duration::from_std(after).unwrap_or(chrono::Duration::MAX);
        let expired: BTreeSet<u64> = self
            .tables
            .program_enrollments
            .values()
            .filter(|e| e.username.is_none() && e.modified <= cutoff)
            .map(|e| e.id)
            .collect();
        if expired.is_empty() {
            return 0;
        }
        let before = self.replica.is_lagging().then(|| self.tables.clone());
        for id in &expired {
            self.tables.remove_program_enrollment(*id);
        }
        self.replica.committed(before, &self.tables);
        expired.len()
    }

    /// Runs the scheduled expiry when the simulator is configured with one.
    pub(crate) fn run_scheduled_expiry(&mut self) {
        if let Some(after) = self.settings.waiting_expiry.and_then(|d| d.to_std().ok()) {
            self.expire_waiting_enrollments(after);
        }
    }

    /// `ProgramEnrollment.retire_user` (facts §6.6): every enrollment linked to the user gets the key
    /// `retired_external_key_<sha1(salt + key.lower())>`. Returns how many were retired.
    pub fn retire_user(&mut self, username: &str) -> usize {
        let salt = self.settings.retirement_salt.clone();
        let linked: Vec<(u64, String)> = self
            .tables
            .program_enrollments
            .values()
            .filter(|pe| pe.username.as_deref() == Some(username))
            .map(|pe| (pe.id, pe.external_user_key.clone()))
            .collect();
        let before = self.replica.is_lagging().then(|| self.tables.clone());
        for (id, key) in &linked {
            self.tables
                .rekey_program_enrollment(*id, retired_external_key(key, &salt));
        }
        let count = linked.len();
        if count > 0 {
            self.replica.committed(before, &self.tables);
        }
        if let Some(user) = self.users.get_mut(username) {
            user.social_uid = None;
        }
        count
    }

    /// A UserSocialAuth save for `username` with `uid` (facts §6.2): links the learner's waiting enrollments whose
    /// key equals the uid's key case-insensitively, in programs of the provider's organization. Returns how many.
    pub fn link_social_auth(&mut self, username: &str, uid: &str) -> usize {
        let Some(user) = self.users.get_mut(username) else {
            return 0;
        };
        user.social_uid = Some(uid.to_string());
        let parts: Vec<&str> = uid.split(':').collect();
        let [slug, key] = parts.as_slice() else {
            return 0; // "non-saml": keys with ':' never auto-link.
        };
        let org = self.provider_org(slug);
        if !self.saml_providers.is_empty() && org.is_none() {
            return 0;
        }
        let targets: Vec<u64> = self
            .tables
            .enrollments_with_key(key)
            .filter(|pe| pe.username.is_none())
            .filter(|pe| {
                org.is_none()
                    || self
                        .programs
                        .get(&pe.program_uuid)
                        .and_then(|p| p.authoring_org.as_deref())
                        == org.as_deref()
            })
            .map(|pe| pe.id)
            .collect();
        let before = self.replica.is_lagging().then(|| self.tables.clone());
        for id in &targets {
            if let Some(pe) = self.tables.program_enrollments.get_mut(id) {
                pe.username = Some(username.to_string());
            }
            let pces: Vec<ProgramCourseEnrollment> =
                self.tables.course_enrollments_of(*id).cloned().collect();
            for pce in pces {
                self.enroll_in_masters_track(username, &pce.course_key, &pce.status);
                if self.tables.role_assignments.remove(&pce.id) {
                    self.staff_roles
                        .insert((username.to_string(), pce.course_key.clone()));
                }
            }
        }
        if !targets.is_empty() {
            self.replica.committed(before, &self.tables);
        }
        targets.len()
    }

    /// The organization of a SAML provider; `None` when no providers are configured (then every slug counts).
    fn provider_org(&self, slug: &str) -> Option<String> {
        self.saml_providers
            .iter()
            .find(|(s, _)| s == slug)
            .map(|(_, org)| org.clone())
    }

    /// `get_users_by_external_keys` (facts §2.6): the user whose social uid is `<slug>:<key>` for a provider of the
    /// program's organization. The match on the key is exact: a key differing only in case creates a waiting
    /// enrollment (the derived quirk of §6.5).
    pub(crate) fn user_for_key(&self, program_uuid: &str, key: &str) -> Option<String> {
        let org = self
            .programs
            .get(program_uuid)
            .and_then(|p| p.authoring_org.clone());
        let slugs: Option<Vec<&str>> = (!self.saml_providers.is_empty()).then(|| {
            self.saml_providers
                .iter()
                .filter(|(_, o)| Some(o) == org.as_ref())
                .map(|(s, _)| s.as_str())
                .collect()
        });
        self.users.values().find_map(|user| {
            let uid = user.social_uid.as_deref()?;
            let (slug, uid_key) = uid.split_once(':')?;
            let provider_ok = slugs.as_ref().is_none_or(|s| s.contains(&slug));
            (provider_ok && uid_key == key).then(|| user.username.clone())
        })
    }
}

/// Lowercase hyphenated form of a UUID in any form Python's `uuid.UUID(hex=...)` accepts.
pub(crate) fn normalize_uuid(text: &str) -> Option<String> {
    uuid::Uuid::parse_str(text.trim())
        .ok()
        .map(|u| u.hyphenated().to_string())
}

/// `retired_external_key_<sha1(salt + key.lower())>` (facts §6.6).
pub fn retired_external_key(key: &str, salt: &str) -> String {
    let digest = Sha1::digest(format!("{salt}{}", key.to_lowercase()).as_bytes());
    format!("{RETIRED_KEY_PREFIX}{}", hex::encode(digest))
}
