//! The caller's own account for the settings page: `/api/me/sessions` (list one's live sessions, end one; another
//! user's session is 404 and stays live) and `/api/me/mfa/totp/qr.svg` (the pending enrolment's QR code, only for
//! its owner, never cached).

use crate::helpers::prelude::*;

db_tests!(
    a_user_lists_their_own_sessions_and_ends_another_one,
    another_users_session_is_not_found_and_stays_live,
    the_totp_qr_code_is_only_for_its_owner_while_an_enrolment_is_pending,
);

async fn session_id_of(app: &TestApp, who: &(impl crate::helpers::Caller + ?Sized)) -> String {
    app.get_json("/api/me", who).await["session_id"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn a_user_lists_their_own_sessions_and_ends_another_one(kind: DbKind) {
    // Arrange: two logins of ann, one of bob.
    let app = spawn_app(kind).await;
    app.create_user("ann", "ann-password-Kq4", "user").await;
    app.create_user("bob", "bob-password-Kq4", "user").await;
    let laptop = app.login("ann", "ann-password-Kq4").await;
    let phone = app.login("ann", "ann-password-Kq4").await;
    let bob = app.login("bob", "bob-password-Kq4").await;
    let (laptop_id, phone_id) = (
        session_id_of(&app, &laptop).await,
        session_id_of(&app, &phone).await,
    );

    // Act: list from the laptop.
    let list = app.get_json("/api/me/sessions", &laptop).await;

    // Assert: both of ann's sessions, the laptop marked current, none of bob's, no token.
    let sessions = list["sessions"].as_array().unwrap();
    let mut ids: Vec<&str> = sessions.iter().map(|s| s["id"].as_str().unwrap()).collect();
    ids.sort_unstable();
    let mut expected = vec![laptop_id.as_str(), phone_id.as_str()];
    expected.sort_unstable();
    assert_eq!(ids, expected, "{list:#}");
    for s in sessions {
        assert_eq!(s["current"], json!(s["id"] == json!(laptop_id)), "{s}");
        assert!(s["created_at"].is_string(), "{s}");
    }
    assert!(!list.to_string().contains(&laptop.access));
    assert!(!list.to_string().contains(&laptop.refresh));

    // Act: end the phone's session from the laptop.
    let r = app
        .delete_as(&format!("/api/me/sessions/{phone_id}"), &laptop)
        .await;

    // Assert: it ends at once; the laptop and bob stay signed in; the list shows the laptop only.
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(json_of(r).await["revoked"], json!(1));
    assert_eq!(
        app.get_as("/api/me", &phone).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.get_as("/api/me", &laptop).await.status(),
        StatusCode::OK
    );
    assert_eq!(app.get_as("/api/me", &bob).await.status(), StatusCode::OK);
    let list = app.get_json("/api/me/sessions", &laptop).await;
    assert_eq!(list["sessions"].as_array().unwrap().len(), 1, "{list:#}");
    assert_eq!(list["sessions"][0]["id"], json!(laptop_id));

    // Signed out, neither route answers.
    let r = app
        .client
        .get(app.url("/api/me/sessions"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = app
        .client
        .delete(app.url(&format!("/api/me/sessions/{laptop_id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}

async fn another_users_session_is_not_found_and_stays_live(kind: DbKind) {
    let app = spawn_app(kind).await;
    app.create_user("ann", "ann-password-Kq4", "user").await;
    app.create_user("bob", "bob-password-Kq4", "user").await;
    let ann = app.login("ann", "ann-password-Kq4").await;
    let bob = app.login("bob", "bob-password-Kq4").await;
    let bob_id = session_id_of(&app, &bob).await;

    let r = app
        .delete_as(&format!("/api/me/sessions/{bob_id}"), &ann)
        .await;

    // 404, like an unknown id; bob stays signed in.
    let body = expect_error(r, StatusCode::NOT_FOUND).await;
    assert_eq!(body["error"], json!("Session not found"));
    assert_eq!(app.get_as("/api/me", &bob).await.status(), StatusCode::OK);
    let unknown = uuid::Uuid::new_v4();
    let r = app
        .delete_as(&format!("/api/me/sessions/{unknown}"), &ann)
        .await;
    expect_error(r, StatusCode::NOT_FOUND).await;
    let long = "x".repeat(65);
    let r = app
        .delete_as(&format!("/api/me/sessions/{long}"), &ann)
        .await;
    expect_error(r, StatusCode::NOT_FOUND).await;
    let list = app.get_json("/api/me/sessions", &ann).await;
    assert!(!list.to_string().contains(&bob_id), "{list:#}");
}

async fn the_totp_qr_code_is_only_for_its_owner_while_an_enrolment_is_pending(kind: DbKind) {
    use warden::{clock::Clock, mfa::totp};
    let app = spawn_app(kind).await;
    app.create_user("ann", "ann-password-Kq4", "user").await;
    app.create_user("bob", "bob-password-Kq4", "user").await;
    let ann = app.login("ann", "ann-password-Kq4").await;
    let bob = app.login("bob", "bob-password-Kq4").await;
    let qr = "/api/me/mfa/totp/qr.svg";

    // Nothing pending: 404.
    expect_error(app.get_as(qr, &ann).await, StatusCode::NOT_FOUND).await;

    // Started: an SVG for ann, never cached; bob (nothing pending) and a signed-out caller get none.
    let started = json_of(app.post_as("/api/me/mfa/totp", &ann, json!({})).await).await;
    let secret_b32 = started["secret"].as_str().unwrap().to_string();
    let r = app.get_as(qr, &ann).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-type"], "image/svg+xml");
    assert_eq!(r.headers()["cache-control"], "no-store");
    let svg = r.text().await.unwrap();
    assert!(svg.contains("<svg"), "{svg}");
    assert!(
        !svg.contains(&secret_b32),
        "the secret is drawn, not written"
    );
    assert!(svg.len() > 1000, "{} bytes", svg.len());
    expect_error(app.get_as(qr, &bob).await, StatusCode::NOT_FOUND).await;
    let r = app.client.get(app.url(qr)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    // Confirmed: the secret is never drawn again.
    let secret = totp::base32_decode(&secret_b32).unwrap();
    let code = totp::code_at(&secret, totp::step_at(app.clock.now_secs()));
    let r = app
        .post_as("/api/me/mfa/totp/confirm", &ann, json!({ "code": code }))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    expect_error(app.get_as(qr, &ann).await, StatusCode::NOT_FOUND).await;
}
