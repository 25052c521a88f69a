//! Each SIS enrollment and its Canvas counterpart, with the drift injected there: one roll per enrollment picks
//! in-step or one drift kind, so the kinds stay disjoint and every case is counted.

use super::generate::{Generator, State, TermBlock};
use super::sis::{SisRole, SisRowOwned, SisStatus};
use super::{
    ADULT_LEARNER_ROLE_ID, DEFAULT_SECTION, DriftKind, OBSERVER_ROLE_ID, STUDENT_ROLE_ID,
    TA_ROLE_ID, TEACHER_ROLE_ID,
};

impl<'s> Generator<'s> {
    pub(super) fn teacher_enrollment(&mut self, teacher: u32, block: &TermBlock, c: u32, k: u32) {
        let course = block.course(c);
        let section = block.section(c, k);
        if block.term.concluded {
            self.sis_row(
                teacher,
                course,
                section,
                SisRole::Teacher,
                SisStatus::Completed,
            );
            self.enroll(
                teacher,
                course,
                section,
                TEACHER_ROLE_ID,
                State::Completed,
                None,
                true,
            );
            return;
        }
        self.sis_row(
            teacher,
            course,
            section,
            SisRole::Teacher,
            SisStatus::Active,
        );
        let spec = self.spec;
        let drift = &spec.drift;
        let roll = self.rng.unit();
        if roll < drift.missing {
            self.drift.bump(DriftKind::Missing);
        } else if roll < drift.missing + drift.teacher_as_ta {
            self.enroll(
                teacher,
                course,
                section,
                TA_ROLE_ID,
                State::Active,
                None,
                false,
            );
            self.drift.bump(DriftKind::WrongRole);
        } else {
            self.enroll(
                teacher,
                course,
                section,
                TEACHER_ROLE_ID,
                State::Active,
                None,
                true,
            );
        }
    }

    pub(super) fn staff_course_enrollment(&mut self, user: u32, course: u32, section: u32) {
        self.sis_row(
            user,
            course,
            DEFAULT_SECTION,
            SisRole::Student,
            SisStatus::Null,
        );
        let spec = self.spec;
        let drift = &spec.drift;
        let roll = self.rng.unit();
        if roll < drift.missing {
            self.drift.bump(DriftKind::Missing);
        } else if roll < drift.missing + drift.staff_as_student {
            self.enroll(
                user,
                course,
                section,
                STUDENT_ROLE_ID,
                State::Active,
                None,
                false,
            );
            self.drift.bump(DriftKind::StaffAsStudent);
        } else {
            self.enroll(
                user,
                course,
                section,
                ADULT_LEARNER_ROLE_ID,
                State::Active,
                None,
                false,
            );
        }
    }

    pub(super) fn student_enrollment(
        &mut self,
        student: u32,
        parent: Option<u32>,
        block: &TermBlock,
        c: u32,
        k: u32,
    ) {
        let course = block.course(c);
        let section = block.section(c, k);
        let spec = self.spec;
        let d = &spec.drift;
        if block.term.concluded {
            self.sis_row(
                student,
                course,
                section,
                SisRole::Student,
                SisStatus::Completed,
            );
            if self.rng.chance(d.wrong_state) {
                // The term ended, but nobody concluded this one.
                self.enroll(
                    student,
                    course,
                    section,
                    STUDENT_ROLE_ID,
                    State::Active,
                    None,
                    true,
                );
                self.drift.bump(DriftKind::WrongState);
            } else {
                self.enroll(
                    student,
                    course,
                    section,
                    STUDENT_ROLE_ID,
                    State::Completed,
                    None,
                    true,
                );
            }
            return;
        }
        let status_roll = self.rng.unit();
        if status_roll < d.dropped {
            self.sis_row(
                student,
                course,
                section,
                SisRole::Student,
                SisStatus::Deleted,
            );
            if self.rng.chance(d.dropped_still_active) {
                self.enroll(
                    student,
                    course,
                    section,
                    STUDENT_ROLE_ID,
                    State::Active,
                    None,
                    true,
                );
                self.drift.bump(DriftKind::DroppedStillActive);
            } else {
                self.enroll(
                    student,
                    course,
                    section,
                    STUDENT_ROLE_ID,
                    State::Deleted,
                    None,
                    true,
                );
            }
            return;
        }
        if status_roll < d.dropped + d.suspended {
            self.sis_row(
                student,
                course,
                section,
                SisRole::Student,
                SisStatus::Inactive,
            );
            if self.rng.chance(d.suspended_still_active) {
                self.enroll(
                    student,
                    course,
                    section,
                    STUDENT_ROLE_ID,
                    State::Active,
                    None,
                    true,
                );
                self.drift.bump(DriftKind::WrongState);
            } else {
                self.enroll(
                    student,
                    course,
                    section,
                    STUDENT_ROLE_ID,
                    State::Inactive,
                    None,
                    true,
                );
            }
            return;
        }
        // Most exports spell "active" out; some leave it NULL.
        let status = if self.rng.chance(0.1) {
            SisStatus::Null
        } else {
            SisStatus::Active
        };
        self.sis_row(student, course, section, SisRole::Student, status);
        let roll = self.rng.unit();
        if roll < d.missing {
            self.drift.bump(DriftKind::Missing);
        } else if roll < d.missing + d.student_as_ta {
            self.enroll(
                student,
                course,
                section,
                TA_ROLE_ID,
                State::Active,
                None,
                false,
            );
            self.drift.bump(DriftKind::WrongRole);
        } else if roll < d.missing + d.student_as_ta + d.wrong_state {
            let state = if self.rng.chance(0.5) {
                State::Inactive
            } else {
                State::Completed
            };
            self.enroll(student, course, section, STUDENT_ROLE_ID, state, None, true);
            self.drift.bump(DriftKind::WrongState);
        } else {
            // In step with the SIS: the parent observes it, and a bad duplicate row may sit next to it.
            self.enroll(
                student,
                course,
                section,
                STUDENT_ROLE_ID,
                State::Active,
                None,
                true,
            );
            if let Some(parent) = parent {
                self.enroll(
                    parent,
                    course,
                    section,
                    OBSERVER_ROLE_ID,
                    State::Active,
                    Some(student),
                    false,
                );
                self.drift.bump(DriftKind::LinkedObserver);
            }
            self.clean.push((student, course, section));
        }
    }

    /// A SIS row for an enrollment that is otherwise in step, with one defect the cycle must skip.
    pub(super) fn bad_row(&mut self, student: u32, course: u32, section: u32) {
        let user = self.seed.users[student as usize].sis_user_id.clone();
        let course_id = self.seed.courses[course as usize].sis_course_id.clone();
        let section_id = self.seed.sections[section as usize].sis_section_id.clone();
        let mut row = SisRowOwned {
            user_id: user,
            course_id,
            section_id,
            role: Some("student".into()),
            status: Some("active".into()),
        };
        match self.drift.bad_sis_rows % 5 {
            // Not a role Canvas has (a TA is `ta`, or `TaEnrollment`).
            0 => row.role = Some("Teaching Assistant".into()),
            1 => row.status = Some("dropped".into()),
            2 => row.user_id = row.user_id.map(|u| format!("{u} ")),
            3 => row.user_id = None,
            _ => row.course_id = Some(String::new()),
        }
        self.bad_rows.push(row);
        self.drift.bump(DriftKind::BadSisRow);
    }

    /// Teacher sandboxes (no SIS id) and a club course (a SIS id the SIS never uses), with hand-made enrollments.
    pub(super) fn unmanaged_courses(
        &mut self,
        school: u32,
        code: &str,
        teachers: &[u32],
        roster: &[u32],
    ) {
        let sandboxes = (teachers.len() / 4).max(1);
        for &teacher in teachers.iter().take(sandboxes) {
            let teacher_name = self.seed.users[teacher as usize].name.clone();
            let course = self.course(
                school,
                format!("Sandbox: {teacher_name}"),
                "SANDBOX",
                None,
                false,
            );
            let section = self.section(course, format!("Sandbox: {teacher_name}"), None);
            self.enroll(
                teacher,
                course,
                section,
                TEACHER_ROLE_ID,
                State::Active,
                None,
                false,
            );
            self.drift.bump(DriftKind::UnmanagedCourse);
            self.hand_made_students(roster, 3, course, section);
        }
        let club_teacher = teachers[self.rng.below(teachers.len() as u32) as usize];
        let course = self.course(
            school,
            "Robotics Club".into(),
            "CLUB",
            Some(format!("{code}-CLUB-ROBOTICS")),
            false,
        );
        let section = self.section(course, "Robotics Club".into(), None);
        self.enroll(
            club_teacher,
            course,
            section,
            TEACHER_ROLE_ID,
            State::Active,
            None,
            false,
        );
        self.drift.bump(DriftKind::UnmanagedCourse);
        self.hand_made_students(roster, 8, course, section);
        self.stats.unmanaged_courses += sandboxes as u32 + 1;
    }

    fn hand_made_students(&mut self, roster: &[u32], count: usize, course: u32, section: u32) {
        if roster.is_empty() {
            return;
        }
        let start = self.rng.below(roster.len() as u32) as usize;
        for i in 0..count.min(roster.len()) {
            let student = roster[(start + i) % roster.len()];
            self.enroll(
                student,
                course,
                section,
                STUDENT_ROLE_ID,
                State::Active,
                None,
                false,
            );
            self.drift.bump(DriftKind::UnmanagedCourse);
        }
    }
}
