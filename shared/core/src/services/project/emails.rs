//! The email rules that cross users within one projection pass. Matching links a directory
//! user to the host product's user with the same email in the account, so one email must never
//! end up on two local users, nor two directory users on one local user:
//!
//! - an unlinked directory user is matched against the local user that holds its email (of
//!   several, one with no link: that is the one matching may take);
//! - a linked directory user renamed to an email another local user already holds, or got
//!   earlier in this pass, is shown that user, so the rules keep the old email;
//! - of two directory users with the same email, the first one scanned creates or links; the
//!   later one is skipped;
//! - an email handed from one directory user to another within one sync (A renamed away from
//!   `e`, B given `e`) settles over two runs when B is scanned first: B meets A's local user,
//!   which still holds `e` (the rules skip B), and is created or linked in the next run, once
//!   A's rename is stored.
//!
//! Pure: the scan loads the local users of each page, these functions say what matching sees.

use std::collections::HashMap;

use crate::provision::{Action, Decision, Found, LocalUser};

/// The email a scan looks up among the account's local users for a directory user: an
/// unlinked user's (matching), or a linked user's new email (is it taken?). `None` when the
/// user has no email or keeps the one its local user has.
pub(super) fn email_to_look_up(linked: Option<&LocalUser>, email: Option<&str>) -> Option<String> {
    let email = email?;
    match linked {
        Some(l) if l.email == email => None,
        _ => Some(email.to_owned()),
    }
}

/// One local user per email among `users` (the account's users holding the looked-up emails):
/// one with no link where there is one.
pub(super) fn holders(users: Vec<LocalUser>) -> HashMap<String, LocalUser> {
    let mut by_email: HashMap<String, LocalUser> = HashMap::new();
    for u in users {
        let replace = by_email
            .get(&u.email)
            .is_none_or(|old| old.link.is_some() && u.link.is_none());
        if replace {
            by_email.insert(u.email.clone(), u);
        }
    }
    by_email
}

/// The emails linked, created or renamed to so far in one pass, each with the local user
/// written with it.
#[derive(Default)]
pub(super) struct PassEmails {
    claimed: HashMap<String, LocalUser>,
}

impl PassEmails {
    /// What matching sees for a directory user with `email`, linked to `linked` (if any), given
    /// the local users `holders` holding the page's emails.
    pub(super) fn found<'a>(
        &'a self,
        linked: Option<&'a LocalUser>,
        email: Option<&str>,
        holders: &'a HashMap<String, LocalUser>,
    ) -> Found<'a> {
        let by_email = match linked {
            // Renamed: another local user that already holds (or got in this pass) the new
            // email.
            Some(l) => email
                .filter(|e| *e != l.email)
                .and_then(|e| self.claimed.get(e).or_else(|| holders.get(e)))
                .filter(|o| o.local_id != l.local_id),
            None => email.and_then(|e| holders.get(e)),
        };
        Found { linked, by_email }
    }

    /// A decision after the pass's earlier claims: a create or link of an email another
    /// directory user got first in this pass becomes a skip; the email a create, link or
    /// rename writes is claimed for the rest of the pass.
    pub(super) fn settle(
        &mut self,
        mut d: Decision,
        linked: Option<&LocalUser>,
        email: Option<&str>,
    ) -> Decision {
        let renamed = d
            .write
            .as_ref()
            .is_some_and(|w| linked.is_some_and(|l| l.email != w.email));
        if matches!(d.action, Action::Create | Action::Link)
            && let Some(e) = email
            && self.claimed.contains_key(e)
        {
            d = Decision {
                action: Action::Skip,
                reason: format!("another directory user with the email {e} was matched first"),
                write: None,
                deactivates: None,
                ..d
            };
        }
        if let Some(w) = &d.write
            && (matches!(d.action, Action::Create | Action::Link) || renamed)
        {
            self.claimed.insert(w.email.clone(), w.clone());
        }
        d
    }
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};

    use super::*;
    use crate::model::{AccountId, TenantId};
    use crate::provision::{DirectoryLink, LocalStatus};

    fn local(id: &str, email: &str, linked_to: Option<&str>) -> LocalUser {
        let at = Utc
            .with_ymd_and_hms(2026, 1, 1, 0, 0, 0)
            .single()
            .unwrap_or_default();
        let mut u =
            LocalUser::pre_existing(AccountId("acct".into()), id, email, LocalStatus::Active, at);
        u.link = linked_to.map(|o| DirectoryLink {
            tenant_id: TenantId("tenant".into()),
            object_id: o.to_owned(),
        });
        u
    }

    fn decision(object_id: &str, action: Action, write: Option<LocalUser>) -> Decision {
        Decision {
            object_id: object_id.to_owned(),
            action,
            reason: "rule".to_owned(),
            write,
            changed: Vec::new(),
            deactivates: None,
        }
    }

    fn id(u: Option<&LocalUser>) -> Option<&str> {
        u.map(|u| u.local_id.as_str())
    }

    #[test]
    fn an_unlinked_user_meets_the_local_user_holding_its_email_an_unlinked_one_first() {
        let held = holders(vec![
            local("l-linked", "e@x.test", Some("other")),
            local("l-free", "e@x.test", None),
        ]);
        let pass = PassEmails::default();
        let found = pass.found(None, Some("e@x.test"), &held);
        assert_eq!(id(found.linked), None);
        assert_eq!(id(found.by_email), Some("l-free"));
        assert_eq!(id(pass.found(None, Some("f@x.test"), &held).by_email), None);
        assert_eq!(
            email_to_look_up(None, Some("e@x.test")).as_deref(),
            Some("e@x.test")
        );
    }

    #[test]
    fn a_rename_to_an_email_another_local_user_holds_is_shown_that_user() {
        let mine = local("l-a", "old@x.test", Some("a"));
        let held = holders(vec![local("l-b", "new@x.test", Some("b"))]);
        let pass = PassEmails::default();
        let found = pass.found(Some(&mine), Some("new@x.test"), &held);
        assert_eq!(id(found.linked), Some("l-a"));
        assert_eq!(id(found.by_email), Some("l-b"));
        // Keeping its own email, or an email only it holds, is no conflict.
        assert_eq!(email_to_look_up(Some(&mine), Some("old@x.test")), None);
        assert_eq!(
            id(pass.found(Some(&mine), Some("old@x.test"), &held).by_email),
            None
        );
        let own = holders(vec![local("l-a", "new@x.test", Some("a"))]);
        assert_eq!(
            id(pass.found(Some(&mine), Some("new@x.test"), &own).by_email),
            None
        );
    }

    #[test]
    fn an_email_another_directory_user_takes_in_the_same_pass_goes_to_the_first_only() {
        let held = HashMap::new();
        let mut pass = PassEmails::default();
        let first = pass.settle(
            decision(
                "a",
                Action::Create,
                Some(local("l-a", "e@x.test", Some("a"))),
            ),
            None,
            Some("e@x.test"),
        );
        assert_eq!(first.action, Action::Create);
        let second = pass.settle(
            decision(
                "b",
                Action::Create,
                Some(local("l-b", "e@x.test", Some("b"))),
            ),
            None,
            Some("e@x.test"),
        );
        assert_eq!(second.action, Action::Skip);
        assert!(second.write.is_none());
        assert!(
            second.reason.contains("was matched first"),
            "{}",
            second.reason
        );
        // A linked user renamed to that email later in the pass is shown the first one's user.
        let c = local("l-c", "c@x.test", Some("c"));
        let found = pass.found(Some(&c), Some("e@x.test"), &held);
        assert_eq!(id(found.by_email), Some("l-a"));
    }

    #[test]
    fn a_rename_claims_its_new_email_for_the_rest_of_the_pass() {
        let held = HashMap::new();
        let mut pass = PassEmails::default();
        let a = local("l-a", "old@x.test", Some("a"));
        let renamed = pass.settle(
            decision(
                "a",
                Action::Update,
                Some(local("l-a", "new@x.test", Some("a"))),
            ),
            Some(&a),
            Some("new@x.test"),
        );
        assert_eq!(renamed.action, Action::Update);
        let later = pass.settle(
            decision(
                "b",
                Action::Link,
                Some(local("l-b", "new@x.test", Some("b"))),
            ),
            None,
            Some("new@x.test"),
        );
        assert_eq!(later.action, Action::Skip);
        // An update that keeps the email claims nothing.
        let mut pass = PassEmails::default();
        pass.settle(
            decision(
                "a",
                Action::Update,
                Some(local("l-a", "old@x.test", Some("a"))),
            ),
            Some(&a),
            Some("old@x.test"),
        );
        let d = local("l-d", "d@x.test", Some("d"));
        assert_eq!(
            id(pass.found(Some(&d), Some("old@x.test"), &held).by_email),
            None
        );
    }

    #[test]
    fn an_email_handed_over_settles_over_two_runs_when_the_receiver_comes_first() {
        // Run 1: B (unlinked, now has e) is scanned before A (linked, renamed from e to f).
        let a_before = local("l-a", "e@x.test", Some("a"));
        let held = holders(vec![a_before.clone()]);
        let mut pass = PassEmails::default();
        let b = pass.found(None, Some("e@x.test"), &held);
        // B meets A's local user, linked elsewhere: the rules skip B.
        assert_eq!(id(b.by_email), Some("l-a"));
        assert!(b.by_email.is_some_and(|u| u.link.is_some()));
        let skipped = pass.settle(decision("b", Action::Skip, None), None, Some("e@x.test"));
        assert_eq!(skipped.action, Action::Skip);
        let a_found = pass.found(Some(&a_before), Some("f@x.test"), &held);
        assert_eq!(id(a_found.by_email), None);
        pass.settle(
            decision(
                "a",
                Action::Update,
                Some(local("l-a", "f@x.test", Some("a"))),
            ),
            Some(&a_before),
            Some("f@x.test"),
        );
        // Run 2: A's rename is stored, nobody holds e any more: B is free to be created.
        let held = holders(Vec::new());
        let mut pass = PassEmails::default();
        assert_eq!(id(pass.found(None, Some("e@x.test"), &held).by_email), None);
        let created = pass.settle(
            decision(
                "b",
                Action::Create,
                Some(local("l-b", "e@x.test", Some("b"))),
            ),
            None,
            Some("e@x.test"),
        );
        assert_eq!(created.action, Action::Create);
    }
}
