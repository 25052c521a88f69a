//! CPU profile of the in-process work of a report-read cycle at S4's shape (`benches/scale.rs`): SIS rows through
//! `parse_row`, the provisioning report's CSV through `parse_enrollments_csv`, then `decide`. No database, no
//! simulator: each step's CPU time (this process's user + sys, `getrusage`), so that the decision can be measured
//! and profiled (`perf record`, `valgrind --tool=callgrind`) on a loaded machine.
//!
//! ```text
//! cargo run --release --example decide_profile -- [ENROLLMENTS] [REPEAT]
//! ```
//!
//! Defaults: 1,500,000 enrollments in 60,000 courses (one of 53,000), 250,000 users, no drift, 1 repeat.

use std::fmt::Write as _;
use std::time::Duration;

use rostersync::domain::decide::{DecideSettings, Snapshot, decide};
use rostersync::domain::guard::GuardLimits;
use rostersync::domain::roles::{RoleBook, RoleInfo, RoleStatus};
use rostersync::domain::sis_row::{SisRow, parse_row};
use rostersync::domain::{Ids, RemovalPolicy, RoleId, Sym, UserIdKind};
use rostersync::reconcile::provisioning::parse_enrollments_csv;

fn cpu() -> Duration {
    // SAFETY: rusage is plain old data; getrusage fills it.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: a valid pointer to a rusage.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let t = |tv: libc::timeval| {
        Duration::from_secs(tv.tv_sec as u64) + Duration::from_micros(tv.tv_usec as u64)
    };
    t(u.ru_utime) + t(u.ru_stime)
}

fn roles() -> RoleBook {
    let role = |id, name: &str, base: &str| RoleInfo {
        id: RoleId(id),
        name: name.into(),
        base_type: base.into(),
        status: RoleStatus::BuiltIn,
    };
    RoleBook::new([
        role(3, "StudentEnrollment", "StudentEnrollment"),
        role(4, "TeacherEnrollment", "TeacherEnrollment"),
        role(5, "TaEnrollment", "TaEnrollment"),
        role(6, "DesignerEnrollment", "DesignerEnrollment"),
        role(7, "ObserverEnrollment", "ObserverEnrollment"),
    ])
}

fn main() {
    let mut args = std::env::args().skip(1);
    let total: u64 = args
        .next()
        .map_or(1_500_000, |a| a.parse().expect("enrollments"));
    let repeat: usize = args.next().map_or(1, |a| a.parse().expect("repeat"));
    let f = total as f64 / 1_500_000.0;
    let courses = ((60_000.0 * f).round() as u64).max(2);
    let users = ((250_000.0 * f).round() as u64).max(1);
    let big = ((53_000.0 * f).round() as u64).clamp(1, users);
    // Course sizes as the bench makes them: one big course first, the rest spread evenly.
    let rest = total - big;
    let regular = courses - 1;
    let sizes: Vec<u64> = std::iter::once(big)
        .chain((0..regular).map(|i| rest / regular + u64::from(i < rest % regular)))
        .collect();

    // The provisioning report's CSV, in the simulator's column order.
    let mut csv = String::with_capacity(total as usize * 90);
    csv.push_str(
        "canvas_course_id,course_id,canvas_user_id,user_id,role,role_id,canvas_section_id,section_id,status,\
         canvas_associated_user_id,associated_user_id,created_by_sis,base_role_type,limit_section_privileges,\
         canvas_enrollment_id\n",
    );
    let mut id = 0u64;
    let mut slot = 0u64;
    for (c, size) in sizes.iter().enumerate() {
        for j in 0..*size {
            let u = slot % users;
            slot += 1;
            id += 1;
            let (role, rid, base) = if j == 0 {
                ("TeacherEnrollment", 4, "TeacherEnrollment")
            } else {
                ("StudentEnrollment", 3, "StudentEnrollment")
            };
            let _ = writeln!(
                csv,
                "{},C{c},{},U{u},{role},{rid},{},S{c},active,,,false,{base},false,{id}",
                c + 1,
                1000 + u,
                c + 1
            );
        }
    }

    for round in 0..repeat {
        let t0 = cpu();
        let book = roles();
        let mut ids = Ids::new();
        let mut desired = Vec::new();
        let mut slot = 0u64;
        let mut user = String::new();
        for (c, size) in sizes.iter().enumerate() {
            let course = format!("C{c}");
            let section = format!("S{c}");
            for j in 0..*size {
                user.clear();
                let _ = write!(user, "U{}", slot % users);
                slot += 1;
                let row = SisRow {
                    user_id: Some(user.clone()),
                    course_id: Some(course.clone()),
                    section_id: Some(section.clone()),
                    role: Some(if j == 0 { "teacher" } else { "student" }.to_owned()),
                    status: None,
                    curriculum_uuid: None,
                };
                if let Ok(d) = parse_row(&row, UserIdKind::SisUserId, &book, &mut ids) {
                    desired.push(d);
                }
            }
        }
        let t1 = cpu();
        let mut managed: Vec<Sym> = desired
            .iter()
            .map(|d| d.course)
            .collect::<std::collections::HashSet<_>>()
            .into_iter()
            .collect();
        managed.sort();
        let mut book = book;
        let managed_set = managed.iter().copied().collect();
        let live = parse_enrollments_csv(csv.as_bytes(), &managed_set, &mut ids, &mut book)
            .expect("csv parses");
        let t2 = cpu();
        let snapshot = Snapshot {
            ids,
            roles: book,
            sis_rows: desired.len() as u64,
            desired,
            managed,
            live,
            ..Snapshot::default()
        };
        let settings = DecideSettings {
            removal: RemovalPolicy::Conclude,
            manage_non_sis_users: false,
            limits: GuardLimits {
                max_removals: 100_000_000,
                max_removal_ratio: 1.0,
                max_course_removal_ratio: 0.9,
                max_additions: 1000,
                max_addition_ratio: 0.1,
            },
            sticky_trip: None,
            scoped: None,
            section_removal: None,
        };
        let decision = decide(&snapshot, &settings);
        let t3 = cpu();
        drop(decision);
        drop(snapshot);
        let t4 = cpu();
        eprintln!(
            "round {round}: {total} enrollments: CPU s: SIS parse {:.3}, CSV parse {:.3}, decide {:.3}, drop {:.3}; total {:.3}",
            (t1 - t0).as_secs_f64(),
            (t2 - t1).as_secs_f64(),
            (t3 - t2).as_secs_f64(),
            (t4 - t3).as_secs_f64(),
            (t4 - t0).as_secs_f64(),
        );
    }
}
