//! Callers that are not people logging in: service clients with client credentials (OAuth token endpoint)
//! and Django access tokens mapped to linked local users.

use warden::clock::Clock;

use crate::helpers::prelude::*;

db_tests! {
    service_clients_get_tokens_by_client_credentials_only, django_access_tokens_map_to_linked_local_users,
}

async fn service_clients_get_tokens_by_client_credentials_only(kind: DbKind) {
    let app = spawn_app(kind).await;
    let client = app
        .state
        .auth
        .create_client("ci-bot", "user")
        .await
        .unwrap();
    let form = format!(
        "grant_type=client_credentials&client_id={}&client_secret={}",
        client.client_id, client.client_secret
    );
    let r = app
        .post_body(
            "/auth/token",
            Some("application/x-www-form-urlencoded"),
            form,
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let body = json_of(r).await;
    assert_eq!(body["token_type"], json!("Bearer"));
    let token = body["access_token"].as_str().unwrap().to_string();
    let me: Value = app.get_json("/api/me", &token).await;
    assert_eq!(me["kind"], json!("service"));

    // HTTP Basic works as well.
    let r = app
        .client
        .post(app.url("/auth/token"))
        .basic_auth(&client.client_id, Some(&client.client_secret))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("grant_type=client_credentials")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);

    // The seed handed a token to anyone: here no or wrong credentials are a 401.
    let r = app.post_empty("/auth/token").await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(json_of(r).await["error"], json!("unsupported_grant_type"));
    let wrong = format!(
        "grant_type=client_credentials&client_id={}&client_secret=wrong",
        client.client_id
    );
    let r = app
        .post_body(
            "/auth/token",
            Some("application/x-www-form-urlencoded"),
            wrong,
        )
        .await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(json_of(r).await["error"], json!("invalid_client"));
    let r = app
        .client
        .post(app.url("/auth/token"))
        .json(
            &json!({ "grant_type": "client_credentials", "client_id": "x", "client_secret": "y" }),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    // A person cannot use their password as a client secret, nor a client log in with a password.
    let admin = app.admin().await;
    let as_person = format!(
        "grant_type=client_credentials&client_id={}&client_secret={}",
        admin.user_id, ADMIN_PASSWORD
    );
    let r = app
        .post_body(
            "/auth/token",
            Some("application/x-www-form-urlencoded"),
            as_person,
        )
        .await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        app.login_raw("ci-bot", &client.client_secret)
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );

    // Disabling the client ends its tokens at once.
    let r = app
        .put_as(
            &format!("/api/users/{}", client.client_id),
            &admin.access,
            json!({ "is_active": false }),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        app.get_bearer("/api/me", &token).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

async fn django_access_tokens_map_to_linked_local_users(kind: DbKind) {
    let django_secret = "django-secret-for-tests-0123456789abcdef";
    let app = spawn_app_with(kind, &[("DJANGO_SECRET_KEY", django_secret)]).await;
    let id = app.create_user("erin", "erin-password", "user").await;
    app.state
        .auth
        .link_external("django", "42", &id)
        .await
        .unwrap();
    let now = app.clock.now_ms() / 1000;
    let mint = |claims: Value, secret: &str| {
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
        )
        .unwrap()
    };
    let access = mint(
        json!({ "token_type": "access", "user_id": 42, "jti": "j1", "exp": now + 300, "iat": now }),
        django_secret,
    );
    let body: Value = app.get_json("/api/me", &access).await;
    assert_eq!(body["username"], json!("erin"));

    let refresh = mint(
        json!({ "token_type": "refresh", "user_id": 42, "jti": "j2", "exp": now + 300, "iat": now }),
        django_secret,
    );
    expect_refused(&app, &refresh).await;
    let unlinked = mint(
        json!({ "token_type": "access", "user_id": 43, "jti": "j3", "exp": now + 300, "iat": now }),
        django_secret,
    );
    expect_refused(&app, &unlinked).await;
    let expired = mint(
        json!({ "token_type": "access", "user_id": 42, "jti": "j4", "exp": now - 60, "iat": now - 400 }),
        django_secret,
    );
    expect_refused(&app, &expired).await;
    let forged = mint(
        json!({ "token_type": "access", "user_id": 42, "jti": "j5", "exp": now + 300, "iat": now }),
        "another-secret-another-secret-xx",
    );
    expect_refused(&app, &forged).await;
    // Our own tokens are not accepted as Django's and Django's not as a browser cookie.
    let r = app
        .get_as("/api/me", &header("cookie", format!("auth_token={access}")))
        .await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}
