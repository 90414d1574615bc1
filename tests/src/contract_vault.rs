//! The contract of the `SecretVault` port: put, get, overwrite, delete, missing names, and that
//! a value never shows in `Debug`/`Display` output or in an error. Every adapter runs it: the
//! in-memory vault, the encrypted file vault and Secrets Manager on moto
//! (tests/tests/contract_vault.rs).

use std::error::Error as _;

use entra_sync_core::error::VaultError;
use entra_sync_core::ports::{Secret, SecretVault};

/// Values the suite stores; none may appear in any text the vault produces.
const VALUES: [&str; 3] = [
    "cs~Q8A.first-client-secret-value",
    "cs~R9B.rotated-client-secret-value",
    "line one\nline two ✓ ünïcødé",
];

/// Everything an error says, with its whole source chain, in both forms.
fn error_text(e: &VaultError) -> String {
    let mut out = format!("{e} {e:?}");
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(&format!(" {s} {s:?}"));
        source = s.source();
    }
    out
}

fn assert_no_value(text: &str) {
    for v in VALUES {
        assert!(!text.contains(v), "a secret value leaked into: {text}");
    }
}

/// Every rule of `SecretVault` on a fresh vault; `again`, when given, is a second handle on the
/// same storage (a reopened file, a new client without a cache), which must see what the first
/// wrote. (A second handle with a cache sees changes only after its TTL; the Secrets Manager
/// test checks that apart.)
pub async fn vault(vault: &dyn SecretVault, again: Option<&dyn SecretVault>) {
    let name = "app/client-secret";

    // Missing: NotFound naming the secret (its name, never a value).
    match vault.get_secret(name).await {
        Err(e @ VaultError::NotFound(_)) => assert!(error_text(&e).contains(name)),
        other => panic!("a missing secret gave {other:?}"),
    }

    // Put and get, exactly.
    vault
        .put_secret(name, &Secret::new(VALUES[0]))
        .await
        .unwrap();
    let got = vault.get_secret(name).await.unwrap();
    assert_eq!(got.expose(), VALUES[0]);
    assert_no_value(&format!("{got:?} {got}"));

    // Overwrite (a rotation): the new value, at once, from this handle.
    vault
        .put_secret(name, &Secret::new(VALUES[1]))
        .await
        .unwrap();
    assert_eq!(vault.get_secret(name).await.unwrap().expose(), VALUES[1]);
    if let Some(again) = again {
        assert_eq!(again.get_secret(name).await.unwrap().expose(), VALUES[1]);
    }

    // Names are separate; values keep every character.
    let tenant_secret = "tenants/0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0/webhook";
    vault
        .put_secret(tenant_secret, &Secret::new(VALUES[2]))
        .await
        .unwrap();
    assert_eq!(
        vault.get_secret(tenant_secret).await.unwrap().expose(),
        VALUES[2]
    );
    assert_eq!(vault.get_secret(name).await.unwrap().expose(), VALUES[1]);

    // Delete: gone, for this handle and any other; deleting again is fine.
    vault.delete_secret(name).await.unwrap();
    let gone = vault.get_secret(name).await;
    assert!(matches!(gone, Err(VaultError::NotFound(_))), "{gone:?}");
    if let Some(again) = again {
        assert!(matches!(
            again.get_secret(name).await,
            Err(VaultError::NotFound(_))
        ));
    }
    vault.delete_secret(name).await.unwrap();
    assert_eq!(
        vault.get_secret(tenant_secret).await.unwrap().expose(),
        VALUES[2]
    );

    // No error the vault produced says a value.
    for e in [gone.err(), vault.get_secret("no/such/secret").await.err()]
        .into_iter()
        .flatten()
    {
        assert_no_value(&error_text(&e));
    }
}
