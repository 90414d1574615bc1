//! The contract of the projection's stores: per-connection settings ([`SettingsStore`]) and the
//! host product's users ([`LocalUserStore`]). The in-memory reference, SQLite and DynamoDB on
//! moto run the same functions on a fresh store; each panics with a message naming the broken
//! rule.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use entra_sync_core::error::StoreError;
use entra_sync_core::model::{AccountId, TenantId};
use entra_sync_core::ports::{LocalUserStore, SettingsStore};
use entra_sync_core::provision::{DirectoryLink, LocalStatus, LocalUser};
use entra_sync_core::settings::{ConnectionSettings, Schedule};

fn t0() -> DateTime<Utc> {
    DateTime::from_timestamp(1_767_225_600, 0).unwrap_or_default()
}

fn acct(id: &str) -> AccountId {
    AccountId(id.to_owned())
}

fn link(tenant: &str, object_id: &str) -> Option<DirectoryLink> {
    Some(DirectoryLink {
        tenant_id: TenantId::new(tenant),
        object_id: object_id.to_owned(),
    })
}

fn local(account: &str, id: &str, email: &str, link: Option<DirectoryLink>) -> LocalUser {
    LocalUser {
        account_id: acct(account),
        local_id: id.to_owned(),
        email: email.to_owned(),
        status: LocalStatus::Pending,
        activated: false,
        link,
        fields: BTreeMap::from([("displayName".to_owned(), format!("User {id}"))]),
        roles: vec!["member".to_owned()],
        frozen: false,
        updated_at: t0(),
        revision: 0,
    }
}

/// Put `users` and bring the caller's copies to the revision the store gives them: the one
/// after the stored one (each copy here is of the stored user, or of a new one).
async fn put(store: &dyn LocalUserStore, users: &mut [LocalUser]) {
    store.put_local_users(users).await.unwrap();
    for u in users {
        u.revision += 1;
    }
}

fn ids(users: &[LocalUser]) -> Vec<String> {
    let mut out: Vec<String> = users.iter().map(|u| u.local_id.clone()).collect();
    out.sort();
    out
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

fn is_conflict<T: std::fmt::Debug>(r: Result<T, StoreError>) -> bool {
    matches!(r, Err(StoreError::Conflict(_)))
}

/// Settings: versioned round trip, every kind of version conflict, tenants apart.
pub async fn settings(store: &dyn SettingsStore) {
    let a = TenantId::new("tenant-a");
    let b = TenantId::new("tenant-b");
    assert_eq!(
        store.get_settings(&a).await.unwrap(),
        None,
        "never saved: no settings"
    );

    // The first save must name version 0 and carry version 1.
    let v2_first = ConnectionSettings {
        version: 2,
        ..Default::default()
    };
    assert!(
        is_conflict(store.put_settings(&a, &v2_first, 0).await),
        "a first save that skips version 1 is refused"
    );
    let v1 = ConnectionSettings {
        version: 1,
        schedule: Schedule::Daily { hour_utc: 3 },
        ..Default::default()
    };
    assert!(
        is_conflict(store.put_settings(&a, &v1, 1).await),
        "a save expecting version 1 when nothing is stored is refused"
    );
    assert_eq!(store.get_settings(&a).await.unwrap(), None);
    store.put_settings(&a, &v1, 0).await.unwrap();
    assert_eq!(store.get_settings(&a).await.unwrap(), Some(v1.clone()));

    // A second "first save" loses: something is stored now.
    let other_v1 = ConnectionSettings {
        version: 1,
        schedule: Schedule::Daily { hour_utc: 9 },
        ..Default::default()
    };
    assert!(
        is_conflict(store.put_settings(&a, &other_v1, 0).await),
        "a first save over stored settings is refused"
    );

    // The next version, expecting the stored one, lands.
    let mut v2 = v1.clone();
    v2.version = 2;
    v2.schedule = Schedule::Hourly;
    v2.provisioning.automatic = entra_sync_core::settings::Automatic::Nothing;
    v2.breaker.max_count = 7.into();
    store.put_settings(&a, &v2, 1).await.unwrap();
    assert_eq!(store.get_settings(&a).await.unwrap(), Some(v2.clone()));

    // A stale writer (still holding version 1) loses, whatever it writes.
    let mut stale = v1.clone();
    stale.version = 2;
    assert!(
        is_conflict(store.put_settings(&a, &stale, 1).await),
        "a stale expected version is refused"
    );
    // Skipping a version is refused even with the right expected version.
    let mut v4 = v2.clone();
    v4.version = 4;
    assert!(
        is_conflict(store.put_settings(&a, &v4, 2).await),
        "settings.version must be expected + 1"
    );
    // Going backwards too.
    assert!(is_conflict(store.put_settings(&a, &v1, 2).await));
    assert_eq!(
        store.get_settings(&a).await.unwrap(),
        Some(v2.clone()),
        "refused saves leave the stored settings alone"
    );

    // Tenants are apart: b has nothing, and b's first save does not touch a.
    assert_eq!(store.get_settings(&b).await.unwrap(), None);
    assert!(
        is_conflict(store.put_settings(&b, &v2, 1).await),
        "a's version means nothing for b"
    );
    store.put_settings(&b, &other_v1, 0).await.unwrap();
    assert_eq!(store.get_settings(&b).await.unwrap(), Some(other_v1));
    assert_eq!(store.get_settings(&a).await.unwrap(), Some(v2.clone()));
    let mut v3 = v2.clone();
    v3.version = 3;
    store.put_settings(&a, &v3, 2).await.unwrap();
    assert_eq!(store.get_settings(&a).await.unwrap(), Some(v3));
}

/// Local users: upsert and get, lookups by email and by directory link (kept right when a put
/// changes or drops them), listings in local-id order, accounts and tenants apart.
pub async fn local_users(store: &dyn LocalUserStore) {
    let (a1, a2) = (acct("acct-1"), acct("acct-2"));
    assert_eq!(store.get_local_user(&a1, "u1").await.unwrap(), None);
    assert!(
        store
            .find_by_emails(&a1, &strings(&["ann@contoso.com"]))
            .await
            .unwrap()
            .is_empty()
    );

    let ann = local(
        "acct-1",
        "u1",
        "ann@contoso.com",
        link("tenant-a", "obj-ann"),
    );
    let bob = local("acct-1", "u2", "bob@contoso.com", None);
    let cid = local(
        "acct-1",
        "u3",
        "cid@contoso.com",
        link("tenant-a", "obj-cid"),
    );
    // Same local id and email in another account, linked in another tenant.
    let ann_other = local(
        "acct-2",
        "u1",
        "ann@contoso.com",
        link("tenant-b", "obj-ann"),
    );
    let mut first = [ann.clone(), bob.clone(), cid.clone(), ann_other.clone()];
    put(store, &mut first).await;
    let [ann, bob, cid, ann_other] = first;

    // Get, by (account, local id).
    assert_eq!(
        store.get_local_user(&a1, "u1").await.unwrap(),
        Some(ann.clone())
    );
    assert_eq!(
        store.get_local_user(&a2, "u1").await.unwrap(),
        Some(ann_other.clone())
    );
    assert_eq!(store.get_local_user(&a2, "u2").await.unwrap(), None);

    // Upsert replaces the whole user.
    let mut ann2 = ann.clone();
    ann2.status = LocalStatus::Active;
    ann2.activated = true;
    ann2.roles = vec!["admin".into(), "member".into()];
    ann2.fields.insert("department".into(), "Sales".into());
    put(store, std::slice::from_mut(&mut ann2)).await;
    assert_eq!(
        store.get_local_user(&a1, "u1").await.unwrap(),
        Some(ann2.clone())
    );
    assert_eq!(
        store.get_local_user(&a2, "u1").await.unwrap(),
        Some(ann_other.clone()),
        "a put in one account leaves the other alone"
    );

    // Each put stores the revision after the stored one, whatever the user carries.
    let mut stale = ann2.clone();
    stale.revision = 99;
    store
        .put_local_users(std::slice::from_ref(&stale))
        .await
        .unwrap();
    assert_eq!(
        store
            .get_local_user(&a1, "u1")
            .await
            .unwrap()
            .map(|u| u.revision),
        Some(ann2.revision + 1),
        "the revision follows the stored one"
    );
    ann2.revision += 1;

    // By email: several at once, only the given account, unknown emails ignored.
    let found = store
        .find_by_emails(
            &a1,
            &strings(&["ann@contoso.com", "cid@contoso.com", "nobody@contoso.com"]),
        )
        .await
        .unwrap();
    assert_eq!(ids(&found), strings(&["u1", "u3"]));
    assert!(found.contains(&ann2), "find_by_emails returns whole users");
    assert_eq!(
        store
            .find_by_emails(&a2, &strings(&["ann@contoso.com", "bob@contoso.com"]))
            .await
            .unwrap(),
        vec![ann_other.clone()],
        "only the given account"
    );
    assert!(
        store
            .find_by_emails(&acct("acct-3"), &strings(&["ann@contoso.com"]))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(store.find_by_emails(&a1, &[]).await.unwrap().is_empty());

    // By link: only the given tenant.
    let (ta, tb) = (TenantId::new("tenant-a"), TenantId::new("tenant-b"));
    let linked = store
        .find_linked(&ta, &strings(&["obj-ann", "obj-cid", "obj-none"]))
        .await
        .unwrap();
    assert_eq!(ids(&linked), strings(&["u1", "u3"]));
    assert!(linked.contains(&ann2));
    assert_eq!(
        store
            .find_linked(&tb, &strings(&["obj-ann"]))
            .await
            .unwrap(),
        vec![ann_other.clone()],
        "the same object id in another tenant is another user"
    );
    assert!(
        store
            .find_linked(&TenantId::new("tenant-c"), &strings(&["obj-ann"]))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(store.find_linked(&ta, &[]).await.unwrap().is_empty());

    // A put that changes the email: the old email no longer finds the user, the new one does.
    let mut ann3 = ann2.clone();
    ann3.email = "ann.smith@contoso.com".into();
    put(store, std::slice::from_mut(&mut ann3)).await;
    assert!(
        store
            .find_by_emails(&a1, &strings(&["ann@contoso.com"]))
            .await
            .unwrap()
            .is_empty(),
        "the old email no longer finds a user whose email changed"
    );
    assert_eq!(
        store
            .find_by_emails(&a1, &strings(&["ann.smith@contoso.com"]))
            .await
            .unwrap(),
        vec![ann3.clone()]
    );
    assert_eq!(
        store
            .find_by_emails(&a2, &strings(&["ann@contoso.com"]))
            .await
            .unwrap(),
        vec![ann_other.clone()],
        "the other account's user keeps the email"
    );
    assert_eq!(
        store
            .find_linked(&ta, &strings(&["obj-ann"]))
            .await
            .unwrap(),
        vec![ann3.clone()],
        "an email change keeps the link"
    );

    // A put that drops the link: the old link no longer finds the user.
    let mut cid2 = cid.clone();
    cid2.link = None;
    cid2.status = LocalStatus::DisabledInDirectory;
    put(store, std::slice::from_mut(&mut cid2)).await;
    assert!(
        store
            .find_linked(&ta, &strings(&["obj-cid"]))
            .await
            .unwrap()
            .is_empty(),
        "a dropped link no longer finds the user"
    );
    assert_eq!(
        store
            .find_by_emails(&a1, &strings(&["cid@contoso.com"]))
            .await
            .unwrap(),
        vec![cid2.clone()]
    );

    // A put that changes the link (another object, another tenant): only the new one finds it.
    let mut ann4 = ann3.clone();
    ann4.link = link("tenant-b", "obj-ann-new");
    put(store, std::slice::from_mut(&mut ann4)).await;
    assert!(
        store
            .find_linked(&ta, &strings(&["obj-ann"]))
            .await
            .unwrap()
            .is_empty(),
        "a changed link no longer finds the user by the old one"
    );
    assert_eq!(
        store
            .find_linked(&tb, &strings(&["obj-ann-new", "obj-ann"]))
            .await
            .unwrap()
            .len(),
        2,
        "the new link finds acct-1's user, beside acct-2's"
    );
    assert_eq!(
        store
            .find_linked(&tb, &strings(&["obj-ann-new"]))
            .await
            .unwrap(),
        vec![ann4.clone()]
    );

    // Linking an unlinked user (matching by email) makes the link find it.
    let mut bob2 = bob.clone();
    bob2.link = link("tenant-a", "obj-bob");
    put(store, std::slice::from_mut(&mut bob2)).await;
    assert_eq!(
        store
            .find_linked(&ta, &strings(&["obj-bob"]))
            .await
            .unwrap(),
        vec![bob2.clone()]
    );

    // Two users of one account may share an email: both are found.
    let mut dup = local("acct-1", "u0", "bob@contoso.com", None);
    put(store, std::slice::from_mut(&mut dup)).await;
    assert_eq!(
        ids(&store
            .find_by_emails(&a1, &strings(&["bob@contoso.com"]))
            .await
            .unwrap()),
        strings(&["u0", "u2"])
    );

    // Listing: local-id order, `limit` per page, `next` only while more follow, one account.
    let page1 = store.list_local_users(&a1, None, 2).await.unwrap();
    assert_eq!(
        page1
            .items
            .iter()
            .map(|u| u.local_id.as_str())
            .collect::<Vec<_>>(),
        vec!["u0", "u1"]
    );
    assert_eq!(page1.items[1], ann4, "listings return whole users");
    let next = page1.next.expect("more users follow the first page");
    let page2 = store.list_local_users(&a1, Some(&next), 2).await.unwrap();
    assert_eq!(
        page2
            .items
            .iter()
            .map(|u| u.local_id.as_str())
            .collect::<Vec<_>>(),
        vec!["u2", "u3"]
    );
    assert_eq!(page2.next, None, "nothing follows the last page");
    let all = store.list_local_users(&a1, None, 10).await.unwrap();
    assert_eq!(all.items.len(), 4);
    assert_eq!(all.next, None);
    let after_u1 = store.list_local_users(&a1, Some("u1"), 10).await.unwrap();
    assert_eq!(
        ids(&after_u1.items),
        strings(&["u2", "u3"]),
        "`after` is exclusive"
    );
    let other = store.list_local_users(&a2, None, 10).await.unwrap();
    assert_eq!(other.items, vec![ann_other]);
    assert_eq!(other.next, None);
    let none = store
        .list_local_users(&acct("acct-3"), None, 10)
        .await
        .unwrap();
    assert!(none.items.is_empty());
    assert_eq!(none.next, None);
}

/// A projection writes thousands of users in one call: every one lands, and lookups and
/// listings of many keys at once see them all (DynamoDB splits these into batches).
pub async fn local_users_in_bulk(store: &dyn LocalUserStore) {
    const N: usize = 1_200;
    let a = acct("acct-bulk");
    let t = TenantId::new("tenant-bulk");
    let users: Vec<LocalUser> = (0..N)
        .map(|i| {
            local(
                "acct-bulk",
                &format!("u{i:05}"),
                &format!("user{i}@contoso.com"),
                link("tenant-bulk", &format!("obj-{i}")),
            )
        })
        .collect();
    let mut users = users;
    put(store, &mut users).await;

    assert_eq!(
        store.get_local_user(&a, "u00000").await.unwrap(),
        Some(users[0].clone())
    );
    assert_eq!(
        store.get_local_user(&a, "u01199").await.unwrap(),
        Some(users[N - 1].clone())
    );

    // Every user, once, in order, over pages.
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    let mut pages = 0;
    loop {
        let page = store
            .list_local_users(&a, after.as_deref(), 500)
            .await
            .unwrap();
        assert!(page.items.len() <= 500);
        pages += 1;
        seen.extend(page.items.into_iter().map(|u| u.local_id));
        match page.next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    let expected: Vec<String> = users.iter().map(|u| u.local_id.clone()).collect();
    assert_eq!(seen, expected, "all users, once each, in local-id order");

    // Many emails and many links at once (more than one read batch).
    let emails: Vec<String> = (0..N)
        .step_by(8)
        .map(|i| format!("user{i}@contoso.com"))
        .collect();
    let found = store.find_by_emails(&a, &emails).await.unwrap();
    assert_eq!(found.len(), 150);
    assert!(found.iter().all(|u| emails.contains(&u.email)));
    let objects: Vec<String> = (0..N).step_by(6).map(|i| format!("obj-{i}")).collect();
    let linked = store.find_linked(&t, &objects).await.unwrap();
    assert_eq!(linked.len(), 200);
    assert!(
        linked
            .iter()
            .all(|u| objects.contains(&u.link.as_ref().unwrap().object_id))
    );

    // A second projection pass rewrites everyone (new status, half with a new email): the
    // index follows.
    let rewritten: Vec<LocalUser> = users
        .iter()
        .enumerate()
        .map(|(i, u)| {
            let mut u = u.clone();
            u.status = LocalStatus::Active;
            if i % 2 == 0 {
                u.email = format!("renamed{i}@contoso.com");
            }
            u
        })
        .collect();
    let mut rewritten = rewritten;
    put(store, &mut rewritten).await;
    let old_even: Vec<String> = (0..N)
        .step_by(10)
        .map(|i| format!("user{i}@contoso.com"))
        .collect();
    assert!(
        store
            .find_by_emails(&a, &old_even)
            .await
            .unwrap()
            .is_empty(),
        "renamed users are no longer found by their old emails"
    );
    let new_even: Vec<String> = (0..N)
        .step_by(10)
        .map(|i| format!("renamed{i}@contoso.com"))
        .collect();
    assert_eq!(
        store.find_by_emails(&a, &new_even).await.unwrap().len(),
        120
    );
    let kept_odd: Vec<String> = (1..N)
        .step_by(10)
        .map(|i| format!("user{i}@contoso.com"))
        .collect();
    assert_eq!(
        store.find_by_emails(&a, &kept_odd).await.unwrap().len(),
        120,
        "users whose email stayed are still found by it"
    );
    let all = store.list_local_users(&a, None, N + 10).await.unwrap();
    assert_eq!(all.items, rewritten);
    assert_eq!(all.next, None);
}

/// Two writers changing one user's email at once: whichever lands last, the email index
/// agrees with the stored user (its email finds it, the other two do not).
pub async fn local_users_concurrent_writers(store: &dyn LocalUserStore) {
    let a = acct("acct-race");
    for round in 0..5 {
        let id = format!("u{round}");
        let mut base = local("acct-race", &id, &format!("r{round}-e0@x.com"), None);
        put(store, std::slice::from_mut(&mut base)).await;
        let mut one = base.clone();
        one.email = format!("r{round}-e1@x.com");
        let mut two = base.clone();
        two.email = format!("r{round}-e2@x.com");
        let (r1, r2) = tokio::join!(
            store.put_local_users(std::slice::from_ref(&one)),
            store.put_local_users(std::slice::from_ref(&two)),
        );
        r1.unwrap();
        r2.unwrap();
        let stored = store.get_local_user(&a, &id).await.unwrap().unwrap();
        // The revision moved on from the base's; the rest is one of the two writes.
        assert!(stored.revision > base.revision, "{stored:?}");
        one.revision = stored.revision;
        two.revision = stored.revision;
        assert!(stored == one || stored == two, "one of the writes won");
        for e in [&base.email, &one.email, &two.email] {
            let found = store
                .find_by_emails(&a, std::slice::from_ref(e))
                .await
                .unwrap();
            match *e == stored.email {
                true => assert_eq!(found, vec![stored.clone()], "{e} finds the user"),
                false => assert!(found.is_empty(), "{e} is not the stored email"),
            }
        }
    }
}
