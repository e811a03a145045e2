//! The session cache (issue 13): each application has its own, and whatever ends a
//! session or changes what its principal holds empties it, so the next request with the
//! old access token is answered from the database on the server that made the change.
//! Every test first uses the token on that server, so that its principal is cached.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::{TestApp, PASSWORD};
use eportfolio::auth::principal::SESSION_CACHE_TTL;

#[test]
fn a_session_revoked_is_refused_at_once() {
    let app = TestApp::start();
    let (admin, _) = app.admin();
    app.get("/me", Some(&admin.access)).expect(200);
    app.post("/auth/logout", Some(&admin.access), json!({}))
        .expect(204);
    app.get("/me", Some(&admin.access))
        .expect_problem(401, "unauthenticated");
}

#[test]
fn a_password_changed_ends_every_cached_session_at_once() {
    let app = TestApp::start();
    let (admin, _) = app.admin();
    let phone = app.login_totp(&admin);
    app.get("/me", Some(&phone.access)).expect(200);
    app.get("/me", Some(&admin.access)).expect(200);
    app.post(
        "/me/password",
        Some(&admin.access),
        json!({"current_password": PASSWORD, "new_password": "a brand new passphrase"}),
    )
    .expect(204);
    app.get("/me", Some(&phone.access))
        .expect_problem(401, "unauthenticated");
    app.get("/me", Some(&admin.access))
        .expect_problem(401, "unauthenticated");
}

#[test]
fn an_erased_accounts_cached_session_is_refused_at_once() {
    let app = TestApp::start();
    let (admin, region) = app.admin();
    let slso = app.create_org(&admin, "care_provider", "SLSO", Some(&region));
    let supervisor = app.join(&admin, "hhl@sll.se", "supervisor", &slso);
    app.get("/me", Some(&supervisor.access)).expect(200);
    app.post(
        &format!("/users/{}/erasure", supervisor.id),
        Some(&admin.access),
        json!({}),
    )
    .expect(200);
    app.get("/me", Some(&supervisor.access))
        .expect_problem(401, "unauthenticated");
}

#[test]
fn a_role_granted_is_seen_by_the_next_request_with_a_cached_session() {
    let app = TestApp::start();
    let (admin, region) = app.admin();
    let ks = app.create_org(&admin, "care_provider", "Karolinska", Some(&region));
    let unit_a = app.create_org(&admin, "unit", "Akutkliniken", Some(&ks));
    let unit_b = app.create_org(&admin, "unit", "Infektionskliniken", Some(&ks));
    let email = "handledare@karolinska.se";
    let supervisor = app.join(&admin, email, "supervisor", &unit_a);
    let roles = |app: &TestApp| {
        app.get("/me", Some(&supervisor.access)).expect(200).body["roles"]
            .as_array()
            .expect("roles")
            .len()
    };
    assert_eq!(roles(&app), 1);
    let token = app.invite(&admin, email, "supervisor", &unit_b);
    app.post(
        &format!("/auth/invitations/{token}/accept"),
        None,
        json!({"password": PASSWORD}),
    )
    .expect(200);
    assert_eq!(roles(&app), 2);
}

/// Two applications in one process (two nodes' worth) keep their caches apart: ending a
/// session on one empties only its own, and the other refuses the session once its entry
/// has expired (`SESSION_CACHE_TTL`), as a node of a region does. With one cache per
/// process, the other would refuse it at once.
#[test]
fn two_servers_in_one_process_do_not_share_their_session_cache() {
    let app = TestApp::start();
    let (admin, _) = app.admin();
    let other = app.beside();
    // On a loaded machine the steps may take longer than the TTL, and then show nothing:
    // try again with a new session.
    let mut shown = false;
    for _ in 0..3 {
        let session = app.login_totp(&admin);
        let cached_at = Instant::now();
        other.get("/me", Some(&session.access)).expect(200);
        app.post("/auth/logout", Some(&session.access), json!({}))
            .expect(204);
        app.get("/me", Some(&session.access))
            .expect_problem(401, "unauthenticated");
        let answer = other.get("/me", Some(&session.access));
        if cached_at.elapsed() < SESSION_CACHE_TTL {
            assert_eq!(
                answer.status, 200,
                "the other server's cache was emptied by this one's logout: {}",
                answer.text
            );
            std::thread::sleep(SESSION_CACHE_TTL + Duration::from_millis(300));
            other
                .get("/me", Some(&session.access))
                .expect_problem(401, "unauthenticated");
            shown = true;
            break;
        }
    }
    assert!(shown, "three tries were each slower than the cache's TTL");
}
