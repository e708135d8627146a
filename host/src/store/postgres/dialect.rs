//! What PostgreSQL says differently: the items `sql/` asks of a dialect.

use sqlx::PgConnection;

use super::{CANCEL_CHANNEL, RUN_CHANNEL};
use crate::store::{StoreError, StoreEvent};

/// Locks the rows a statement reads until the transaction ends.
pub(crate) const FOR_UPDATE: &str = "FOR UPDATE";
/// Keeps the rows a statement reads from being changed or deleted until
/// the transaction ends (a plugin version being pinned).
pub(crate) const FOR_SHARE: &str = "FOR SHARE";

/// `column` is one of the [`crate::store::codec::List`] bound as `$n`.
pub(crate) fn any(column: &str, n: u8) -> String {
    format!("{column} = ANY(${n})")
}

/// Send, inside the transaction (so listeners hear them at its commit, on
/// every host), the events no trigger announces: cancel requests and
/// finished runs. Jobs inserted and jobs changing state are announced by
/// the `jobs` triggers.
pub(crate) async fn notify(
    conn: &mut PgConnection,
    events: &[StoreEvent],
) -> Result<(), StoreError> {
    let (mut channels, mut payloads) = (Vec::new(), Vec::new());
    for event in events {
        let (channel, payload) = match event {
            StoreEvent::CancelRequested(id) => (CANCEL_CHANNEL, id.to_string()),
            StoreEvent::RunState(id, state) => (RUN_CHANNEL, format!("{id} {}", state.as_str())),
            _ => continue,
        };
        channels.push(channel);
        payloads.push(payload);
    }
    if !channels.is_empty() {
        sqlx::query("SELECT pg_notify(c, p) FROM UNNEST($1::text[], $2::text[]) AS n(c, p)")
            .bind(&channels)
            .bind(&payloads)
            .execute(conn)
            .await?;
    }
    Ok(())
}

/// Whether an event is sent to this process's subscribers directly: only
/// what no other host needs (a run awaiting this host's evaluator); the
/// rest comes back through `LISTEN`.
pub(crate) fn announced_here(event: &StoreEvent) -> bool {
    matches!(event, StoreEvent::RunAwaitsEvaluation(_))
}
