//! The per-key write rules, `write_program_enrollments` and `write_program_course_enrollments` of Open edX's
//! `api/writing.py` (facts §2.5, §3.3, §6.5), over the store. Requests arrive validated (`body.rs`); the answer is
//! the flat per-key map, a Python dict: insertion ordered, keyed by exact string.

use std::collections::BTreeSet;

use super::store::{
    COURSE_STATUSES, OpenEdxStore, PROGRAM_STATUSES, ProgramCourseEnrollment, ProgramEnrollment,
    key_fold,
};

/// `create_update_by_write_method` (facts §2.5): POST creates, PATCH updates, PUT does both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteMethod {
    Post,
    Patch,
    Put,
}

impl WriteMethod {
    pub fn parse(method: &str) -> Option<WriteMethod> {
        match method {
            "POST" => Some(WriteMethod::Post),
            "PATCH" => Some(WriteMethod::Patch),
            "PUT" => Some(WriteMethod::Put),
            _ => None,
        }
    }
    fn create(self) -> bool {
        self != WriteMethod::Patch
    }
    fn update(self) -> bool {
        self != WriteMethod::Post
    }
}

/// One validated item of a program-enrollment write.
#[derive(Debug, Clone, PartialEq)]
pub struct ProgramRequest {
    pub key: String,
    pub status: String,
    /// Lowercase hyphenated; `None` on PATCH.
    pub curriculum_uuid: Option<String>,
}

/// One validated item of a program-course-enrollment write.
#[derive(Debug, Clone, PartialEq)]
pub struct CourseRequest {
    pub key: String,
    pub status: String,
    pub course_staff: Option<bool>,
}

/// The per-key answer: `{"<student_key>": "<result>"}` in Python dict order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KeyResults(pub Vec<(String, String)>);

impl KeyResults {
    /// `results[key] = value`: replaces in place when the exact key is there, else appends.
    fn set(&mut self, key: &str, value: &str) {
        match self.0.iter_mut().find(|(k, _)| k == key) {
            Some(entry) => entry.1 = value.to_string(),
            None => self.0.push((key.to_string(), value.to_string())),
        }
    }

    #[cfg(test)]
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// `get_enrollment_http_code` (facts §2.7): 204 empty, 200 all OK, 207 some, 422 none.
    pub fn http_status(&self, ok: &[&str]) -> u16 {
        let ok_count = self
            .0
            .iter()
            .filter(|(_, v)| ok.contains(&v.as_str()))
            .count();
        match (self.0.len(), ok_count) {
            (0, _) => 204,
            (_, 0) => 422,
            (n, k) if k < n => 207,
            _ => 200,
        }
    }
}

/// `_organize_requests_by_external_key`: a CaseInsensitiveDict of requests and a case-SENSITIVE set of duplicated
/// keys. A repeated key (any casing) drops every request for it and records the casing of the repeat; a further
/// occurrence in a casing not yet in the set starts over as a fresh request (facts §6.5).
fn organize<T>(requests: Vec<(String, T)>) -> (Vec<(String, T)>, Vec<String>) {
    let mut by_key: Vec<(String, T)> = Vec::new();
    let mut duplicated: Vec<String> = Vec::new();
    for (key, request) in requests {
        if duplicated.contains(&key) {
            continue;
        }
        let folded = key_fold(&key);
        if let Some(pos) = by_key.iter().position(|(k, _)| key_fold(k) == folded) {
            by_key.remove(pos);
            duplicated.push(key);
            continue;
        }
        by_key.push((key, request));
    }
    (by_key, duplicated)
}

impl OpenEdxStore {
    /// `write_program_enrollments` (facts §2.5).
    pub(crate) fn write_program_enrollments(
        &mut self,
        program_uuid: &str,
        method: WriteMethod,
        requests: Vec<ProgramRequest>,
    ) -> KeyResults {
        let before = self.replica.is_lagging().then(|| self.tables.clone());
        let (requests, duplicated) =
            organize(requests.into_iter().map(|r| (r.key.clone(), r)).collect());
        let now = self.now();
        let mut results = KeyResults::default();
        let mut to_create = Vec::new();
        let mut changed = false;
        for (key, request) in &requests {
            if !PROGRAM_STATUSES.contains(&request.status.as_str()) {
                results.set(key, "invalid-status");
                continue;
            }
            // Any curriculum: the code ignores it (facts §2.5); the newest row wins, as in the CaseInsensitiveDict.
            let existing = self
                .tables
                .program_enrollments_by_key(program_uuid, key)
                .last()
                .map(|e| e.id);
            match existing {
                Some(_) if !method.update() => results.set(key, "conflict"),
                Some(id) => {
                    if let Some(pe) = self.tables.program_enrollments.get_mut(&id) {
                        // `save()` bumps `modified` even when the status is unchanged (facts §6.4).
                        pe.status = request.status.clone();
                        pe.modified = now;
                        changed = true;
                    }
                    results.set(key, &request.status);
                }
                None if !method.create() => results.set(key, "not-in-program"),
                None => {
                    let username = self.user_for_key(program_uuid, key);
                    to_create.push(ProgramEnrollment {
                        id: 0,
                        program_uuid: program_uuid.to_string(),
                        curriculum_uuid: request.curriculum_uuid.clone().unwrap_or_default(),
                        external_user_key: key.clone(),
                        status: request.status.clone(),
                        username,
                        created: now,
                        modified: now,
                    });
                    results.set(key, &request.status);
                }
            }
        }
        for mut pe in to_create {
            pe.id = self.allocate_id();
            self.tables.insert_program_enrollment(pe);
            changed = true;
        }
        for key in &duplicated {
            results.set(key, "duplicated");
        }
        if changed {
            self.replica.committed(before, &self.tables);
        }
        results
    }

    /// `write_program_course_enrollments` (facts §3.3). The course is known to be in the program.
    pub(crate) fn write_program_course_enrollments(
        &mut self,
        program_uuid: &str,
        course_key: &str,
        method: WriteMethod,
        requests: Vec<CourseRequest>,
    ) -> KeyResults {
        let before = self.replica.is_lagging().then(|| self.tables.clone());
        let (mut requests, duplicated) =
            organize(requests.into_iter().map(|r| (r.key.clone(), r)).collect());
        let mut results = KeyResults::default();
        for key in &duplicated {
            results.set(key, "duplicated");
        }
        if requests.is_empty() {
            return results;
        }

        // 2. The cross-program guard: one active PCE per learner and run (facts §3.3, ADR 0003). Keyed by the
        // STORED casing.
        let requested: Vec<(String, String)> = requests
            .iter()
            .map(|(k, r)| (key_fold(k), r.status.clone()))
            .collect();
        let mut conflicted: Vec<String> = Vec::new();
        for (folded, status) in &requested {
            if status != "active" {
                continue;
            }
            for pe in self.tables.enrollments_with_key(folded) {
                let active_elsewhere = pe.program_uuid != program_uuid
                    && self
                        .tables
                        .course_enrollments_of(pe.id)
                        .any(|pce| pce.course_key == course_key && pce.status == "active");
                if active_elsewhere {
                    match conflicted.iter_mut().find(|k| key_fold(k) == *folded) {
                        Some(stored) => *stored = pe.external_user_key.clone(),
                        None => conflicted.push(pe.external_user_key.clone()),
                    }
                }
            }
        }
        for stored in &conflicted {
            let folded = key_fold(stored);
            requests.retain(|(k, _)| key_fold(k) != folded);
            results.set(stored, "conflict");
        }

        let mut changed = false;
        let mut staff: Vec<(u64, bool)> = Vec::new();
        for (key, request) in &requests {
            if !COURSE_STATUSES.contains(&request.status.as_str()) {
                results.set(key, "invalid-status");
                continue;
            }
            // The program enrollment's status is not checked: a canceled one still takes course writes.
            let Some(pe) = self
                .tables
                .program_enrollments_by_key(program_uuid, key)
                .last()
                .cloned()
            else {
                results.set(key, "not-in-program");
                continue;
            };
            let existing = self
                .tables
                .program_enrollments_by_key(program_uuid, key)
                .flat_map(|e| self.tables.course_enrollments_of(e.id))
                .filter(|pce| pce.course_key == course_key)
                .last()
                .map(|pce| pce.id);
            let written = match existing {
                Some(_) if !method.update() => {
                    results.set(key, "conflict");
                    continue;
                }
                Some(id) => {
                    changed |= self.change_course_enrollment_status(id, &request.status);
                    id
                }
                None if !method.create() => {
                    results.set(key, "not-found");
                    continue;
                }
                None => {
                    if let Some(username) = &pe.username {
                        self.enroll_in_masters_track(username, course_key, &request.status);
                    }
                    let id = self.allocate_id();
                    self.tables
                        .insert_course_enrollment(ProgramCourseEnrollment {
                            id,
                            program_enrollment_id: pe.id,
                            course_key: course_key.to_string(),
                            status: request.status.clone(),
                        });
                    changed = true;
                    id
                }
            };
            results.set(key, &request.status);
            if let Some(flag) = request.course_staff {
                staff.push((written, flag));
            }
        }
        changed |= self.assign_course_staff(course_key, &staff);
        if changed {
            self.replica.committed(before, &self.tables);
        }
        results
    }

    /// `change_program_course_enrollment_status` (facts §3.4): the same status is a no-op (a drifted course
    /// enrollment is not repaired); otherwise the linked course enrollment is (de)activated, mode unchanged.
    fn change_course_enrollment_status(&mut self, pce_id: u64, status: &str) -> bool {
        let Some(pce) = self.tables.course_enrollments.get(&pce_id).cloned() else {
            return false;
        };
        if pce.status == status {
            return false;
        }
        let username = self
            .tables
            .program_enrollments
            .get(&pce.program_enrollment_id)
            .and_then(|pe| pe.username.clone());
        if let Some(username) = username
            && let Some(ce) = self
                .lms_enrollments
                .get_mut(&(username, pce.course_key.clone()))
        {
            ce.is_active = status == "active";
        }
        if let Some(pce) = self.tables.course_enrollments.get_mut(&pce_id) {
            pce.status = status.to_string();
        }
        true
    }

    /// `_assign_course_staff_role` (facts §3.5): a linked learner gets or loses CourseStaffRole (whoever granted
    /// it); a waiting one a pending CourseAccessRoleAssignment.
    fn assign_course_staff(&mut self, course_key: &str, staff: &[(u64, bool)]) -> bool {
        let mut changed = false;
        let ids: BTreeSet<u64> = staff.iter().map(|(id, _)| *id).collect();
        for id in ids {
            let Some(flag) = staff.iter().rev().find(|(i, _)| *i == id).map(|(_, f)| *f) else {
                continue;
            };
            let Some(pce) = self.tables.course_enrollments.get(&id) else {
                continue;
            };
            let username = self
                .tables
                .program_enrollments
                .get(&pce.program_enrollment_id)
                .and_then(|pe| pe.username.clone());
            match username {
                Some(username) => {
                    let role = (username, course_key.to_string());
                    if flag {
                        self.staff_roles.insert(role);
                    } else {
                        self.staff_roles.remove(&role);
                    }
                }
                None => {
                    changed |= if flag {
                        self.tables.role_assignments.insert(id)
                    } else {
                        self.tables.role_assignments.remove(&id)
                    };
                }
            }
        }
        changed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::openedx::replica::ReplicaLag;
    use crate::openedx::seed::{
        OpenEdxSeed, SeedLmsUser, SeedProgram, SeedProgramCourseEnrollment, SeedProgramEnrollment,
    };
    use crate::openedx::store::StoreSettings;

    const P1: &str = "00000000-1111-2222-3333-444444444444";
    const P2: &str = "00000000-1111-2222-3333-555555555555";
    const CUR: &str = "aaaaaaaa-1111-2222-3333-444444444444";
    const RUN: &str = "course-v1:MITx+A+1";

    fn store(seed: OpenEdxSeed) -> OpenEdxStore {
        let settings = StoreSettings {
            jwt_expires_in: chrono::Duration::hours(1),
            waiting_expiry: Some(chrono::Duration::days(60)),
            retirement_salt: "salt".into(),
        };
        OpenEdxStore::from_seed(&seed, settings, ReplicaLag::default()).expect("seed")
    }

    fn two_programs() -> OpenEdxSeed {
        OpenEdxSeed::default()
            .program(SeedProgram::new(P1, "MITx").curriculum(CUR, &[RUN]))
            .program(SeedProgram::new(P2, "MITx").curriculum(CUR, &[RUN]))
            .user(SeedLmsUser::new("ada").with_social_uid("idp:K1"))
    }

    fn program_request(key: &str, status: &str) -> ProgramRequest {
        ProgramRequest {
            key: key.into(),
            status: status.into(),
            curriculum_uuid: Some(CUR.into()),
        }
    }

    fn course_request(key: &str, status: &str) -> CourseRequest {
        CourseRequest {
            key: key.into(),
            status: status.into(),
            course_staff: None,
        }
    }

    #[test]
    fn post_creates_then_conflicts_patch_updates_in_any_casing() {
        let mut s = store(two_programs());
        let r = s.write_program_enrollments(
            P1,
            WriteMethod::Post,
            vec![
                program_request("K1", "enrolled"),
                program_request("k2", "pending"),
            ],
        );
        assert_eq!(r.http_status(&PROGRAM_STATUSES), 200);
        // K1 matches ada's social uid exactly: linked at creation; k2 waits.
        assert_eq!(
            s.program_enrollment(P1, "k1")
                .and_then(|e| e.username.as_deref()),
            Some("ada")
        );
        assert_eq!(
            s.program_enrollment(P1, "K2").map(|e| e.username.clone()),
            Some(None)
        );
        let r = s.write_program_enrollments(
            P1,
            WriteMethod::Post,
            vec![program_request("k1", "ended")],
        );
        assert_eq!(r.get("k1"), Some("conflict"));
        assert_eq!(r.http_status(&PROGRAM_STATUSES), 422);
        let r = s.write_program_enrollments(
            P1,
            WriteMethod::Patch,
            vec![
                program_request("k1", "suspended"),
                program_request("nobody", "ended"),
            ],
        );
        assert_eq!(r.get("k1"), Some("suspended"));
        assert_eq!(r.get("nobody"), Some("not-in-program"));
        assert_eq!(r.http_status(&PROGRAM_STATUSES), 207);
        // The stored key keeps its first casing.
        assert_eq!(
            s.program_enrollment(P1, "k1")
                .map(|e| e.external_user_key.as_str()),
            Some("K1")
        );
    }

    #[test]
    fn invalid_status_and_duplicates_come_out_per_key() {
        let mut s = store(two_programs());
        let r = s.write_program_enrollments(
            P1,
            WriteMethod::Put,
            vec![
                program_request("a", "new"),
                program_request("b", "enrolled"),
                program_request("B", "enrolled"),
            ],
        );
        assert_eq!(
            r.0,
            [
                ("a".to_string(), "invalid-status".to_string()),
                ("B".to_string(), "duplicated".to_string())
            ]
        );
        assert!(s.program_enrollment(P1, "b").is_none());
    }

    #[test]
    fn a_learner_active_in_another_program_conflicts_under_the_stored_casing() {
        let seed = two_programs()
            .enrollment(SeedProgramEnrollment::new("Mover", P1, CUR, "enrolled"))
            .enrollment(SeedProgramEnrollment::new("mover", P2, CUR, "enrolled"))
            .course_enrollment(SeedProgramCourseEnrollment::new("Mover", P1, RUN, "active"));
        let mut s = store(seed);
        let r = s.write_program_course_enrollments(
            P2,
            RUN,
            WriteMethod::Put,
            vec![course_request("MOVER", "active")],
        );
        assert_eq!(r.0, [("Mover".to_string(), "conflict".to_string())]);
        // Deactivate in the old program first, then the new one succeeds.
        let r = s.write_program_course_enrollments(
            P1,
            RUN,
            WriteMethod::Put,
            vec![course_request("mover", "inactive")],
        );
        assert_eq!(r.get("mover"), Some("inactive"));
        let r = s.write_program_course_enrollments(
            P2,
            RUN,
            WriteMethod::Put,
            vec![course_request("MOVER", "active")],
        );
        assert_eq!(r.get("MOVER"), Some("active"));
    }

    #[test]
    fn course_writes_need_a_program_enrollment_and_patch_needs_the_row() {
        let seed = two_programs().enrollment(SeedProgramEnrollment::new("k1", P1, CUR, "canceled"));
        let mut s = store(seed);
        let r = s.write_program_course_enrollments(
            P1,
            RUN,
            WriteMethod::Patch,
            vec![
                course_request("k1", "active"),
                course_request("ghost", "active"),
            ],
        );
        assert_eq!(r.get("k1"), Some("not-found"));
        assert_eq!(r.get("ghost"), Some("not-in-program"));
        let r = s.write_program_course_enrollments(
            P1,
            RUN,
            WriteMethod::Post,
            vec![course_request("k1", "active")],
        );
        assert_eq!(
            r.get("k1"),
            Some("active"),
            "a canceled program enrollment still takes course writes"
        );
        let r = s.write_program_course_enrollments(
            P1,
            RUN,
            WriteMethod::Post,
            vec![course_request("k1", "inactive")],
        );
        assert_eq!(r.get("k1"), Some("conflict"));
    }

    #[test]
    fn linked_course_enrollments_follow_the_masters_rules_and_linking_fulfils_staff() {
        let seed = two_programs()
            .enrollment(SeedProgramEnrollment::new("K1", P1, CUR, "enrolled").linked_to("ada"))
            .enrollment(SeedProgramEnrollment::new("w1", P1, CUR, "pending"))
            .user(SeedLmsUser::new("wendy"));
        let mut s = store(seed);
        let staff = |key: &str| CourseRequest {
            course_staff: Some(true),
            ..course_request(key, "inactive")
        };
        s.write_program_course_enrollments(
            P1,
            RUN,
            WriteMethod::Put,
            vec![staff("K1"), staff("w1")],
        );
        let ce = s
            .lms_enrollment("ada", RUN)
            .expect("a masters enrollment")
            .clone();
        assert_eq!((ce.mode.as_str(), ce.is_active), (MASTERS_MODE, false));
        let pce = s
            .program_course_enrollment(P1, RUN, "W1")
            .expect("pce")
            .clone();
        assert!(
            s.is_course_staff(&pce),
            "a waiting learner's staff role is a pending assignment"
        );
        assert_eq!(s.link_social_auth("wendy", "idp:W1"), 1);
        assert!(
            s.staff_roles
                .contains(&("wendy".to_string(), RUN.to_string()))
        );
        assert_eq!(
            s.lms_enrollment("wendy", RUN).map(|c| c.is_active),
            Some(false)
        );
        s.write_program_course_enrollments(
            P1,
            RUN,
            WriteMethod::Patch,
            vec![course_request("w1", "active")],
        );
        assert_eq!(
            s.lms_enrollment("wendy", RUN).map(|c| c.is_active),
            Some(true)
        );
    }

    #[test]
    fn waiting_enrollments_expire_unless_written_and_retired_keys_are_hashed() {
        let seed = two_programs()
            .enrollment(SeedProgramEnrollment::new("w1", P1, CUR, "pending"))
            .enrollment(SeedProgramEnrollment::new("w2", P1, CUR, "pending"))
            .enrollment(SeedProgramEnrollment::new("K1", P1, CUR, "enrolled").linked_to("ada"));
        let mut s = store(seed);
        s.advance_clock(std::time::Duration::from_secs(59 * 86_400));
        s.write_program_enrollments(
            P1,
            WriteMethod::Patch,
            vec![program_request("w1", "pending")],
        );
        s.advance_clock(std::time::Duration::from_secs(2 * 86_400));
        s.run_scheduled_expiry();
        assert!(
            s.program_enrollment(P1, "w1").is_some(),
            "kept alive by the PATCH"
        );
        assert!(s.program_enrollment(P1, "w2").is_none(), "expired");
        assert!(
            s.program_enrollment(P1, "K1").is_some(),
            "linked ones never expire"
        );
        assert_eq!(s.retire_user("ada"), 1);
        assert!(s.program_enrollment(P1, "K1").is_none());
        let retired = retired_external_key_for("K1");
        assert!(s.program_enrollment(P1, &retired).is_some());
    }

    fn retired_external_key_for(key: &str) -> String {
        crate::openedx::store::retired_external_key(key, "salt")
    }

    const MASTERS_MODE: &str = crate::openedx::store::MASTERS;

    fn keys(list: &[&str]) -> Vec<(String, ())> {
        list.iter().map(|k| (k.to_string(), ())).collect()
    }

    #[test]
    fn duplicates_are_case_insensitive_but_the_duplicate_set_is_not() {
        let (by_key, dup) = organize(keys(&["A", "a", "A", "b"]));
        let by_key: Vec<&str> = by_key.iter().map(|(k, _)| k.as_str()).collect();
        // The third "A" is not in the (case-sensitive) set {"a"}: it is processed as a fresh request.
        assert_eq!(by_key, ["A", "b"]);
        assert_eq!(dup, ["a"]);
        let (by_key, dup) = organize(keys(&["x", "x", "x"]));
        assert!(by_key.is_empty());
        assert_eq!(dup, ["x"]);
    }

    #[test]
    fn http_status_follows_the_ok_set() {
        let ok = &PROGRAM_STATUSES;
        let r = |pairs: &[(&str, &str)]| {
            KeyResults(
                pairs
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            )
        };
        assert_eq!(r(&[]).http_status(ok), 204);
        assert_eq!(r(&[("a", "enrolled")]).http_status(ok), 200);
        assert_eq!(
            r(&[("a", "enrolled"), ("b", "conflict")]).http_status(ok),
            207
        );
        assert_eq!(r(&[("a", "duplicated")]).http_status(ok), 422);
    }
}
