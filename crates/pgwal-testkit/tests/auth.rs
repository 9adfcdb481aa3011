//! Acceptance: the builder's auth users connect over TCP with their passwords and methods; a
//! wrong password fails with SQLSTATE 28P01.

// Tests may unwrap (see clippy.toml); this also covers the helper functions here.
#![allow(clippy::unwrap_used)]

use pgwal_testkit::{require_major, Cluster, Major, AUTH_USERS, MD5_USER, SCRAM_USER, TRUST_USER};

async fn check_auth(major: Major) {
    if require_major(major).is_none() {
        return;
    }
    let pg = Cluster::builder(major).auth_users().start().unwrap();

    for u in AUTH_USERS {
        let c = pg
            .connect_as(u.name, Some(u.password))
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "{} ({}) could not connect on {major}: {e:?}",
                    u.name, u.method
                )
            });
        let row = c.query_one("SELECT current_user::text", &[]).await.unwrap();
        assert_eq!(row.get::<_, String>(0), u.name);

        let wrong = pg.connect_as(u.name, Some("wrong-password")).await;
        if u.name == TRUST_USER.name {
            assert!(wrong.is_ok(), "trust must accept any password");
        } else {
            let e = wrong
                .err()
                .unwrap_or_else(|| panic!("{} accepted a wrong password", u.name));
            let code = e.code().map(|c| c.code().to_string());
            assert_eq!(
                code.as_deref(),
                Some("28P01"),
                "{} ({}): {e:?}",
                u.name,
                u.method
            );
        }
    }
    // Without a password, password methods fail before the server checks anything.
    assert!(pg.connect_as(SCRAM_USER.name, None).await.is_err());

    // The stored hashes really are of the intended kind.
    let kinds = pg
        .query_one_string(&format!(
            "SELECT string_agg(rolname || ':' || left(rolpassword, 6), ',' ORDER BY rolname) \
             FROM pg_authid WHERE rolname IN ('{}', '{}')",
            MD5_USER.name, SCRAM_USER.name
        ))
        .await;
    assert!(kinds.contains("md5_user:md5"), "{kinds}");
    assert!(kinds.contains("scram_user:SCRAM-"), "{kinds}");
}

#[tokio::test]
async fn auth_users_13() {
    check_auth(Major::V13).await;
}

#[tokio::test]
async fn auth_users_15() {
    check_auth(Major::V15).await;
}

#[tokio::test]
async fn auth_users_18() {
    check_auth(Major::V18).await;
}

#[tokio::test]
async fn auth_users_19() {
    check_auth(Major::V19).await;
}
