//! One school: its sub-account, employees, courses and sections per term, the staff course, and its students with
//! their observing parents. What each enrollment looks like in Canvas is `drift`'s business.

use super::generate::{Generator, State, TermBlock, account_canvas_id, user_canvas_id};
use super::names::{FIRST_NAMES, SCHOOL_NAMES, STAFF_TITLES, SchoolKind, term_name};
use super::sis::StaffEntry;
use super::{
    DriftKind, ROOT_ACCOUNT_ID, SECTIONS_PER_COURSE, SECTIONS_PER_TEACHER, STUDENT_ROLE_ID, School,
    TERMS,
};
use crate::{ObserverLink, SeedAccount};

impl<'s> Generator<'s> {
    pub(super) fn school(&mut self, school: u32, students: u32) {
        let kind = SchoolKind::for_index(school);
        let base = SCHOOL_NAMES[school as usize % SCHOOL_NAMES.len()];
        let round = school as usize / SCHOOL_NAMES.len();
        let code = self.school_code(base, kind, round);
        let name = if round > 0 {
            format!("{base} {} {}", kind.name_suffix(), round + 1)
        } else {
            format!("{base} {}", kind.name_suffix())
        };
        self.seed.accounts.push(SeedAccount {
            id: account_canvas_id(school),
            name: name.clone(),
            parent_account_id: Some(ROOT_ACCOUNT_ID),
            root_account_id: Some(ROOT_ACCOUNT_ID),
            sis_account_id: Some(format!("SCH-{code}")),
            ..SeedAccount::default()
        });
        self.schools.push(School {
            code: code.clone(),
            name: name.clone(),
        });

        let catalog = kind.catalog();
        let seats = self.spec.section_size.max(1) * SECTIONS_PER_COURSE;
        // Enough courses for every student to take `courses_per_term` of them, even in a tiny school.
        let courses_per_term = (students * self.spec.courses_per_term)
            .div_ceil(seats)
            .max(self.spec.courses_per_term)
            .max(1);
        let sections_per_term = courses_per_term * SECTIONS_PER_COURSE;

        // Employees: teachers for every section of a term, and some non-teaching staff.
        let teacher_count = sections_per_term.div_ceil(SECTIONS_PER_TEACHER);
        let teachers: Vec<u32> = (0..teacher_count)
            .map(|_| {
                let n = self.next_teacher;
                self.next_teacher += 1;
                let user = self.person('T', n, 5);
                self.staff.push(StaffEntry {
                    user,
                    title: "Teacher",
                    school,
                });
                user
            })
            .collect();
        let staff_count = (students / 40).max(3);
        let mut employees = teachers.clone();
        for i in 0..staff_count {
            let n = self.next_staff;
            self.next_staff += 1;
            let user = self.person('E', n, 5);
            self.staff.push(StaffEntry {
                user,
                title: STAFF_TITLES[i as usize % STAFF_TITLES.len()],
                school,
            });
            employees.push(user);
        }
        self.stats.teachers += teacher_count;
        self.stats.staff += staff_count;

        // Courses and sections per term; each section's teacher teaches it.
        let mut blocks = Vec::with_capacity(TERMS.len());
        for term in TERMS {
            let first_course = self.seed.courses.len() as u32;
            let first_section = self.seed.sections.len() as u32;
            for c in 0..courses_per_term {
                let (subject_code, subject) = catalog[c as usize % catalog.len()];
                let round = c as usize / catalog.len();
                let (course_code, title) = if round == 0 {
                    (subject_code.to_owned(), subject.to_owned())
                } else {
                    (
                        format!("{subject_code}-{}", round + 1),
                        format!("{subject} {}", round + 1),
                    )
                };
                let sis = format!("{code}-{course_code}-{}", term.code);
                let course = self.course(
                    school,
                    format!("{title} ({})", term_name(term)),
                    &course_code,
                    Some(sis.clone()),
                    true,
                );
                for k in 0..SECTIONS_PER_COURSE {
                    self.section(
                        course,
                        format!("{title} — Section {:02}", k + 1),
                        Some(format!("{sis}-{:02}", k + 1)),
                    );
                }
            }
            let block = TermBlock {
                term,
                first_course,
                first_section,
                count: courses_per_term,
            };
            for c in 0..courses_per_term {
                for k in 0..SECTIONS_PER_COURSE {
                    let j = c * SECTIONS_PER_COURSE + k;
                    let teacher = teachers[((j / SECTIONS_PER_TEACHER) % teacher_count) as usize];
                    self.teacher_enrollment(teacher, &block, c, k);
                }
            }
            blocks.push(block);
        }
        self.stats.courses += courses_per_term * TERMS.len() as u32 + 1;
        self.stats.sections += sections_per_term * TERMS.len() as u32 + 1;

        // The staff course: everyone employed, listed by the SIS as students, in the default section.
        let staff_course = self.course(
            school,
            format!("{name} Staff Professional Development"),
            "STAFF-PD",
            Some(format!("{code}-STAFF-PD")),
            true,
        );
        let staff_section = self.section(staff_course, format!("{name} Staff"), None);
        for &user in &employees {
            self.staff_course_enrollment(user, staff_course, staff_section);
        }

        // Students.
        self.clean.clear();
        let mut roster = Vec::with_capacity(students as usize);
        let mut chosen = Vec::with_capacity(self.spec.courses_per_term as usize);
        for _ in 0..students {
            let n = self.next_student;
            self.next_student += 1;
            let student = self.person('S', n, 6);
            roster.push(student);
            let parent = if self.rng.chance(self.spec.drift.observed_students) {
                let n = self.next_parent;
                self.next_parent += 1;
                let last = self.seed.users[student as usize]
                    .sortable_name
                    .as_deref()
                    .and_then(|s| s.split(", ").next())
                    .unwrap_or("Parent")
                    .to_owned();
                let first = self.rng.pick(FIRST_NAMES);
                let parent = self.user(format!("P{n:06}"), first, &last);
                self.seed.observer_links.push(ObserverLink {
                    observer_id: user_canvas_id(parent),
                    student_id: user_canvas_id(student),
                });
                self.stats.parents += 1;
                Some(parent)
            } else {
                None
            };
            for block in &blocks {
                let k = self.spec.courses_per_term.min(block.count);
                chosen.clear();
                while (chosen.len() as u32) < k {
                    let c = self.rng.below(block.count);
                    if !chosen.contains(&c) {
                        chosen.push(c);
                    }
                }
                for &c in &chosen {
                    let section = self.rng.below(SECTIONS_PER_COURSE);
                    self.student_enrollment(student, parent, block, c, section);
                }
                // A hand-made enrollment in a current course the SIS does not give this student.
                if !block.term.concluded
                    && block.count > k
                    && self.rng.chance(self.spec.drift.extra)
                {
                    let c = loop {
                        let c = self.rng.below(block.count);
                        if !chosen.contains(&c) {
                            break c;
                        }
                    };
                    let section = block.section(c, self.rng.below(SECTIONS_PER_COURSE));
                    self.enroll(
                        student,
                        block.course(c),
                        section,
                        STUDENT_ROLE_ID,
                        State::Active,
                        None,
                        false,
                    );
                    self.drift.bump(DriftKind::Extra);
                }
            }
        }
        self.stats.students += students;

        // A student added to the staff course by hand.
        if !roster.is_empty() && self.rng.chance(self.spec.drift.student_in_staff_course) {
            let student = roster[self.rng.below(roster.len() as u32) as usize];
            self.enroll(
                student,
                staff_course,
                staff_section,
                STUDENT_ROLE_ID,
                State::Active,
                None,
                false,
            );
            self.drift.bump(DriftKind::Extra);
        }

        // Bad SIS rows, next to enrollments without drift (a bad row holds its user and course).
        let clean = std::mem::take(&mut self.clean);
        let mut used = Vec::new();
        let bad = (self.spec.drift.bad_rows_per_school as usize).min(clean.len());
        while used.len() < bad {
            let i = self.rng.below(clean.len() as u32) as usize;
            if !used.contains(&i) {
                used.push(i);
                let (student, course, section) = clean[i];
                self.bad_row(student, course, section);
            }
        }
        self.clean = clean;

        self.unmanaged_courses(school, &code, &teachers, &roster);
    }

    /// A short code no other school has: `LHS`, else `LIHS`, ..., with the round number for repeated names.
    fn school_code(&self, base: &str, kind: SchoolKind, round: usize) -> String {
        let letters: String = base.chars().filter(char::is_ascii_alphabetic).collect();
        let round = if round > 0 {
            (round + 1).to_string()
        } else {
            String::new()
        };
        let taken = |code: &str| self.schools.iter().any(|s| s.code == code);
        for len in 1..=letters.len() {
            let code = format!(
                "{}{}{round}",
                letters[..len].to_ascii_uppercase(),
                kind.code_suffix()
            );
            if !taken(&code) {
                return code;
            }
        }
        let mut n = self.schools.len();
        loop {
            let code = format!("S{n}{}", kind.code_suffix());
            if !taken(&code) {
                return code;
            }
            n += 1;
        }
    }
}
