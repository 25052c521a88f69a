//! What a generation produced, counted: the drift injected per kind (what a cycle's plan must find) and the sizes.

use std::collections::BTreeMap;

use serde::Serialize;

/// One kind of difference between the SIS and Canvas that the generator injects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DriftKind {
    Missing,
    Extra,
    WrongRole,
    StaffAsStudent,
    WrongState,
    DroppedStillActive,
    UnmanagedCourse,
    LinkedObserver,
    BadSisRow,
}

impl DriftKind {
    pub const ALL: [DriftKind; 9] = [
        DriftKind::Missing,
        DriftKind::Extra,
        DriftKind::WrongRole,
        DriftKind::StaffAsStudent,
        DriftKind::WrongState,
        DriftKind::DroppedStillActive,
        DriftKind::UnmanagedCourse,
        DriftKind::LinkedObserver,
        DriftKind::BadSisRow,
    ];

    pub fn describe(self) -> &'static str {
        match self {
            DriftKind::Missing => "in the SIS, missing in Canvas",
            DriftKind::Extra => "hand-made in a SIS course, not in the SIS",
            DriftKind::WrongRole => "TA where the SIS says student or teacher",
            DriftKind::StaffAsStudent => "staff as students in their staff course",
            DriftKind::WrongState => "wrong state (e.g. still active after the term)",
            DriftKind::DroppedStillActive => "dropped in the SIS, still active in Canvas",
            DriftKind::UnmanagedCourse => "hand-made, in courses the SIS never mentions",
            DriftKind::LinkedObserver => "parents Canvas enrolled as linked observers",
            DriftKind::BadSisRow => "SIS rows that cannot be understood",
        }
    }

    /// What a correct cycle does about it: an audit action, or what happens instead.
    pub fn expected(self) -> &'static str {
        match self {
            DriftKind::Missing => "enroll",
            DriftKind::Extra => "remove",
            DriftKind::WrongRole | DriftKind::StaffAsStudent => "change_role",
            DriftKind::WrongState | DriftKind::DroppedStillActive => "change_state",
            DriftKind::UnmanagedCourse | DriftKind::LinkedObserver => "left alone",
            DriftKind::BadSisRow => "skipped",
        }
    }
}

/// How many of each drift kind were injected (`linked_observers` and `unmanaged` count enrollments).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DriftSummary {
    pub missing: u64,
    pub extra: u64,
    pub wrong_role: u64,
    pub staff_as_student: u64,
    pub wrong_state: u64,
    pub dropped_still_active: u64,
    pub unmanaged: u64,
    pub linked_observers: u64,
    pub bad_sis_rows: u64,
}

impl DriftSummary {
    pub fn count(&self, kind: DriftKind) -> u64 {
        match kind {
            DriftKind::Missing => self.missing,
            DriftKind::Extra => self.extra,
            DriftKind::WrongRole => self.wrong_role,
            DriftKind::StaffAsStudent => self.staff_as_student,
            DriftKind::WrongState => self.wrong_state,
            DriftKind::DroppedStillActive => self.dropped_still_active,
            DriftKind::UnmanagedCourse => self.unmanaged,
            DriftKind::LinkedObserver => self.linked_observers,
            DriftKind::BadSisRow => self.bad_sis_rows,
        }
    }

    pub(super) fn bump(&mut self, kind: DriftKind) {
        let n = match kind {
            DriftKind::Missing => &mut self.missing,
            DriftKind::Extra => &mut self.extra,
            DriftKind::WrongRole => &mut self.wrong_role,
            DriftKind::StaffAsStudent => &mut self.staff_as_student,
            DriftKind::WrongState => &mut self.wrong_state,
            DriftKind::DroppedStillActive => &mut self.dropped_still_active,
            DriftKind::UnmanagedCourse => &mut self.unmanaged,
            DriftKind::LinkedObserver => &mut self.linked_observers,
            DriftKind::BadSisRow => &mut self.bad_sis_rows,
        };
        *n += 1;
    }

    /// The first cycle's `planned` counts, with the `staff-are-adult-learners` role rule configured.
    pub fn expected_planned(&self) -> BTreeMap<&'static str, u64> {
        BTreeMap::from([
            ("enroll", self.missing),
            ("remove", self.extra),
            ("change_role", self.wrong_role + self.staff_as_student),
            ("change_state", self.wrong_state + self.dropped_still_active),
        ])
    }

    /// The first cycle's `skipped` count (the bad SIS rows).
    pub fn expected_skipped(&self) -> u64 {
        self.bad_sis_rows
    }
}

/// Sizes of what was generated.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DistrictStats {
    pub schools: u32,
    pub terms: u32,
    /// Courses the SIS names (term courses and staff courses).
    pub courses: u32,
    /// Sections of those courses (a staff course's default section included).
    pub sections: u32,
    /// Courses the SIS never mentions (teacher sandboxes, clubs).
    pub unmanaged_courses: u32,
    pub students: u32,
    pub teachers: u32,
    /// Non-teaching staff.
    pub staff: u32,
    /// Parents, linked to a student as observers.
    pub parents: u32,
    /// SIS rows, the bad ones included.
    pub sis_rows: u64,
    /// Canvas enrollment rows in the seed, every state.
    pub canvas_enrollments: u64,
    /// Canvas enrollments in SIS-named courses that a cycle lists (every state but deleted).
    pub live_in_managed: u64,
}
