//! `target.kind = "openedx"` through the built binary: `check` against openedx-sim (issue 17 §6).

use canvas_sim::Seed;
use canvas_sim::openedx::{
    OpenEdxHandle, OpenEdxOptions, OpenEdxSeed, SeedClient, SeedLmsUser, SeedProgram, spawn,
};

use crate::support::*;

const PROGRAM: &str = "00000000-1111-2222-3333-444444444444";
const CURRICULUM: &str = "aaaaaaaa-1111-2222-3333-444444444444";
const RUN: &str = "course-v1:MITx+6.002x+2026";
const SECRET: &str = "sentinel-openedx-secret-91c2";

async fn lms() -> OpenEdxHandle {
    spawn(OpenEdxOptions {
        seed: OpenEdxSeed::default()
            .client(SeedClient::new("rostersync", SECRET, "svc"))
            .client(SeedClient::new("partner", SECRET, "svc").restricted())
            .user(SeedLmsUser::new("svc").staff())
            .program(SeedProgram::new(PROGRAM, "MITx").curriculum(CURRICULUM, &[RUN])),
        ..OpenEdxOptions::default()
    })
    .await
    .expect("openedx-sim starts")
}

fn openedx_extra(lms: &OpenEdxHandle, client_id: &str) -> String {
    format!(
        "[target]\nkind = \"openedx\"\n[openedx]\nbase_url = \"{}\"\nclient_id = \"{client_id}\"\n\
         client_secret = \"{SECRET}\"\n",
        lms.base_url()
    )
}

#[tokio::test]
async fn openedx_check_reads_a_token_and_each_managed_program_and_names_a_restricted_application() {
    let env = TestEnv::new(Seed::default()).await;
    let lms = lms().await;
    env.sis(&[
        ("learner-1", PROGRAM, None, "learner", None),
        ("learner-1", PROGRAM, Some(RUN), "learner", None),
    ])
    .await;
    let out = env
        .cli(&["check"], &openedx_extra(&lms, "rostersync"))
        .await;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains("ok    openedx "), "{stdout}");
    assert!(
        stdout.contains(&format!("{PROGRAM}: 0 program enrollment(s)")),
        "{stdout}"
    );
    assert_eq!(env.writes(), 0, "Canvas is not reached with kind = openedx");

    let out = env.cli(&["check"], &openedx_extra(&lms, "partner")).await;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(stdout.contains("restricted application"), "{stdout}");
    for text in [&stdout, &stderr] {
        assert!(!text.contains(SECRET), "{text}");
    }
    lms.shutdown().await;
}
