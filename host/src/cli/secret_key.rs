//! `corral secret-key generate` and `corral secret-key rotate`: a new key,
//! and every stored secret re-sealed under it (docs/http.md, "Rotating the
//! secret key").

use anyhow::{Context, bail};

use crate::config::{RotateArgs, SecretKeyCommand};
use crate::secrets::SecretKey;
use crate::store::secrets::SecretStore;

/// Secrets read per batch while re-sealing: bounds a rotation's memory
/// whatever the number of tenants and secrets.
const RESEAL_BATCH: u32 = 500;

/// What re-sealing did, printed as JSON.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Rotation {
    /// Secrets now sealed under the current key.
    pub resealed: u64,
    /// Secrets set again while the rotation ran (already under the current
    /// key, left as they are).
    pub changed_meanwhile: u64,
    /// Secrets that open with neither key, left as they are.
    pub unopenable: u64,
}

pub async fn run(command: SecretKeyCommand) -> anyhow::Result<i32> {
    match command {
        SecretKeyCommand::Generate => {
            println!("{}", SecretKey::generate_hex()?);
            Ok(0)
        }
        SecretKeyCommand::Rotate(args) => rotate(args).await,
    }
}

async fn rotate(args: RotateArgs) -> anyhow::Result<i32> {
    let url = &args.database.database_url;
    let Some(key) = args.secret_keys.key(url).map_err(anyhow::Error::msg)? else {
        bail!("no current key: give --secret-key or --secret-key-file");
    };
    if key.previous_id().is_none() {
        bail!(
            "no previous key: give --previous-secret-key or --previous-secret-key-file (and a different current key)"
        );
    }
    let store = crate::store::connect(url)
        .await
        .context("opening the database")?;
    store.migrate().await.context("migrating the database")?;
    let done = reseal_all(&*store, &key).await?;
    println!("{}", serde_json::to_string(&done)?);
    Ok(if done.unopenable == 0 { 0 } else { 1 })
}

/// Re-seal, under `key`, every stored secret sealed under another key that
/// `key` (through its previous key) opens. Each row is replaced only while
/// it still holds the value read, so a secret set meanwhile is kept.
pub async fn reseal_all(store: &dyn SecretStore, key: &SecretKey) -> anyhow::Result<Rotation> {
    let mut done = Rotation::default();
    let mut after = (String::new(), String::new());
    loop {
        let batch = store
            .secrets_sealed_elsewhere(key.id(), (&after.0, &after.1), RESEAL_BATCH)
            .await?;
        let Some((tenant, name, _)) = batch.last() else {
            break;
        };
        after = (tenant.clone(), name.clone());
        for (tenant, name, sealed) in &batch {
            let Ok(value) = key.open(tenant, name, sealed) else {
                tracing::warn!(%tenant, secret = %name, key = %sealed.key_id,
                    "a secret opens with neither key; left as it is");
                done.unopenable += 1;
                continue;
            };
            let resealed = key.seal(tenant, name, &value)?;
            if store.secret_reseal(tenant, name, sealed, &resealed).await? {
                done.resealed += 1;
            } else {
                done.changed_meanwhile += 1;
            }
        }
    }
    Ok(done)
}
