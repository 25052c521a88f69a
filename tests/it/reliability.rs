//! RELIABILITY.md, the promise table: one test per promise, named `pNN_...` after its row. Rows 19 and 20 (parsers
//! never panic, the diff is correct by construction) are the property tests in `props`; row 22 (soak) is
//! `scripts/soak.sh`, run by hand (README).

use std::time::{Duration, Instant};

use canvas_sim::{
    FaultAction, FaultOptions, FaultRule, Seed, SimOptions, ThrottleOptions, ThrottleStatus,
};

use crate::support::*;

const COURSE_ENROLLMENTS: &str = "/api/v1/courses/:id/enrollments";
const ENROLLMENT: &str = "/api/v1/courses/:course_id/enrollments/:id";
const USER_ENROLLMENTS: &str = "/api/v1/users/:id/enrollments";

/// `courses` courses of `per_course` students each, all enrolled and all listed by the SIS.
fn school(courses: u64, per_course: u64) -> (Seed, Vec<(String, String)>) {
    let mut seed = Seed::default();
    let mut rows = Vec::new();
    for c in 0..courses {
        let course_id = 100 + c;
        let course_sis = format!("C{c}");
        seed = seed.course(course(course_id, &course_sis));
        for s in 0..per_course {
            let uid = 1000 + c * 1000 + s;
            let sis = format!("c{c}s{s}");
            seed = seed
                .user(user(uid, &sis))
                .enrollment(enrolled(uid, course_id, STUDENT, "active"));
            rows.push((sis, course_sis.clone()));
        }
    }
    (seed, rows)
}

/// The files under `dir` (recursively) whose bytes contain `needle`.
fn grep_tree(dir: &std::path::Path, needle: &str) -> Vec<std::path::PathBuf> {
    let mut hits = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            hits.extend(grep_tree(&path, needle));
        } else if std::fs::read(&path)
            .is_ok_and(|bytes| bytes.windows(needle.len()).any(|w| w == needle.as_bytes()))
        {
            hits.push(path);
        }
    }
    hits
}

async fn load_rows(env: &TestEnv, rows: &[(String, String)]) {
    let rows: Vec<Row5<'_>> = rows
        .iter()
        .map(|(u, c)| (u.as_str(), c.as_str(), None, "student", None))
        .collect();
    env.sis(&rows).await;
}

fn deletes(env: &TestEnv) -> usize {
    env.sim.count("DELETE", ENROLLMENT)
}

fn writes_other_than_gets(env: &TestEnv) -> usize {
    env.writes()
}

#[tokio::test]
async fn p01_an_empty_sis_result_never_removes_anything() {
    let (seed, rows) = school(10, 20);
    let env = TestEnv::new(seed).await;
    load_rows(&env, &rows).await;
    assert_eq!(
        env.reconcile("").await.planned_total(),
        0,
        "200 managed enrollments, converged"
    );
    env.clear_sis().await;
    let out = env.cli(&["reconcile", "--json"], "").await;
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(
        deletes(&env)
            + env.sim.count(
                "PUT",
                "/api/v1/courses/:course_id/enrollments/:id/reactivate"
            ),
        0
    );
    let json = json_report(&out);
    assert_eq!(
        env.run_status(json["run_id"].as_str().unwrap_or_default())
            .await
            .0,
        "safety_tripped"
    );
}

#[tokio::test]
async fn p02_the_removal_brake_works_by_count_and_by_ratio() {
    // Each setting on its own district: a trip is sticky (promise 4), so a second try on the same database would
    // be held by the first trip, not judged by its own limits.
    let cases = [
        ("[reconcile]\nmax_removal_ratio = 0.2", Some(3), 0),
        (
            "[reconcile]\nmax_removals = 10\nmax_removal_ratio = 0.9",
            Some(3),
            0,
        ),
        ("[reconcile]\nmax_removal_ratio = 0.3", Some(0), 25),
    ];
    for (limits, code, concluded) in cases {
        let (seed, rows) = school(1, 100);
        let env = TestEnv::new(seed).await;
        load_rows(&env, &rows[25..]).await;
        let out = env.cli(&["reconcile", "--json"], limits).await;
        assert_eq!(
            out.status.code(),
            code,
            "{limits}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(deletes(&env), concluded, "{limits}");
        assert!(
            env.sim
                .requests()
                .iter()
                .filter(|r| r.method == "DELETE")
                .all(|r| r.path_and_query.contains("task=conclude"))
        );
    }
}

#[tokio::test]
async fn p03_the_ratio_is_also_enforced_per_course() {
    let (mut seed, rows) = school(20, 20);
    // A teacher per course keeps each course managed when its students vanish from the SIS.
    for c in 0..20u64 {
        let uid = 900 + c;
        seed = seed.user(user(uid, &format!("t{c}"))).enrollment(enrolled(
            uid,
            100 + c,
            TEACHER,
            "active",
        ));
    }
    let env = TestEnv::new(seed).await;
    // Course C0 loses all 20 students; C1 and C2 lose one each.
    let kept: Vec<(String, String)> = rows
        .into_iter()
        .filter(|(u, c)| c != "C0" && u != "c1s0" && u != "c2s0")
        .collect();
    load_rows(&env, &kept).await;
    let teachers: Vec<(String, String)> = (0..20)
        .map(|c| (format!("t{c}"), format!("C{c}")))
        .collect();
    let rows: Vec<Row5<'_>> = teachers
        .iter()
        .map(|(u, c)| (u.as_str(), c.as_str(), None, "teacher", None))
        .collect();
    env.sis(&rows).await;
    let out = env
        .cli(
            &["reconcile", "--json"],
            "[reconcile]\nmax_course_removal_ratio = 0.5",
        )
        .await;
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json = json_report(&out);
    assert!(
        json["safety"]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("C0 (20 of 21)")),
        "{json}"
    );
    assert_eq!(deletes(&env), 2, "the other courses' removals apply");
    assert_eq!(
        env.enrollments_of(1000, 100)[0].2,
        "active",
        "C0 keeps its students"
    );
}

#[tokio::test]
async fn p04_a_trip_is_sticky_and_visible_until_an_operator_acts() {
    let (seed, rows) = school(1, 20);
    let env = TestEnv::new(seed).await;
    load_rows(&env, &rows[10..]).await;
    let mut d = Daemon::start(&env, "*/2 * * * * *", "").await;
    let text = d
        .wait_for(
            Duration::from_secs(30),
            |t, _| cycles(t, "safety_tripped") >= 3.0,
            "/metrics",
        )
        .await;
    assert_eq!(metric(&text, "rostersync_safety_tripped"), Some(1.0));
    assert!(metric(&text, "rostersync_safety_trips_total").unwrap_or(0.0) >= 3.0);
    assert_eq!(deletes(&env), 0);
    d.signal(libc::SIGTERM);
    assert_eq!(d.wait_exit(Duration::from_secs(15)).await, Some(0));
    let tripped: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM rostersync.sync_runs WHERE status = 'safety_tripped'",
    )
    .fetch_one(&env.pool)
    .await
    .expect("runs");
    assert!(tripped >= 3, "each run is recorded");
    // The documented override.
    let out = env
        .cli(&["reconcile", "--json", "--accept-removals"], "")
        .await;
    assert_eq!(out.status.code(), Some(0));
    assert!(
        json_report(&out)["safety"]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("overridden"))
    );
    assert_eq!(deletes(&env), 10);
}

#[tokio::test]
async fn p05a_a_sis_permission_error_is_never_an_empty_set() {
    let (seed, rows) = school(1, 10);
    let env = TestEnv::new(seed).await;
    load_rows(&env, &rows).await;
    let role = format!("sis_reader_{}", uuid::Uuid::new_v4().simple());
    for sql in [
        format!("CREATE ROLE {role} LOGIN"),
        format!("GRANT SELECT ON sis_enrollments TO {role}"),
        format!("REVOKE SELECT ON sis_enrollments FROM {role}"),
    ] {
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(&env.pool)
            .await
            .expect("role setup");
    }
    let mut sis_url = url::Url::parse(&env.db_url).expect("url");
    let _ = sis_url.set_username(&role);
    let _ = sis_url.set_password(None);
    let out = env
        .cli(
            &["reconcile", "--json"],
            &format!("[sis]\nurl = \"{sis_url}\""),
        )
        .await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        json_report(&out)["error"]
            .as_str()
            .is_some_and(|e| e.contains("permission denied"))
    );
    assert_eq!(writes_other_than_gets(&env), 0);
}

#[tokio::test]
async fn p05b_a_stopped_sis_database_is_never_an_empty_set() {
    let sis = tokio::task::spawn_blocking(rostersync::pgtemp::TempPostgres::start)
        .await
        .expect("join")
        .expect("second cluster");
    let sis_url = sis.url.clone();
    let (seed, _) = school(1, 10);
    let env = TestEnv::new(seed).await;
    let sis_pool = sqlx::PgPool::connect(&sis_url).await.expect("sis");
    sqlx::query("CREATE TABLE sis_enrollments (user_id text, course_id text, section_id text, role text, status text)")
        .execute(&sis_pool)
        .await
        .expect("table");
    sis_pool.close().await;
    let extra = format!("[sis]\nurl = \"{sis_url}\"");
    let out = env.cli(&["reconcile", "--json"], &extra).await;
    assert_eq!(out.status.code(), Some(3), "empty SIS while it is up: trip");
    tokio::task::spawn_blocking(move || sis.stop())
        .await
        .expect("join")
        .expect("stop");
    let out = env.cli(&["reconcile", "--json"], &extra).await;
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("SIS database"),
        "names which database: {stderr}"
    );
    assert_eq!(writes_other_than_gets(&env), 0);
}

#[tokio::test]
async fn p05c_a_server_error_on_page_2_of_3_is_never_an_empty_set() {
    let (seed, rows) = school(1, 25);
    let env = TestEnv::with_options(with_faults(
        seed,
        FaultOptions::default().with_rule(
            FaultRule::on("GET", COURSE_ENROLLMENTS, FaultAction::status(500))
                .nth(2)
                .times(100),
        ),
    ))
    .await;
    load_rows(&env, &rows[..20]).await;
    let out = env
        .cli(
            &["reconcile", "--json"],
            "per_page = 10\n[reconcile]\nmax_removal_ratio = 1.0\n[limits]\nmax_retries = 1",
        )
        .await;
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        writes_other_than_gets(&env),
        0,
        "5 students looked extra on page 1 alone"
    );
}

#[tokio::test]
async fn p06_a_partial_canvas_listing_is_never_treated_as_complete() {
    let (seed, rows) = school(1, 35);
    let env = TestEnv::with_options(with_faults(
        seed.clone(),
        FaultOptions::default().with_rule(FaultRule::on(
            "GET",
            COURSE_ENROLLMENTS,
            FaultAction::LowercaseLinkHeader,
        )),
    ))
    .await;
    load_rows(&env, &rows).await;
    let report = env.reconcile("per_page = 10").await;
    assert_eq!(report.details.live_enrollments, 35);
    assert_eq!(report.planned_total(), 0);
    assert_eq!(env.sim.count("GET", COURSE_ENROLLMENTS), 4);

    let env = TestEnv::with_options(with_faults(
        seed,
        FaultOptions::default()
            .with_rule(FaultRule::on("GET", COURSE_ENROLLMENTS, FaultAction::DropNextLink).nth(2)),
    ))
    .await;
    load_rows(&env, &rows[..20]).await;
    let out = env
        .cli(
            &["reconcile", "--json"],
            "per_page = 10\n[reconcile]\nmax_removal_ratio = 1.0",
        )
        .await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        json_report(&out)["error"]
            .as_str()
            .is_some_and(|e| e.contains("incomplete Canvas listing"))
    );
    assert_eq!(writes_other_than_gets(&env), 0);
}

#[tokio::test]
async fn p07_rerunning_a_converged_cycle_is_a_no_op() {
    let (seed, rows) = school(3, 10);
    let env = TestEnv::new(seed).await;
    load_rows(&env, &rows[..25]).await;
    env.sis(&[("c0s0", "C0", None, "teacher", None)]).await;
    let out = env
        .cli(
            &["reconcile", "--json"],
            "[reconcile]\nmax_removal_ratio = 0.5",
        )
        .await;
    assert_eq!(out.status.code(), Some(0));
    let before = writes_other_than_gets(&env);
    let out = env
        .cli(
            &["reconcile", "--json"],
            "[reconcile]\nmax_removal_ratio = 0.5",
        )
        .await;
    let json = json_report(&out);
    for action in ["enroll", "remove", "change_role", "change_state"] {
        assert_eq!(json["planned"][action], 0, "{json}");
    }
    assert_eq!(writes_other_than_gets(&env), before);
}

/// Kills `rostersync reconcile` (kill -9) while the `k`-th enrollment POST has been applied by Canvas but not yet
/// answered, then runs again.
async fn crash_after_write(k: u64, n: u64) {
    let (env, _) = roster_env(
        n,
        FaultOptions::default().with_rule(
            FaultRule::on(
                "POST",
                COURSE_ENROLLMENTS,
                FaultAction::ApplyThenHang(Duration::from_secs(60)),
            )
            .nth(k),
        ),
    )
    .await;
    let (mut child, _log) = env.spawn_cli(&["reconcile", "--json"], "[limits]\nmax_in_flight = 1");
    let applied = |env: &TestEnv| env.sim.with_store(|s| s.enrollments().count() as u64);
    eventually(
        Duration::from_secs(20),
        || applied(&env) >= k,
        || format!("write {k} never applied"),
    )
    .await;
    child.start_kill().expect("kill -9");
    let _ = child.wait().await;

    env.sim.set_faults(FaultOptions::default());
    let report = env.reconcile("").await;
    assert_eq!(
        report.details.interrupted_runs.len(),
        1,
        "k={k}: {report:#?}"
    );
    assert!(
        report.details.interrupted_runs[0].unresolved_planned >= 1,
        "k={k}: the change in flight is named"
    );
    assert_eq!(
        report.planned["enroll"],
        n - k,
        "k={k}: the applied write is not redone"
    );
    assert_eq!(report.failed, 0);
    for uid in 1..=n {
        assert_eq!(
            env.enrollments_of(uid, 100).len(),
            1,
            "k={k}: exactly one enrollment for user {uid}"
        );
    }
    assert_eq!(
        env.reconcile("").await.planned_total(),
        0,
        "k={k}: converged"
    );
}

#[tokio::test]
async fn p08_a_crash_between_the_canvas_write_and_the_audit_write_leaves_no_duplicate_and_no_silent_gap()
 {
    for k in 1..=5 {
        crash_after_write(k, 5).await;
    }
    crash_after_write(7, 9).await;
}

/// Row 8's second half: the kill falls between the two halves of a role change (the new role created, the old
/// enrollment not yet ended). The next cycle records the dead run's change as interrupted, ends the old role, and
/// never creates the new one twice.
#[tokio::test]
async fn p08_a_kill_between_the_two_halves_of_a_role_change_leaves_one_enrollment_per_role() {
    const SECTION_ENROLLMENTS: &str = "/api/v1/sections/:id/enrollments";
    let mut seed = Seed::default()
        .course(course(100, "C1"))
        .section(section(200, 100, "C1-A"));
    let mut rows = Vec::new();
    for i in 1..=3u64 {
        let sis = format!("ta{i}");
        seed = seed
            .user(user(i, &sis))
            .enrollment(enrolled(i, 100, TA, "active").in_section(200));
        rows.push(sis);
    }
    let env = TestEnv::with_options(with_faults(
        seed,
        FaultOptions::default().with_rule(
            FaultRule::on(
                "POST",
                SECTION_ENROLLMENTS,
                FaultAction::ApplyThenHang(Duration::from_secs(60)),
            )
            .nth(2),
        ),
    ))
    .await;
    let sis: Vec<Row5<'_>> = rows
        .iter()
        .map(|u| (u.as_str(), "C1", Some("C1-A"), "student", None))
        .collect();
    env.sis(&sis).await;
    let (mut child, _log) = env.spawn_cli(
        &["reconcile", "--json"],
        "[reconcile]\nmax_removal_ratio = 1.0\n[limits]\nmax_in_flight = 1",
    );
    let students = |env: &TestEnv| {
        env.sim
            .with_store(|s| s.enrollments().filter(|e| e.role_id == STUDENT).count())
    };
    eventually(
        Duration::from_secs(20),
        || students(&env) >= 2,
        || "the second role change's first half never reached Canvas".into(),
    )
    .await;
    child.start_kill().expect("kill -9");
    let _ = child.wait().await;
    env.sim.set_faults(FaultOptions::default());

    let report = env.reconcile("[reconcile]\nmax_removal_ratio = 1.0").await;
    assert_eq!(report.status.as_str(), "succeeded", "{report:#?}");
    assert!(report.details.resolved_interrupted >= 1, "{report:#?}");
    for i in 1..=3u64 {
        let mut roles: Vec<(u64, String)> = env
            .enrollments_of(i, 100)
            .into_iter()
            .map(|(_, role, state)| (role, state))
            .collect();
        roles.sort();
        assert_eq!(
            roles,
            vec![(STUDENT, "active".into()), (TA, "completed".into())],
            "ta{i}: exactly one enrollment per role, the old one ended"
        );
    }
    let again = env.reconcile("[reconcile]\nmax_removal_ratio = 1.0").await;
    assert_eq!(again.planned_total(), 0, "converged: {again:#?}");
}

#[tokio::test]
async fn p09_a_timed_out_post_is_not_blindly_resent() {
    let (env, _) = roster_env(
        1,
        FaultOptions::default().with_rule(
            FaultRule::on(
                "POST",
                COURSE_ENROLLMENTS,
                FaultAction::ApplyThenHang(Duration::from_secs(5)),
            )
            .nth(1),
        ),
    )
    .await;
    let report = env.reconcile("request_timeout_secs = 1").await;
    assert_eq!((report.applied, report.failed), (1, 0), "{report:#?}");
    assert_eq!(env.enrollments_of(1, 100).len(), 1);
    let requests = env.sim.requests();
    let posts: Vec<_> = requests.iter().filter(|r| r.method == "POST").collect();
    assert_eq!(posts.len(), 1, "the re-read found it: no second POST");
    assert!(
        requests.iter().any(|r| r.route == USER_ENROLLMENTS),
        "a re-read (GET) happened"
    );
}

#[tokio::test]
async fn p10_only_one_replica_writes_at_a_time() {
    // The row as written: two `rostersync run` processes on one database with a 2 s cron, for 60 s. Halfway the
    // leader is killed (kill -9) so that the other takes over: their write windows must not overlap.
    let (seed, rows) = roster(60);
    let env = TestEnv::with_options(with_faults(
        seed,
        FaultOptions {
            write_latency: Duration::from_millis(50),
            ..FaultOptions::default()
        },
    ))
    .await;
    load(&env, &rows[..10]).await;
    let a = Daemon::start(&env, "*/2 * * * * *", "").await;
    let b = Daemon::start(&env, "*/2 * * * * *", "").await;
    let started = Instant::now();
    let mut daemons = [Some(a), Some(b)];
    for (i, chunk) in rows[10..].chunks(2).enumerate() {
        tokio::time::sleep(Duration::from_secs(2)).await;
        load(&env, chunk).await;
        if i == 12 {
            // Kill whichever holds the lock.
            for slot in &mut daemons {
                let leads = match slot {
                    Some(d) => d
                        .get("/metrics")
                        .await
                        .is_some_and(|(_, t)| metric(&t, "rostersync_leader") == Some(1.0)),
                    None => false,
                };
                if leads && let Some(d) = slot.take() {
                    d.signal(libc::SIGKILL);
                    drop(d);
                    break;
                }
            }
        }
    }
    let settle = Duration::from_secs(62).saturating_sub(started.elapsed());
    tokio::time::sleep(settle.max(Duration::from_secs(6))).await;
    let writes: Vec<_> = env
        .sim
        .requests()
        .into_iter()
        .filter(|r| r.method != "GET")
        .collect();
    for uid in 1..=60 {
        assert_eq!(
            env.enrollments_of(uid, 100).len(),
            1,
            "user {uid}: exactly one enrollment"
        );
    }
    // Each process's write window, from its first write's start to its last write's end, in order of start.
    let mut windows: std::collections::BTreeMap<String, (Instant, Instant)> = Default::default();
    for w in &writes {
        let who = w.user_agent.clone().unwrap_or_default();
        let e = windows.entry(who).or_insert((w.started, w.finished));
        e.0 = e.0.min(w.started);
        e.1 = e.1.max(w.finished);
    }
    let mut ordered: Vec<(Instant, Instant)> = windows.values().copied().collect();
    ordered.sort();
    assert_eq!(
        ordered.len(),
        2,
        "the killed leader and the one that took over: {:?}",
        windows.keys()
    );
    for pair in ordered.windows(2) {
        assert!(
            pair[0].1 <= pair[1].0,
            "two processes wrote at once: {:?}",
            windows.keys()
        );
    }
    let holders: i64 = advisory_locks_held(&env.pool).await;
    assert_eq!(holders, 1, "pg_locks shows one advisory holder");
    drop(daemons);
}

#[tokio::test]
async fn p11_losing_the_lock_stops_writing_at_once() {
    // At the default concurrency (`limits.max_in_flight` = 4), with enough work that the apply is still going.
    let n = 60;
    let (env, _) = roster_env(
        n,
        FaultOptions {
            write_latency: Duration::from_millis(500),
            ..FaultOptions::default()
        },
    )
    .await;
    let old = Daemon::start(&env, "*/2 * * * * *", "").await;
    eventually(
        Duration::from_secs(20),
        || env.sim.count("POST", COURSE_ENROLLMENTS) >= 3,
        String::new,
    )
    .await;
    let standby = Daemon::start(&env, "*/2 * * * * *", "").await;
    let old_agent = env
        .sim
        .requests()
        .into_iter()
        .find(|r| r.method == "POST")
        .and_then(|r| r.user_agent);
    let terminated: i64 = sqlx::query_scalar(
        // The holder's pid from pg_locks: a standby's try at the lock also connects as `rostersync-leader`.
        "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_locks \
         WHERE locktype = 'advisory' AND granted \
         AND database = (SELECT oid FROM pg_database WHERE datname = current_database())) t",
    )
    .fetch_one(&env.pool)
    .await
    .expect("terminate");
    assert_eq!(terminated, 1);
    let cut = Instant::now();
    let posts_at_cut = env.sim.count("POST", COURSE_ENROLLMENTS);
    assert!(
        posts_at_cut < n as usize,
        "terminated mid-apply ({posts_at_cut} of {n} written)"
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after_cut = env
        .sim
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST" && r.user_agent == old_agent && r.started > cut)
        .count();
    assert!(
        after_cut <= 1,
        "{after_cut} writes started after the lock was lost"
    );
    // The standby takes over and finishes the job.
    eventually(
        Duration::from_secs(40),
        || env.sim.with_store(|s| s.enrollments().count()) >= n as usize,
        || format!("standby never finished:\n{}", standby.log()),
    )
    .await;
    let later_old = env
        .sim
        .requests()
        .into_iter()
        .filter(|r| {
            r.method == "POST"
                && r.user_agent == old_agent
                && r.started > cut + Duration::from_secs(1)
        })
        .count();
    assert_eq!(
        later_old, 0,
        "no write from the old holder in the next cycle"
    );
    for uid in 1..=n {
        assert_eq!(env.enrollments_of(uid, 100).len(), 1);
    }
    drop((old, standby));
}

#[tokio::test]
async fn p12_the_lock_is_neither_stacked_nor_leaked_and_shutdown_releases_it() {
    let (seed, rows) = roster(3);
    let env = TestEnv::new(seed).await;
    load(&env, &rows).await;
    let mut d = Daemon::start(&env, "* * * * * *", "").await;
    // The row as written: 20 cycles, then SIGTERM.
    d.wait_for(
        Duration::from_secs(60),
        |t, _| cycles(t, "succeeded") >= 20.0,
        "/metrics",
    )
    .await;
    let held: i64 = advisory_locks_held(&env.pool).await;
    assert_eq!(held, 1, "one lock after many cycles, not one per cycle");
    d.signal(libc::SIGTERM);
    let stopped = Instant::now();
    assert_eq!(d.wait_exit(Duration::from_secs(15)).await, Some(0));
    let free: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
        .bind(rostersync::store::lock::LOCK_KEY)
        .fetch_one(&env.pool)
        .await
        .expect("try");
    assert!(free && stopped.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn p13_throttling_is_retried_with_growing_delays_and_permission_errors_are_not() {
    let (seed, rows) = roster(1);
    for status in [
        ThrottleStatus::Forbidden403,
        ThrottleStatus::TooManyRequests429,
    ] {
        let env = TestEnv::with_options(SimOptions {
            seed: seed.clone(),
            throttle: ThrottleOptions {
                status,
                ..ThrottleOptions::default()
            },
            faults: FaultOptions::default().with_rule(
                FaultRule::on("POST", COURSE_ENROLLMENTS, FaultAction::Throttle).times(3),
            ),
            ..SimOptions::default()
        })
        .await;
        load(&env, &rows).await;
        let out = env.cli(&["reconcile", "--json"], "").await;
        assert_eq!(out.status.code(), Some(0));
        let posts: Vec<_> = env
            .sim
            .requests()
            .into_iter()
            .filter(|r| r.method == "POST")
            .collect();
        assert_eq!(posts.len(), 4);
        let gaps: Vec<Duration> = posts
            .windows(2)
            .map(|w| w[1].started - w[0].finished)
            .collect();
        assert!(
            gaps.iter().all(|g| *g >= Duration::from_millis(900)),
            "throttle backoff ≥ 1 s: {gaps:?}"
        );
    }
    // A permission 403: one attempt, failed, exit 2.
    let env = TestEnv::with_options(with_faults(
        seed.clone(),
        FaultOptions::default().with_rule(FaultRule::on(
            "POST",
            COURSE_ENROLLMENTS,
            FaultAction::Status {
                status: 403,
                content_type: Some("application/json".into()),
                body: Some(r#"{"errors":[{"message":"user not authorized"}]}"#.into()),
            },
        )),
    ))
    .await;
    load(&env, &rows).await;
    let out = env.cli(&["reconcile", "--json"], "").await;
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(env.sim.count("POST", COURSE_ENROLLMENTS), 1);
    let json = json_report(&out);
    let audit = env.audit(json["run_id"].as_str().unwrap_or_default()).await;
    assert!(
        audit[0]
            .error
            .as_deref()
            .is_some_and(|e| e.contains("user not authorized"))
    );
    // A 401 with a token file: one re-read, then exit 1 after at most 2 requests.
    let env = TestEnv::new(seed).await;
    load(&env, &rows).await;
    let token = env.dir.path().join("token");
    std::fs::write(&token, "revoked\n").expect("token");
    let config = env
        .toml(&format!("token_file = \"{}\"", token.display()))
        .replace(&format!("token = \"{}\"\n", env.token), "");
    let path = env.dir.path().join("t.toml");
    std::fs::write(&path, config).expect("config");
    let out = run_with_config(&path, &["reconcile", "--json"]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(env.sim.requests().len() <= 2, "{:?}", env.sim.requests());
    assert!(
        json_report(&out)["error"]
            .as_str()
            .is_some_and(|e| e.contains(&token.display().to_string())),
        "names the file"
    );
}

#[tokio::test]
async fn p14_server_errors_get_bounded_retries_and_an_error_budget_ends_the_cycle() {
    let (seed, rows) = roster(20);
    let env = TestEnv::with_options(with_faults(
        seed.clone(),
        FaultOptions::default().with_rule(FaultRule::on(
            "POST",
            COURSE_ENROLLMENTS,
            FaultAction::status(503),
        )),
    ))
    .await;
    load(&env, &rows).await;
    let started = Instant::now();
    let out = env
        .cli(
            &["reconcile", "--json"],
            "[limits]\nmax_retries = 2\ncycle_retry_budget = 6",
        )
        .await;
    assert_eq!(out.status.code(), Some(2));
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
    let json = json_report(&out);
    assert_eq!(
        json["details"]["canvas_unavailable"], true,
        "drives /readyz"
    );
    assert!(
        json["details"]["not_attempted"].as_u64().unwrap_or(0) > 0,
        "{json}"
    );
    assert!(env.sim.count("POST", COURSE_ENROLLMENTS) < 30);

    let env = TestEnv::with_options(with_faults(
        seed,
        FaultOptions {
            error_rate: 0.2,
            fault_seed: 7,
            ..FaultOptions::default()
        },
    ))
    .await;
    load(&env, &rows).await;
    let mut last = None;
    for _ in 0..3 {
        let out = env.cli(&["reconcile", "--json"], "").await;
        last = out.status.code();
        if last == Some(0) && json_report(&out)["planned"]["enroll"] == 0 {
            break;
        }
    }
    assert_eq!(last, Some(0));
    for uid in 1..=20 {
        assert_eq!(env.enrollments_of(uid, 100).len(), 1);
    }
}

#[tokio::test]
async fn p15_the_rate_limiter_holds_under_load() {
    let (seed, rows) = roster(60);
    let env = TestEnv::new(seed).await;
    load(&env, &rows).await;
    let out = env
        .cli(
            &["reconcile", "--json"],
            "[limits]\nrequests_per_second = 10\nmax_in_flight = 1",
        )
        .await;
    assert_eq!(out.status.code(), Some(0));
    let requests = env.sim.requests();
    assert!(requests.len() >= 62);
    for (i, r) in requests.iter().enumerate() {
        let window_end = r.started + Duration::from_secs(2);
        let in_window = requests[i..]
            .iter()
            .take_while(|x| x.started < window_end)
            .count();
        assert!(in_window <= 21, "{in_window} requests in 2 s at 10/s");
        if let Some(next) = requests.get(i + 1) {
            assert!(
                next.started >= r.finished,
                "max_in_flight = 1: requests never overlap"
            );
        }
    }
}

#[tokio::test]
async fn p16_the_token_never_appears_in_logs_metrics_errors_or_audit() {
    let sentinel = format!("CANARY-{}", uuid::Uuid::new_v4());
    let (seed, rows) = roster(6);
    let env = TestEnv::with_options(SimOptions {
        token: sentinel.clone(),
        seed,
        faults: FaultOptions::default()
            .with_rule(FaultRule::on("POST", COURSE_ENROLLMENTS, FaultAction::status(500)).nth(1))
            .with_rule(FaultRule::on("POST", COURSE_ENROLLMENTS, FaultAction::TruncatedJson).nth(2))
            .with_rule(
                FaultRule::on(
                    "POST",
                    COURSE_ENROLLMENTS,
                    FaultAction::Hang(Duration::from_secs(3)),
                )
                .nth(3),
            )
            .with_rule(FaultRule::on("POST", COURSE_ENROLLMENTS, FaultAction::status(401)).nth(6)),
        ..SimOptions::default()
    })
    .await;
    load(&env, &rows).await;
    // The daemon runs in a directory of its own, where a core file would land, with the soft core limit raised
    // as far as the hard limit allows (rostersync lowers it to 0 itself).
    let core_dir = env.dir.path().join("cores");
    std::fs::create_dir_all(&core_dir).expect("core dir");
    let port = free_port();
    let config = env.dir.path().join("p16.toml");
    std::fs::write(
        &config,
        env.toml(&format!(
            "request_timeout_secs = 1\n[log]\nlevel = \"trace\"\n[schedule]\ncron = \"0 0 0 1 1 *\"\nrun_on_start = true\n[server]\nlisten = \"127.0.0.1:{port}\"\n"
        )),
    )
    .expect("config");
    let stdout_path = env.dir.path().join("p16.out");
    let stderr_path = env.dir.path().join("p16.log");
    let mut cmd = rostersync_cmd();
    cmd.env("RUST_LOG", "trace")
        .current_dir(&core_dir)
        .arg("--config")
        .arg(&config)
        .arg("run")
        .stdout(std::fs::File::create(&stdout_path).expect("stdout"))
        .stderr(std::fs::File::create(&stderr_path).expect("stderr"))
        .kill_on_drop(true);
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            let mut lim = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            if libc::getrlimit(libc::RLIMIT_CORE, &mut lim) == 0 {
                lim.rlim_cur = lim.rlim_max;
                libc::setrlimit(libc::RLIMIT_CORE, &lim);
            }
            Ok(())
        });
    }
    let mut d = Daemon {
        child: cmd.spawn().expect("start rostersync run"),
        port,
        stderr_path,
    };
    d.wait_for(Duration::from_secs(20), |_, code| code == 200, "/healthz")
        .await;
    d.wait_for(
        Duration::from_secs(30),
        |t, _| cycles(t, "failed") + cycles(t, "partial") + cycles(t, "succeeded") >= 1.0,
        "/metrics",
    )
    .await;
    let metrics = d.get("/metrics").await.map(|r| r.1).unwrap_or_default();
    let readyz = d.get("/readyz").await.map(|r| r.1).unwrap_or_default();
    // A crash: SIGABRT's default action dumps core where the limit allows.
    d.signal(libc::SIGABRT);
    let _ = d.wait_exit(Duration::from_secs(15)).await;
    let log = d.log();
    let stdout = std::fs::read_to_string(&stdout_path).unwrap_or_default();
    assert!(log.len() + stdout.len() > 2000, "trace logging ran");
    for (what, text) in [
        ("stderr", &log),
        ("stdout", &stdout),
        ("metrics", &metrics),
        ("readyz", &readyz),
    ] {
        assert!(!text.contains(&sentinel), "token in {what}");
    }
    assert_eq!(
        grep_tree(&core_dir, &sentinel),
        Vec::<std::path::PathBuf>::new(),
        "token in a file of the core dir"
    );
    // Configurations that used to panic or that quote their input: the error never shows the token.
    for (name, bad) in [
        ("syntax", format!("token = \"{sentinel}\" x")),
        (
            "huge",
            format!("token = \"{sentinel}\"\nreport_timeout_secs = 1e20"),
        ),
        ("type", format!("token = [\"{sentinel}\"]")),
        (
            "unknown",
            format!("token = \"{sentinel}\"\ntokne = \"{sentinel}\""),
        ),
    ] {
        let path = env.dir.path().join(format!("bad-{name}.toml"));
        let text = format!(
            "[database]\nurl = \"{}\"\n[sis]\nquery = \"SELECT 1\"\n[canvas]\nbase_url = \"{}\"\n{bad}\n",
            env.db_url,
            env.sim.base_url()
        );
        std::fs::write(&path, text).expect("bad config");
        let out = rostersync_cmd()
            .env("RUST_LOG", "trace")
            .arg("--config")
            .arg(&path)
            .arg("check")
            .output()
            .await
            .expect("check");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{name}: {stderr}");
        assert!(!stderr.is_empty(), "{name}: says what is wrong");
        for text in [String::from_utf8_lossy(&out.stdout), stderr] {
            assert!(!text.contains(&sentinel), "{name}: token in {text}");
        }
    }
    // A TLS error: https to a plain-HTTP port.
    let config = env.toml("").replace("http://", "https://");
    let path = env.dir.path().join("tls.toml");
    std::fs::write(&path, config).expect("config");
    let out = rostersync_cmd()
        .env("RUST_LOG", "trace")
        .arg("--config")
        .arg(&path)
        .args(["reconcile", "--json"])
        .output()
        .await
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    for text in [
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    ] {
        assert!(!text.contains(&sentinel));
    }
    let leaked: i64 = sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM rostersync.audit_log a WHERE a::text LIKE '%' || $1 || '%') + \
                (SELECT count(*) FROM rostersync.sync_runs r WHERE r::text LIKE '%' || $1 || '%')",
    )
    .bind(&sentinel)
    .fetch_one(&env.pool)
    .await
    .expect("query");
    assert_eq!(leaked, 0);
    // Debug of the settings redacts it.
    let settings = env.settings("");
    assert!(!format!("{settings:?}").contains(&sentinel));
}

#[tokio::test]
async fn p17_token_rotation_by_symlink_swap_works_without_a_restart() {
    let (seed, rows) = roster(2);
    let env = TestEnv::new(seed).await;
    load(&env, &rows[..1]).await;
    // A Kubernetes Secret volume: token -> ..data/token, ..data -> ..2026_v1
    let dir = env.dir.path().join("secret");
    std::fs::create_dir_all(dir.join("..v1")).expect("dir");
    std::fs::write(dir.join("..v1/token"), format!("{}\n", env.token)).expect("v1");
    std::os::unix::fs::symlink("..v1", dir.join("..data")).expect("..data");
    std::os::unix::fs::symlink("..data/token", dir.join("token")).expect("token");
    let config = env
        .toml(&format!("token_file = \"{}\"", dir.join("token").display()))
        .replace(&format!("token = \"{}\"\n", env.token), "");
    let port = crate::support::free_port();
    let path = env.dir.path().join("k8s.toml");
    std::fs::write(&path, format!("{config}\n[schedule]\ncron = \"*/2 * * * * *\"\n[server]\nlisten = \"127.0.0.1:{port}\"\n")).expect("config");
    let log = env.dir.path().join("k8s.log");
    let child = rostersync_cmd()
        .arg("--config")
        .arg(&path)
        .arg("run")
        .stderr(std::fs::File::create(&log).expect("log"))
        .kill_on_drop(true)
        .spawn()
        .expect("spawn");
    let mut d = Daemon {
        child,
        port,
        stderr_path: log,
    };
    let pid = d.pid();
    eventually(
        Duration::from_secs(20),
        || env.sim.count("POST", COURSE_ENROLLMENTS) >= 1,
        String::new,
    )
    .await;
    // Canvas rotates; the kubelet swaps ..data atomically.
    env.sim.set_token("rotated-token");
    std::fs::create_dir_all(dir.join("..v2")).expect("dir");
    std::fs::write(dir.join("..v2/token"), "rotated-token\n").expect("v2");
    std::os::unix::fs::symlink("..v2", dir.join("..data_tmp")).expect("tmp");
    std::fs::rename(dir.join("..data_tmp"), dir.join("..data")).expect("swap");
    load(&env, &rows[1..]).await;
    eventually(
        Duration::from_secs(20),
        || env.sim.count("POST", COURSE_ENROLLMENTS) >= 2,
        || d.log(),
    )
    .await;
    assert_eq!(d.pid(), pid, "same process");
    d.signal(libc::SIGTERM);
    assert_eq!(d.wait_exit(Duration::from_secs(15)).await, Some(0));

    // A subPath mount binds the file itself: the old inode, never updated by the swap.
    let bound = env.dir.path().join("subpath");
    std::fs::create_dir_all(&bound).expect("dir");
    std::fs::hard_link(dir.join("..v1/token"), bound.join("token")).expect("bind the old inode");
    let stale = env
        .toml(&format!(
            "token_file = \"{}\"",
            bound.join("token").display()
        ))
        .replace(&format!("token = \"{}\"\n", env.token), "");
    let stale_path = env.dir.path().join("subpath.toml");
    std::fs::write(&stale_path, stale).expect("config");
    let out = rostersync_cmd()
        .arg("--config")
        .arg(&stale_path)
        .arg("reconcile")
        .output()
        .await
        .expect("reconcile");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&bound.join("token").display().to_string()),
        "the auth error names the token file: {stderr}"
    );
    assert!(!stderr.contains(&env.token), "never the token itself");
}

#[tokio::test]
async fn p18_no_core_dumps_of_the_token() {
    let (seed, rows) = roster(1);
    let env = TestEnv::new(seed).await;
    load(&env, &rows).await;
    let mut d = Daemon::start(&env, "0 0 0 1 1 *", "").await;
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", d.pid())).expect("limits");
    let core = limits
        .lines()
        .find(|l| l.starts_with("Max core file size"))
        .unwrap_or_default()
        .to_owned();
    assert!(
        core.split_whitespace().filter(|w| *w == "0").count() >= 2,
        "{core}"
    );
    let status = std::fs::read_to_string(format!("/proc/{}/status", d.pid())).unwrap_or_default();
    let cwd = std::env::current_dir().expect("cwd");
    // SIGABRT's default action dumps core (Rust's own SIGSEGV handler would swallow a kill-sent SIGSEGV).
    d.signal(libc::SIGABRT);
    let _ = d.wait_exit(Duration::from_secs(10)).await;
    let cores = std::fs::read_dir(&cwd)
        .map(|it| {
            it.flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with("core"))
                .count()
        })
        .unwrap_or(0);
    assert_eq!(cores, 0, "no core file; {status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p21_a_postgres_restart_mid_cycle_fails_cleanly_and_the_next_cycle_converges() {
    let cluster = tokio::task::spawn_blocking(rostersync::pgtemp::TempPostgres::start)
        .await
        .expect("join")
        .expect("own cluster");
    let db_url = cluster.url.clone();
    let pool = sqlx::PgPool::connect(&db_url).await.expect("connect");
    sqlx::query("CREATE TABLE sis_enrollments (user_id text, course_id text, section_id text, role text, status text)")
        .execute(&pool)
        .await
        .expect("table");
    let (seed, rows) = roster(20);
    for (u, c) in &rows {
        sqlx::query("INSERT INTO sis_enrollments VALUES ($1, $2, NULL, 'student', NULL)")
            .bind(u)
            .bind(*c)
            .execute(&pool)
            .await
            .expect("row");
    }
    pool.close().await;
    let env = TestEnv::with_options(with_faults(
        seed,
        FaultOptions {
            write_latency: Duration::from_millis(200),
            ..FaultOptions::default()
        },
    ))
    .await;
    // The daemon, as the row says: `rostersync run`, not a one-shot reconcile.
    let own_db = env.db_url.clone();
    let mut d = Daemon::start_with(&env, "*/2 * * * * *", "[limits]\nmax_in_flight = 1", |t| {
        t.replace(&own_db, &db_url)
    })
    .await;
    while env.sim.count("POST", COURSE_ENROLLMENTS) < 5 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let c = &cluster;
    tokio::task::block_in_place(|| c.restart()).expect("restart during apply");
    // No exit loop: the same process goes on and a later cycle converges.
    let enrolled = |env: &TestEnv| (1..=20).all(|uid| env.enrollments_of(uid, 100).len() == 1);
    eventually(
        Duration::from_secs(60),
        || enrolled(&env),
        || format!("the daemon never converged after the restart: {}", d.log()),
    )
    .await;
    let text = d
        .wait_for(
            Duration::from_secs(30),
            |t, _| cycles(t, "succeeded") >= 1.0,
            "/metrics",
        )
        .await;
    assert!(cycles(&text, "succeeded") >= 1.0);
    assert!(
        d.child.try_wait().expect("status").is_none(),
        "still running"
    );
    d.signal(libc::SIGTERM);
    assert_eq!(d.wait_exit(Duration::from_secs(15)).await, Some(0));
    for uid in 1..=20 {
        assert_eq!(env.enrollments_of(uid, 100).len(), 1, "no duplicate");
    }
    let pool = sqlx::PgPool::connect(&db_url).await.expect("connect");
    let unresolved: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM rostersync.audit_log a WHERE a.outcome = 'planned' AND NOT a.dry_run \
         AND NOT EXISTS (SELECT 1 FROM rostersync.audit_log b WHERE b.source_audit_id = a.id \
                         AND b.outcome IN ('applied', 'failed'))",
    )
    .fetch_one(&pool)
    .await
    .expect("planned");
    assert_eq!(unresolved, 0, "no planned row left unresolved");
    pool.close().await;
}

#[tokio::test]
async fn p13b_under_a_tight_leaky_bucket_the_pacer_keeps_throttling_rare_and_nothing_fails() {
    let (seed, rows) = roster(80);
    let env = TestEnv::with_options(SimOptions {
        seed,
        throttle: ThrottleOptions {
            hwm: 300.0,
            maximum: 400.0,
            outflow: 50.0,
            request_cost: 10.0,
            ..ThrottleOptions::default()
        },
        faults: FaultOptions {
            latency: Duration::from_millis(20),
            ..FaultOptions::default()
        },
        ..SimOptions::default()
    })
    .await;
    load(&env, &rows).await;
    // The shipped defaults: no static rate cap, max_in_flight 11; the pacer alone keeps the bucket from overflowing.
    let out = env.cli(&["reconcile", "--json"], "").await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json = json_report(&out);
    assert_eq!(json["failed"], 0);
    let requests = env.sim.requests();
    let throttled = requests.iter().filter(|r| r.throttled).count();
    eprintln!(
        "tight bucket: {} requests, {throttled} throttled ({:.1}%), {} ms",
        requests.len(),
        100.0 * throttled as f64 / requests.len() as f64,
        json["duration_ms"]
    );
    assert!(
        throttled * 20 <= requests.len(),
        "throttled responses stay rare: {throttled} of {}",
        requests.len()
    );
    for uid in 1..=80 {
        assert_eq!(env.enrollments_of(uid, 100).len(), 1);
    }
}
